"""``python -m asc_kd.quantize CHECKPOINT --root DATA``: int8 student, evaluated like fp32.

    python -m asc_kd.quantize outputs/.../best.ckpt --root DATA --out outputs/system1.int8.pt

Calibrates int8 post-training static quantization on a subset of the training split, writes
the self-contained TorchScript artifact (see ``asc_kd.quantization``), evaluates fp32 and int8
on the development-test split with the same per-device metrics, and writes a JSON report
beside the artifact (``*.int8.json``): accuracies, log losses, MEM from the real int8 weights,
NeSsi MACs of the fp32 graph.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch

from asc_kd.checkpoints import load_task
from asc_kd.complexity import count_complexity
from asc_kd.data.datamodule import TAU22DataModule
from asc_kd.data.tau22 import DEVICES, SCENES
from asc_kd.io import atomic_write
from asc_kd.logits import predict_logits, scene_metrics
from asc_kd.quantization import (
    Backend,
    convert,
    export_artifact,
    int8_memory,
    load_artifact,
    prepare_for_quantization,
    quantize_static,
)
from asc_kd.tasks.classification import ClassificationTask

log = logging.getLogger(__name__)


def quantize_task(
    task: ClassificationTask,
    datamodule: TAU22DataModule,
    out: str | Path,
    calibration_batches: int = 20,
    backend: Backend = "x86",
    source: str | None = None,
    qat_epochs: int = 0,
    qat_lr: float = 1e-4,
) -> dict[str, Any]:
    """Quantize ``task.model``, export the artifact, evaluate fp32 vs int8; returns the report.

    With ``qat_epochs > 0`` the model is fine-tuned with fake quantization (labels,
    cross-entropy) before conversion instead of being calibrated post hoc.
    """
    task = task.cpu().eval()
    if not datamodule.datasets:
        datamodule.prepare_data()
        datamodule.setup("fit")
    if qat_epochs > 0:
        quantized = quantization_aware_finetune(task, datamodule, qat_epochs, qat_lr, backend)
    else:
        calibration = datamodule.loader("train", shuffle=True)
        with torch.no_grad():
            batches = itertools.islice(calibration, calibration_batches)
            quantized = quantize_static(task.model, (task.features(b["waveform"]) for b in batches), backend)
    memory = int8_memory(quantized)
    complexity = count_complexity(task.model, task.input_shape())
    metadata = {
        "model": task.hparams.model,
        "source_checkpoint": source,
        "classes": list(SCENES),
        "devices": list(DEVICES),
        "backend": backend,
        "calibration_batches": 0 if qat_epochs else calibration_batches,
        "qat_epochs": qat_epochs,
        "params": complexity.params,
        "macs": complexity.macs,
        **memory,
    }
    out = export_artifact(task.frontend, quantized, out, metadata)
    artifact, _ = load_artifact(out)
    test = datamodule.loader("test")
    cpu = torch.device("cpu")
    report = {
        **metadata,
        "artifact": str(out),
        "fp32": scene_metrics(predict_logits(task, test, cpu, "fp32 test"), test, confusion=True),
        "int8": scene_metrics(predict_logits(artifact, test, cpu, "int8 test"), test, confusion=True),
    }
    with atomic_write(Path(out).with_suffix(".json")) as handle:
        json.dump(report, handle, indent=2)
    return report


def quantization_aware_finetune(
    task: ClassificationTask, datamodule: TAU22DataModule, epochs: int, lr: float, backend: Backend = "x86"
) -> torch.nn.Module:
    """Fine-tune a fake-quantized copy of ``task.model`` on the labels, then convert to int8.

    The task itself is left untouched: a copy with the prepared model is trained on the CPU
    (quantized kernels are CPU kernels) with a constant learning rate.
    """
    import copy

    import lightning as L

    student = copy.deepcopy(task)
    student.model = prepare_for_quantization(task.model, backend, qat=True)
    student.hparams.update(lr=lr, schedule="constant", warmup_epochs=0.0, compile=False)
    student.__dict__["_compiled_model"] = None
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        enable_model_summary=False,
    )
    trainer.fit(student, datamodule=datamodule)
    return convert(student.model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asc_kd.quantize", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="student checkpoint (any asc_kd task)")
    parser.add_argument("--root", required=True, help="dataset root (TAU22 layout)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", default=None, help="artifact path (default: CHECKPOINT with .int8.pt)")
    parser.add_argument("--calibration-batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--backend", choices=["x86", "fbgemm", "qnnpack"], default="x86")
    parser.add_argument("--qat-epochs", type=int, default=0, help="quantization-aware fine-tuning epochs")
    parser.add_argument("--qat-lr", type=float, default=1e-4)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    task = load_task(args.checkpoint)
    datamodule = TAU22DataModule(
        root=args.root, cache_dir=args.cache_dir, batch_size=args.batch_size, num_workers=0
    )
    out = args.out or str(Path(args.checkpoint).with_suffix(".int8.pt"))
    report = quantize_task(
        task,
        datamodule,
        out,
        args.calibration_batches,
        args.backend,
        args.checkpoint,
        args.qat_epochs,
        args.qat_lr,
    )
    for precision in ("fp32", "int8"):
        metrics = report[precision]
        print(
            f"{precision}: acc {metrics['acc']:.4f}  log loss {metrics['log_loss']:.4f}  "
            f"real {metrics['acc_real']:.4f}  seen {metrics['acc_seen']:.4f}  "
            f"unseen {metrics['acc_unseen']:.4f}"
        )
    print(
        f"MEM {report['mem_bytes']:,} bytes ({report['int8_weights']:,} int8 weights, "
        f"{report['fp32_biases']:,} fp32 biases); MACs {report['macs']:,}; artifact {report['artifact']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
