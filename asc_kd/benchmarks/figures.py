"""Throughput and accuracy benchmarks behind ``python -m asc_kd.bench``, measured in one run.

Each function returns a flat dict of figures, ratios taken within the same run so that machine
load hits every variant alike. Benchmarks run on synthetic scenes (generated into a temporary
folder unless a root is given); numbers depend on the machine: ``asc_kd.benchmarks.report``
writes them beside the machine they were measured on.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

if TYPE_CHECKING:
    from asc_kd.data.options import DataArgs

log = logging.getLogger(__name__)


def _rate(fn: Callable[[], int], min_seconds: float, warmup: int = 1) -> float:
    """Items per second of ``fn`` (which returns how many items it processed)."""
    for _ in range(warmup):
        fn()
    items, start = 0, time.perf_counter()
    while True:
        items += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return items / elapsed


def _data_defaults(data: DataArgs, workdir: Path, config: Any = None) -> dict[str, str]:
    """The data defaults of a benchmark: ``--data.root`` when given, else synthetic scenes
    generated under ``workdir`` (``config``, by default 60 training segments per scene); the
    cache in ``workdir`` unless ``--data.cache_dir`` names one."""
    from asc_kd.data.options import gives
    from asc_kd.data.synthetic import SyntheticConfig, ensure_synthetic

    defaults = {"cache_dir": str(workdir / "cache")}
    if not gives(data, "root"):
        config = config or SyntheticConfig(train_segments_per_scene=60)
        defaults["root"] = str(ensure_synthetic(workdir / "synthetic", config))
    return defaults


def bench_data(data: DataArgs, seconds: float) -> dict[str, Any]:
    """Clips/s of training batches decoded from wavs vs read from the resampled cache."""
    from asc_kd.data.options import build_datamodule

    with tempfile.TemporaryDirectory() as tmp:
        defaults = _data_defaults(data, Path(tmp))
        results: dict[str, Any] = {}
        for name, use_cache in (("wav", False), ("cache", True)):
            datamodule = build_datamodule(data, defaults, use_cache=use_cache)
            results.update(batch_size=datamodule.hparams.batch_size, num_workers=datamodule.num_workers)
            start = time.perf_counter()
            datamodule.prepare_data()
            datamodule.setup("fit")
            results[f"{name}_setup_s"] = round(time.perf_counter() - start, 3)
            loader = datamodule.train_dataloader()

            def one_epoch(loader=loader) -> int:
                return sum(len(batch["waveform"]) for batch in loader)

            results[f"{name}_clips_per_s"] = round(_rate(one_epoch, seconds), 1)
        results["clips"] = len(datamodule.datasets["train"])
        results["ratio_cache_over_wav"] = round(results["cache_clips_per_s"] / results["wav_clips_per_s"], 2)
    return results


class _PerBatchFilterbankMel(nn.Module):
    """The public CP-JKU recipe's mel front-end habit: Kaldi mel banks rebuilt on every call."""

    def __init__(self, sample_rate: int = 32000, n_fft: int = 2048, hop: int = 737, n_mels: int = 256):
        super().__init__()
        self.sample_rate, self.n_fft, self.hop, self.n_mels = sample_rate, n_fft, hop, n_mels
        self.register_buffer("window", torch.hann_window(n_fft, periodic=False), persistent=False)
        self.register_buffer("preemphasis", torch.tensor([[[-0.97, 1.0]]]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torchaudio

        x = F.conv1d(x.unsqueeze(1), self.preemphasis).squeeze(1)
        spec = torch.stft(x, self.n_fft, self.hop, self.n_fft, self.window, return_complex=True)
        power = spec.abs() ** 2
        banks, _ = torchaudio.compliance.kaldi.get_mel_banks(
            self.n_mels, self.n_fft, self.sample_rate, 0.0, self.sample_rate / 2, 100.0, -500.0, 1.0
        )
        banks = F.pad(banks, (0, 1)).to(x.device)
        mel = torch.matmul(banks, power)
        return ((mel + 1e-5).log() + 4.5).div(5.0).unsqueeze(1)


class _KDStep:
    """One KD training step: front-end, Freq-MixStyle, forward/backward, Adam step."""

    def __init__(
        self,
        frontend: nn.Module,
        channels_last: bool,
        compiled: bool,
        device: torch.device,
        fused: bool = True,
    ) -> None:
        from asc_kd.models import get_model

        self.device = device
        self.frontend = frontend.to(device)
        model = get_model("system1").to(device)
        self.channels_last = channels_last
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = torch.compile(model) if compiled else model
        # asc_kd's tasks use the fused Adam kernel; CP-JKU's code the default per-tensor loop.
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
        self.amp = device.type == "cuda"  # bf16 autocast on GPU

    def __call__(self, waveform: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor) -> int:
        from asc_kd.augmentations.spectrogram import freq_mixstyle
        from asc_kd.tasks.losses import knowledge_distillation_loss

        waveform, target, teacher = (
            t.to(self.device, non_blocking=True) for t in (waveform, target, teacher)
        )
        with torch.no_grad():
            x = self.frontend(waveform)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            x = freq_mixstyle(x, 0.3)
            loss = knowledge_distillation_loss(self.model(x), target, teacher, 3.0, 0.1)["loss"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return len(waveform)


def bench_train(
    batch_size: int, seconds: float, threads: int, compile_model: bool, device: str = "cpu"
) -> dict[str, Any]:
    """KD training step of system1 (front-end + Freq-MixStyle + fwd/bwd + Adam step), clips/s.

    ``baseline`` rebuilds the filterbank per batch, takes ``|X|`` then squares it and multiplies
    by the dense filterbank, and runs the model in NCHW, as the public CP-JKU DCASE23 components
    do; the other variants are asc_kd's front-end (filterbank built once, ``re² + im²``, the
    banded product of ``apply_banks``), in NCHW and channels-last, each also with
    ``torch.compile`` when asked. Both run in this process, so both have ``keep_freed_memory``'s malloc
    settings when started as ``python -m asc_kd.bench``.
    """
    from asc_kd.models.frontends import StudentMel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    target_device = torch.device(device)
    waveform = torch.randn(batch_size, 32000) * 0.1
    target = torch.randint(0, 10, (batch_size,))
    teacher = torch.randn(batch_size, 10)
    variants: dict[str, tuple[nn.Module, bool, bool]] = {
        "baseline": (_PerBatchFilterbankMel(), False, False),
        "asc_kd": (StudentMel(), False, False),
    }
    variants["asc_kd_channels_last"] = (StudentMel(), True, False)  # which pays depends on the CPU
    if compile_model:
        variants["asc_kd_compiled"] = (StudentMel(), False, True)
        variants["asc_kd_compiled_channels_last"] = (StudentMel(), True, True)
    results: dict[str, Any] = {
        "batch_size": batch_size,
        "threads": threads,
        "device": device,
        "model": "system1",
    }
    steps = {
        name: _KDStep(frontend, cl, compiled, target_device)
        for name, (frontend, cl, compiled) in variants.items()
    }
    for step in steps.values():  # warm-up (and compilation)
        for _ in range(3):
            step(waveform, target, teacher)
    # Variants take turns, one timed step each per round, so drift in machine load hits all
    # of them alike; the median step time of each is reported.
    times: dict[str, list[float]] = {name: [] for name in steps}
    deadline = time.perf_counter() + seconds * len(steps)
    while time.perf_counter() < deadline or min(len(t) for t in times.values()) < 5:
        for name, step in steps.items():
            start = time.perf_counter()
            step(waveform, target, teacher)
            if target_device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        results[f"{name}_clips_per_s"] = round(batch_size / float(np.median(values)), 1)
    best = max(
        (k for k in results if k.endswith("_clips_per_s") and k != "baseline_clips_per_s"),
        key=lambda k: results[k],
    )
    results["best"] = best.removesuffix("_clips_per_s")
    results["ratio_best_over_baseline"] = round(results[best] / results["baseline_clips_per_s"], 2)
    return results


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
        "import json; from asc_kd.benchmarks.figures import _eval_child; "
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


def _teacher_task(model: str, manual_attention: bool) -> Any:
    """The teacher task shipped recipe ``teachers/<model>`` builds, with random weights;
    ``manual_attention`` gives the attention code of the recipes asc_kd replaces (hear21passt's
    matmul-softmax-matmul; timm's unfused path)."""
    import warnings

    import timm.layers

    from asc_kd.recipes import read_recipe, resolve_recipe
    from asc_kd.tasks import ClassificationTask

    recipe = resolve_recipe(
        model if model.endswith((".yaml", ".yml")) or "/" in model else f"teachers/{model}"
    )
    arguments = read_recipe(recipe)
    kwargs = {**(arguments.get("model_kwargs") or {}), "checkpoint": None}
    if arguments["model"] == "passt":
        kwargs["attention"] = "manual" if manual_attention else "fused"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*has random weights.*")
        timm.layers.set_fused_attn(not manual_attention)  # read by timm blocks when built
        try:
            return ClassificationTask(**{**arguments, "model_kwargs": kwargs})
        finally:
            timm.layers.set_fused_attn(True)


def bench_teacher(
    model: str = "passt", batch_size: int = 8, threads: int = 2, seconds: float = 10.0, device: str = "cpu"
) -> dict[str, Any]:
    """A teacher's training step and eval forward, clips/s: the baseline vs asc_kd's path.

    The teacher is built as the shipped recipe ``teachers/<model>`` (or ``model``, a recipe name or path)
    builds it (random weights, the
    same front-end with its masks, patchout in training). ``baseline``: the attention code of the
    public recipes (hear21passt's own; timm's unfused path), fp32, eval under ``no_grad``.
    ``asc_kd``: fused attention (``scaled_dot_product_attention``), eval under
    ``inference_mode``, bf16 autocast where the device does bf16 fast (``fast_bf16``). A
    training step is front-end + forward + cross-entropy + backward + Adam step. Also reported:
    the largest absolute logit difference and top-1 agreement of asc_kd's eval vs the baseline's
    on the benchmark batch (same weights).
    """
    from asc_kd.evaluation.inference import autocast, fast_bf16

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    target_device = torch.device(device)
    baseline = _teacher_task(model, manual_attention=True).to(target_device)
    ours = _teacher_task(model, manual_attention=False).to(target_device)
    ours.load_state_dict(baseline.state_dict())
    waveform = 0.1 * torch.randn(batch_size, ours.segment_samples, device=target_device)
    target = torch.randint(0, len(ours.classes), (batch_size,), device=target_device)
    bf16 = fast_bf16(target_device)
    optimizers = {
        name: torch.optim.Adam(task.parameters(), lr=1e-5, fused=True)
        for name, task in (("baseline", baseline), ("asc_kd", ours))
    }

    def train_step(name: str, task: Any) -> None:
        task.train()
        with autocast(target_device, "auto" if name == "asc_kd" else "fp32"):
            loss = F.cross_entropy(task(waveform), target)
        optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        optimizers[name].step()

    def eval_forward(name: str, task: Any) -> torch.Tensor:
        task.eval()
        if name == "baseline":
            with torch.no_grad():
                return task(waveform)
        with torch.inference_mode(), autocast(target_device, "auto"):
            return task(waveform).float()

    # parity before any training step changes the weights apart
    reference, fast = eval_forward("baseline", baseline), eval_forward("asc_kd", ours)
    results: dict[str, Any] = {
        "model": model,
        "batch_size": batch_size,
        "threads": threads,
        "device": device,
        "bf16_autocast": bf16,
        "eval_max_abs_logit_diff": float((fast - reference).abs().max()),
        "eval_top1_agreement": float((fast.argmax(1) == reference.argmax(1)).float().mean()),
    }
    tasks = {"baseline": baseline, "asc_kd": ours}
    for phase, run in (("train", train_step), ("eval", eval_forward)):
        for name, task in tasks.items():  # warm-up
            run(name, task)
        times: dict[str, list[float]] = {name: [] for name in tasks}
        deadline = time.perf_counter() + seconds * len(tasks)
        while time.perf_counter() < deadline or min(len(t) for t in times.values()) < 3:
            for name, task in tasks.items():
                start = time.perf_counter()
                run(name, task)
                if target_device.type == "cuda":
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - start)
        for name, values in times.items():
            results[f"{name}_{phase}_clips_per_s"] = round(batch_size / float(np.median(values)), 2)
        results[f"{phase}_ratio"] = round(
            results[f"asc_kd_{phase}_clips_per_s"] / results[f"baseline_{phase}_clips_per_s"], 2
        )
    results["train_clips_per_s"] = results["asc_kd_train_clips_per_s"]
    results["eval_clips_per_s"] = results["asc_kd_eval_clips_per_s"]
    return results


def _memory_kib() -> dict[str, int]:
    """Current anonymous and file-backed resident memory of this process (Linux)."""
    fields = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "VmHWM"):
                fields[key] = int(value.split()[0])
    return fields


def _random_cache(folder: Path, n_clips: int, n_samples: int = 32000) -> Any:
    """A cache-format memmap of random audio: the real data path at TAU22 scale, no wavs."""
    from asc_kd.data.cache import AudioCache

    folder.mkdir(parents=True, exist_ok=True)
    data = np.memmap(folder / "audio.int16", dtype=np.int16, mode="w+", shape=(n_clips, n_samples))
    rng = np.random.default_rng(0)
    for start in range(0, n_clips, 4096):
        stop = min(n_clips, start + 4096)
        data[start:stop] = rng.integers(-3000, 3000, (stop - start, n_samples), dtype=np.int16)
    data.flush()
    names = [f"audio/clip{i}.wav" for i in range(n_clips)]
    index = {"fingerprint": "random", "sample_rate": 32000, "n_samples": n_samples, "filenames": names}
    (folder / "index.json").write_text(json.dumps(index))
    return AudioCache(folder)


def bench_epoch(
    n_clips: int, batch_size: int, threads: int, num_workers: int, compile_model: bool, device: str
) -> dict[str, Any]:
    """Time one KD epoch over ``n_clips`` read from a memmap cache, and track memory.

    RssAnon (the process's own memory) is sampled every batch: with memory mapping it stays
    flat however large the set; RssFile is the page cache of the mapped file, which the kernel
    reclaims under pressure.
    """
    import pandas as pd
    from torch.utils.data import DataLoader

    from asc_kd.data.datamodule import ClipDataset, already_batched
    from asc_kd.models.frontends import StudentMel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        cache = _random_cache(Path(tmp) / "cache", n_clips)
        frame = pd.DataFrame(
            {
                "filename": cache.filenames,
                "target": np.arange(n_clips) % 10,
                "device_index": 0,
            }
        )
        logits = torch.randn(n_clips, 10)
        loader = DataLoader(
            ClipDataset(frame, cache, logits),
            batch_size=batch_size,
            shuffle=True,
            num_workers=num_workers,
            collate_fn=already_batched,
            drop_last=True,
            pin_memory=device.startswith("cuda"),
            persistent_workers=False,
        )
        step = _KDStep(StudentMel(), True, compile_model, torch.device(device))
        before = _memory_kib()
        peak_anon = before["RssAnon"]
        start, clips = time.perf_counter(), 0
        for batch in loader:
            clips += step(batch["waveform"], batch["target"], batch["teacher_logits"])
            peak_anon = max(peak_anon, _memory_kib()["RssAnon"])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        after = _memory_kib()
    return {
        "clips": clips,
        "epoch_s": round(elapsed, 2),
        "clips_per_s": round(clips / elapsed, 1),
        "device": device,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "cache_mib": round(n_clips * 32000 * 2 / 2**20),
        "rss_anon_start_mib": round(before["RssAnon"] / 1024),
        "rss_anon_peak_mib": round(peak_anon / 1024),
        "rss_file_end_mib": round(after["RssFile"] / 1024),
    }


class EpochTimer(L.Callback):
    """Wall time and clips of every training epoch (``bench_fit_epoch``'s stopwatch)."""

    def __init__(self) -> None:
        self.epochs: list[tuple[float, int]] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._clips = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._clips += trainer.datamodule.hparams.batch_size

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epochs.append((time.perf_counter() - self._start, self._clips))


_EPOCH_RECIPE = """\
name: bench_epoch
model:
  init_args:
    model: system1
trainer:
  max_epochs: {epochs}
  limit_val_batches: 0
  callbacks:
    - class_path: Mixup
      init_args:
        alpha: 0.3
    - class_path: FreqMixStyle
      init_args:
        alpha: 0.3
        p: 0.6
    - class_path: asc_kd.benchmarks.figures.EpochTimer
"""


def bench_fit_epoch(data: DataArgs, batch_size: int, threads: int, epochs: int = 5) -> dict[str, Any]:
    """A KD epoch of system 1 through ``asc_kd.fit`` against the bare step, clips/s.

    The fit is the shipped recipe (``base.yaml`` + ``students/kd.yaml``, system 1) with Mixup and
    Freq-MixStyle, on the synthetic scenes (or ``--data.root``) read by the real DataModule from
    its cache, with random teacher logits, W&B logging offline and checkpointing; only
    validation is off. ``data``'s ``--data.*`` options go to the fit as given (``batch_size`` is
    the default of ``data.batch_size``; ``data.num_workers`` unset keeps ``default_workers``).
    Every epoch after the first (which warms up) is timed, and the median is reported.
    ``bare`` is the same KD step (the recipe's front-end, Freq-MixStyle, forward/backward, Adam)
    on one resident batch of the fit's size in a Python loop: what the epoch would reach without
    loading, callbacks or logging. It is timed before and after the fit and the faster is the
    reference, so machine drift cannot flatter the ratio.
    """
    from asc_kd.data.options import build_datamodule, given_data_options
    from asc_kd.data.synthetic import SyntheticConfig
    from asc_kd.data.teacher_logits import save_logits
    from asc_kd.models.frontends import StudentMel
    from asc_kd.recipes import RECIPES
    from asc_kd.training.fit import fit

    torch.set_num_threads(threads)
    recipe_task = yaml.safe_load((RECIPES / "students" / "kd.yaml").read_text())["model"]["init_args"]
    frontend_kwargs = recipe_task.get("frontend_kwargs") or {}
    step = _KDStep(StudentMel(**frontend_kwargs), False, False, torch.device("cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        defaults = _data_defaults(data, work, SyntheticConfig())  # the demo's size
        logits = work / "logits.npz"
        data_args = [
            *(arg for key, value in defaults.items() for arg in (f"--data.{key}", value)),
            *("--data.validation", "none", "--data.batch_size", str(batch_size)),
            *given_data_options(data),
            *("--data.teacher_logits", str(logits)),
        ]
        datamodule = build_datamodule(data_args, teacher_logits=None)
        keys = list(datamodule.frames()["train"]["filename"])
        classes = list(datamodule.spec.classes)
        metadata = {"split": "train", "classes": classes}
        save_logits(logits, keys, torch.randn(len(keys), len(classes)), metadata)
        batch_size = datamodule.hparams.batch_size
        waveform = 0.1 * torch.randn(batch_size, 32000)
        target = torch.randint(0, 10, (batch_size,))
        teacher = torch.randn(batch_size, 10)

        def bare_rate(n_steps: int) -> float:
            times = []
            for _ in range(n_steps):
                start = time.perf_counter()
                step(waveform, target, teacher)
                times.append(time.perf_counter() - start)
            return batch_size / float(np.median(times))

        for _ in range(3):
            step(waveform, target, teacher)
        before = bare_rate(20)
        recipe = work / "bench_epoch.yaml"
        recipe.write_text(_EPOCH_RECIPE.format(epochs=epochs))
        out = work / "out"
        args = [
            *("--config", str(RECIPES / "base.yaml")),
            *("--config", str(RECIPES / "students" / "kd.yaml")),
            *("--config", str(recipe)),
            *data_args,
            *("--model.init_args.warmup_epochs", "0", "--model.init_args.decay_start_epoch", "0"),
            *("--trainer.default_root_dir", str(out), "--trainer.logger.init_args.save_dir", str(out)),
            *("--trainer.enable_progress_bar", "false", "--checkpoint.dirpath", str(out / "ckpt")),
            *("--test", "false"),
        ]
        argv, sys.argv = sys.argv, sys.argv[:1]
        try:
            cli = fit(args)
        finally:
            sys.argv = argv
        (timer,) = [c for c in cli.trainer.callbacks if isinstance(c, EpochTimer)]
        timed = sorted(timer.epochs[1:] or timer.epochs)
        seconds, clips = timed[len(timed) // 2]
        workers = cli.trainer.train_dataloader.num_workers
    after = bare_rate(20)
    results: dict[str, Any] = {
        "clips": clips,
        "batch_size": batch_size,
        "threads": threads,
        "num_workers": workers,
        "epoch_s": round(seconds, 2),
        "epoch_clips_per_s": round(clips / seconds, 1),
        "bare_before_clips_per_s": round(before, 1),
        "bare_after_clips_per_s": round(after, 1),
        "bare_step_clips_per_s": round(max(before, after), 1),
    }
    results["epoch_over_bare"] = round(results["epoch_clips_per_s"] / results["bare_step_clips_per_s"], 3)
    return results


def bench_keys(data: DataArgs) -> dict[str, Any]:
    """Seconds of the per-file work a fit's ``setup`` does before any audio is decoded: the
    cache key of each split (names, sizes, 64 sampled files' bytes, root, inodes, mtimes) and
    the dataset fingerprint recorded in checkpoints, for the dataset of ``data``'s ``--data.*``
    options. On a full-size set (``python -m asc_kd.synthetic OUT --linked-clips 230350``)
    it shows what the keys cost on TAU22."""
    from asc_kd.data.cache import fingerprint_files, location_digest
    from asc_kd.data.options import build_datamodule

    datamodule = build_datamodule(data, {"validation": "none"})
    root = datamodule.root
    frames = datamodule.frames()
    splits = {split: list(frames[split]["filename"]) for split in ("train", "test")}
    start = time.perf_counter()
    for names in splits.values():
        fingerprint_files(root, names)
        location_digest(root, names)
    keys = time.perf_counter() - start
    fingerprint_files(root, list(dict.fromkeys([*splits["train"], *splits["test"]])))
    total = time.perf_counter() - start
    return {
        "files": sum(len(names) for names in splits.values()),
        "cache_keys_s": round(keys, 2),
        "with_dataset_fingerprint_s": round(total, 2),
    }


def bench_quant(
    data: DataArgs, checkpoint: str | None, epochs: int, threads: int, seconds: float
) -> dict[str, Any]:
    """fp32 vs int8 accuracy on the test split and CPU inference clips/s (waveform to logits),
    on the dataset of ``data``'s ``--data.*`` options (default: synthetic scenes)."""
    from asc_kd.data.options import build_datamodule, gives
    from asc_kd.deployment.quantize import load_artifact, quantize_task
    from asc_kd.tasks.restore import load_task

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        datamodule = build_datamodule(data, _data_defaults(data, Path(tmp)))
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

            results[f"{name}_clips_per_s"] = round(_rate(run, seconds), 1)
        results["acc_gap_pp"] = round(100 * (results["fp32_acc"] - results["int8_acc"]), 2)
        results["speedup_int8_over_fp32"] = round(
            results["int8_clips_per_s"] / results["fp32_clips_per_s"], 2
        )
        results["mem_bytes_int8"] = report["mem_bytes"]
        results["artifact_bytes_int8"] = report["artifact_bytes"]
        results["data"] = str(datamodule.root) if gives(data, "root") else "synthetic"
    return results
