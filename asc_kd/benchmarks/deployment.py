"""Inference benchmarks of a trained student: eval forward with and without kept freed memory
(``bench eval``), fp32 against int8 (``bench quant``)."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from asc_kd.data.options import GivenData

from asc_kd.benchmarks.timing import data_defaults, rate

log = logging.getLogger(__name__)


def _eval_child(model: str, batch_size: int, seconds: float, threads: int) -> dict[str, Any]:
    """One ``bench eval`` variant, in a fresh process: eval clips/s and page faults per clip."""
    import resource

    from asc_kd.core.allocator import keep_freed_memory
    from asc_kd.models import get_model
    from asc_kd.models.frontends import StudentMel

    kept = keep_freed_memory()  # a no-op under ASC_KD_KEEP_FREED_MEMORY=0
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    frontend, network = StudentMel(), get_model(model).eval()
    waveform = 0.1 * torch.randn(batch_size, 32000)

    def forward() -> int:
        return len(network(frontend(waveform)))

    with torch.inference_mode():
        forward()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        clips, start = 0, time.perf_counter()
        while clips == 0 or time.perf_counter() - start < seconds:
            clips += forward()
        elapsed = time.perf_counter() - start
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {"kept": kept, "clips_per_s": clips / elapsed, "faults_per_clip": faults / clips}


def bench_eval(
    model: str = "system1", batch_size: int = 256, seconds: float = 5.0, threads: int = 2, rounds: int = 2
) -> dict[str, Any]:
    """Eval forward (front-end + model) clips/s with glibc's default malloc vs asc_kd's setting.

    ``asc_kd.core.allocator.keep_freed_memory`` is set once per process, so each variant runs in a
    fresh child process (``ASC_KD_KEEP_FREED_MEMORY=0`` or 1), alternating for ``rounds``
    rounds; the median of each is reported, with the page faults per clip behind the difference.
    """
    import os
    import subprocess

    from asc_kd.core.allocator import ENV

    code = (
        "import json; from asc_kd.benchmarks.deployment import _eval_child; "
        f"print(json.dumps(_eval_child({model!r}, {batch_size}, {seconds}, {threads})))"
    )
    runs: dict[str, list[dict[str, Any]]] = {"malloc_default": [], "asc_kd": []}
    for _ in range(rounds):
        for name, setting in (("malloc_default", "0"), ("asc_kd", "1")):
            child = subprocess.run(
                [sys.executable, "-c", code],
                env={**os.environ, ENV: setting},
                capture_output=True,
                text=True,
                check=True,
            )
            runs[name].append(json.loads(child.stdout.strip().splitlines()[-1]))
    results: dict[str, Any] = {"model": model, "batch_size": batch_size, "threads": threads, "rounds": rounds}
    for name, values in runs.items():
        results[f"{name}_kept_freed_memory"] = values[0]["kept"]
        results[f"{name}_clips_per_s"] = round(float(np.median([v["clips_per_s"] for v in values])), 1)
        results[f"{name}_page_faults_per_clip"] = round(
            float(np.median([v["faults_per_clip"] for v in values])), 1
        )
    results["ratio"] = round(results["asc_kd_clips_per_s"] / results["malloc_default_clips_per_s"], 2)
    return results


def bench_quant(
    data: GivenData, checkpoint: str | None, epochs: int, threads: int, seconds: float
) -> dict[str, Any]:
    """fp32 vs int8 accuracy on the test split and CPU inference clips/s (waveform to logits),
    on the dataset of ``data``'s ``--data.*`` options (default: synthetic scenes)."""
    from asc_kd.data.options import build_datamodule, gives
    from asc_kd.deployment.quantize import load_artifact, quantize_task
    from asc_kd.tasks.restore import load_task

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        datamodule = build_datamodule(data, data_defaults(data, Path(tmp)))
        if checkpoint is None:
            import lightning as L

            from asc_kd.tasks import ClassificationTask

            L.seed_everything(0, verbose=False)
            trainer = L.Trainer(
                max_epochs=epochs,
                logger=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                default_root_dir=tmp,
                accelerator="cpu",
            )
            task = ClassificationTask(model="system1", warmup_epochs=1, spec=datamodule.spec)
            trainer.fit(task, datamodule=datamodule)
            checkpoint = trainer.checkpoint_callback.best_model_path
        task = load_task(checkpoint)
        report = quantize_task(task, datamodule, Path(tmp) / "model.int8.pt", source=checkpoint)
        artifact, _ = load_artifact(Path(tmp) / "model.int8.pt")
        waveform = 0.1 * torch.randn(64, 32000)
        results: dict[str, Any] = {"threads": threads, "batch_size": 64, "trained_epochs": epochs}
        for name, model in (("fp32", task), ("int8", artifact)):
            results[f"{name}_acc"] = round(report[name]["acc"], 4)

            def run(model: Any = model) -> int:
                with torch.no_grad():
                    model(waveform)
                return len(waveform)

            results[f"{name}_clips_per_s"] = round(rate(run, seconds), 1)
        results["acc_gap_pp"] = round(100 * (results["fp32_acc"] - results["int8_acc"]), 2)
        results["speedup_int8_over_fp32"] = round(
            results["int8_clips_per_s"] / results["fp32_clips_per_s"], 2
        )
        results["mem_bytes_int8"] = report["mem_bytes"]
        results["artifact_bytes_int8"] = report["artifact_bytes"]
        results["data"] = str(datamodule.root) if gives(data, "root") else "synthetic"
    return results
