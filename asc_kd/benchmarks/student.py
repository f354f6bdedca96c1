"""The student's benchmarks: the KD training step (``bench train``), one epoch from a
memmap cache (``bench train --epoch``) and a KD epoch through ``asc_kd.fit`` against the bare
step (``bench train --fit``)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from asc_kd.benchmarks.timing import data_defaults, interleaved, rate
from asc_kd.core.errors import ConfigError
from asc_kd.data.options import GivenData

log = logging.getLogger(__name__)


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


class KDStep:
    """One KD training step of system 1 as asc_kd's ``DistillationTask`` takes it: front-end
    (no gradient), Freq-MixStyle, forward, the KD loss in fp32, backward, fused Adam.

    ``channels_last`` feeds the convolutions NHWC tensors; ``bf16`` runs the model under bf16
    autocast (``asc_kd.evaluation.inference.autocast``), as the task's ``precision``; ``compiled``
    wraps the model in ``torch.compile``. The loss, BatchNorm's statistics and the optimizer
    stay fp32 either way.
    """

    def __init__(
        self,
        frontend: nn.Module,
        channels_last: bool = False,
        compiled: bool = False,
        device: torch.device | str = "cpu",
        fused: bool = True,
        bf16: bool = False,
    ) -> None:
        from asc_kd.models import get_model

        self.device = device = torch.device(device)
        self.frontend = frontend.to(device)
        model = get_model("system1").to(device)
        self.channels_last = channels_last
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = torch.compile(model) if compiled else model
        # asc_kd's tasks use the fused Adam kernel; CP-JKU's code the default per-tensor loop.
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
        self.precision = "bf16" if bf16 or device.type == "cuda" else "fp32"

    def __call__(self, waveform: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor) -> int:
        from asc_kd.augmentations.spectrogram import freq_mixstyle
        from asc_kd.evaluation.inference import autocast
        from asc_kd.tasks.losses import knowledge_distillation_loss

        waveform, target, teacher = (
            t.to(self.device, non_blocking=True) for t in (waveform, target, teacher)
        )
        with torch.no_grad():
            x = self.frontend(waveform)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = freq_mixstyle(x, 0.3)
        with autocast(self.device, self.precision):
            logits = self.model(x)
        loss = knowledge_distillation_loss(logits.float(), target, teacher, 3.0, 0.1)["loss"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return len(waveform)


def student_recipe_task() -> dict[str, Any]:
    """The student recipe's task arguments (``students/kd.yaml``): its front-end, memory format
    and precision, which the benchmarks' bare steps follow."""
    from asc_kd.recipes import RECIPES

    return yaml.safe_load((RECIPES / "students" / "kd.yaml").read_text())["model"]["init_args"]


def recipe_frontend() -> dict[str, Any]:
    """The student recipe's front-end arguments: CP-JKU's training front-end with its per-batch
    mel band jitter and frequency masks."""
    return dict(student_recipe_task().get("frontend_kwargs") or {})


def bench_train(
    batch_size: int,
    seconds: float,
    threads: int,
    compile_model: bool,
    device: str = "cpu",
    cpjku: str | None = None,
) -> dict[str, Any]:
    """KD training step of system1 (front-end + Freq-MixStyle + fwd/bwd + Adam step), clips/s.

    Every variant runs the student recipe's training front-end (``recipe_frontend``).
    ``baseline`` is the in-package imitation of the public CP-JKU DCASE23 components: a Kaldi
    filterbank rebuilt per batch, ``|X|`` squared, the dense product, NCHW, fp32. ``cpjku``
    (with ``cpjku``, a checkout of their code) is their own ``AugmentMelSTFT``, ``cp_resnet``,
    MixStyle, KD loss and Adam (``asc_kd.benchmarks.cpjku``). asc_kd's variants share its
    front-end (filterbank built once per band, ``re² + im²``, the banded product):
    ``asc_kd_fp32`` in NCHW, ``asc_kd_channels_last``, and ``asc_kd_bf16`` (channels-last
    under bf16 autocast: fast on CPUs with AVX512-BF16/AMX and on GPUs, emulated and slow
    elsewhere); ``--compile`` adds ``asc_kd_compiled`` (``asc_kd_bf16`` compiled). The best
    asc_kd variant is compared with ``baseline`` and with ``cpjku``. All variants run in this
    process, so all have ``keep_freed_memory``'s malloc settings under ``python -m asc_kd.bench``.
    """
    from asc_kd.evaluation.inference import fast_bf16
    from asc_kd.models.frontends import StudentMel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    target_device = torch.device(device)
    frontend = recipe_frontend()
    waveform = torch.randn(batch_size, 32000) * 0.1
    target = torch.randint(0, 10, (batch_size,))
    teacher = torch.randn(batch_size, 10)
    steps: dict[str, Callable[..., int]] = {
        "baseline": KDStep(_PerBatchFilterbankMel().train(), device=target_device)
    }
    if cpjku is not None:
        from asc_kd.benchmarks.cpjku import load_cpjku, student_step

        if target_device.type != "cpu":
            raise ConfigError("--cpjku runs CP-JKU's code on the CPU only; leave --device at cpu")
        steps["cpjku"] = student_step(load_cpjku(cpjku), frontend, temperature=3.0, label_weight=0.1)
    variants = {
        "asc_kd_fp32": {},
        "asc_kd_channels_last": {"channels_last": True},
        "asc_kd_bf16": {"channels_last": True, "bf16": True},
    }
    if compile_model:
        variants["asc_kd_compiled"] = {"channels_last": True, "bf16": True, "compiled": True}
    for name, options in variants.items():
        steps[name] = KDStep(StudentMel(**frontend).train(), device=target_device, **options)
    results: dict[str, Any] = {
        "batch_size": batch_size,
        "threads": threads,
        "device": device,
        "model": "system1",
        "fast_bf16": fast_bf16(target_device),
    }
    for name, step in steps.items():  # warm-up (and compilation, timed)
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # CP-JKU's models print on their first call
            for _ in range(3):
                step(waveform, target, teacher)
        results[f"{name}_warmup_s"] = round(time.perf_counter() - start, 1)
    medians = interleaved(
        {name: partial(step, waveform, target, teacher) for name, step in steps.items()},
        seconds,
        sync=target_device.type == "cuda",
    )
    for name, median in medians.items():
        results[f"{name}_clips_per_s"] = round(batch_size / median, 1)
    best = max(variants, key=lambda name: results[f"{name}_clips_per_s"])
    results["best"] = best
    for other in ("baseline", "cpjku"):
        if other in steps:
            results[f"ratio_best_over_{other}"] = round(
                results[f"{best}_clips_per_s"] / results[f"{other}_clips_per_s"], 2
            )
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
        step = KDStep(StudentMel(), channels_last=True, compiled=compile_model, device=device)
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


class EpochTime(NamedTuple):
    """One training epoch as ``EpochTimer`` took it."""

    seconds: float
    clips: int


class EpochTimer(L.Callback):
    """Wall time and clips of every training epoch (``bench_fit_epoch``'s stopwatch).

    ``after_epoch``, when set, runs after each epoch's time is taken and before the next epoch
    starts (its results in ``references``): ``bench_fit_epoch`` times its references there, next
    to each epoch, so that a drift in machine speed hits the epoch and its references alike.
    """

    #: Set by ``bench_fit_epoch`` for the fit it runs (the recipe names this class, not an instance).
    after_epoch: Callable[[], Any] | None = None

    def __init__(self) -> None:
        self.epochs: list[EpochTime] = []
        self.references: list[Any] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._clips = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._clips += trainer.datamodule.hparams.batch_size

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epochs.append(EpochTime(time.perf_counter() - self._start, self._clips))
        if EpochTimer.after_epoch is not None:
            self.references.append(EpochTimer.after_epoch())


class References(NamedTuple):
    """``bench_fit_epoch``'s references timed after one fit epoch: the plain loop's and the bare
    step's clips/s, the loop's clips, and the seconds from the fit's start to their own."""

    loop_clips_per_s: float
    bare_step_clips_per_s: float
    loop_clips: int
    at_s: float


#: Mixup's alpha in the timed fit's recipe and in the plain loop that does its work by hand.
_MIXUP_ALPHA = 0.3

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
        alpha: {mixup_alpha}
    - class_path: FreqMixStyle
      init_args:
        alpha: 0.3
        p: 0.6
    - class_path: asc_kd.benchmarks.student.EpochTimer
"""


def _data_options(data: GivenData) -> list[str]:
    """The data options ``data`` gives, as the fit's command line (typed values in JSON, which
    the fit reads as YAML: ``true``, ``null``, ``[a, b]``)."""
    return [
        f"--data.{key}={value if isinstance(value, str) else json.dumps(value)}"
        for key, value in data.values.items()
    ]


def bench_fit_epoch(
    data: GivenData, batch_size: int, threads: int, epochs: int = 7, bare_seconds: float = 2.0
) -> dict[str, Any]:
    """A KD epoch of system 1 through ``asc_kd.fit`` against the bare step, clips/s.

    The fit is the shipped recipe (``base.yaml`` + ``students/kd.yaml``, system 1) with Mixup and
    Freq-MixStyle, on the synthetic scenes (or ``--data.root``) read by the real DataModule from
    its cache, with random teacher logits, W&B logging offline and checkpointing; only
    validation is off. ``data``'s ``--data.*`` options go to the fit as given (``batch_size`` is
    the default of ``data.batch_size``; ``data.num_workers`` unset keeps ``default_workers``).
    ``bare`` is the same KD step (the recipe's front-end, memory format and precision,
    Freq-MixStyle, forward/backward, Adam) on one resident batch of the fit's size in a Python
    loop: what the epoch would reach without loading, callbacks or logging. ``loop`` is the
    recipe's data work per batch without Lightning: an epoch of the fit's own DataModule and
    loader (the cache read), its roll (``augment``), Mixup with the teacher's probabilities
    mixed at the recipe's temperature, then the bare step (Freq-MixStyle on every batch, the
    loss on the dominant labels), in a plain Python loop.

    The two references are timed after every fit epoch, before the next one starts (one loop
    epoch, then bare steps for ``bare_seconds``, ``EpochTimer.after_epoch``), each as clips over
    its whole span like the epoch itself, and each epoch is compared with the
    mean of the references just before and just after it, so a drift in machine speed (a shared
    VM's speed moves within minutes) hits all three alike. The ratios are the medians of
    the per-epoch ratios over the epochs after the first (which warms up and whose references
    open the second's bracket); the clips/s are the medians of those epochs' rates. The
    fit over ``loop`` is about what Lightning, its callbacks and the task's logging cost;
    ``loop`` over ``bare`` is what the recipe's data work costs, which no loop can leave out.
    """
    from asc_kd.augmentations.mixing import mix_teacher_logits, mixup
    from asc_kd.data.options import build_datamodule
    from asc_kd.data.synthetic import SyntheticConfig
    from asc_kd.data.teacher_logits import save_logits
    from asc_kd.evaluation.inference import uses_bf16
    from asc_kd.models.frontends import StudentMel
    from asc_kd.recipes import RECIPES

    if EpochTimer.after_epoch is not None:  # its references would be timed inside the other's fit
        raise RuntimeError("another bench_fit_epoch is running in this process")
    torch.set_num_threads(threads)
    recipe_task = student_recipe_task()
    temperature = float(recipe_task["temperature"])
    frontend_kwargs = recipe_task.get("frontend_kwargs") or {}
    cpu = torch.device("cpu")
    step = KDStep(
        StudentMel(**frontend_kwargs).train(),
        channels_last=bool(recipe_task.get("channels_last")),
        bf16=uses_bf16(cpu, recipe_task.get("precision", "fp32")),
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        defaults = data_defaults(data, work, SyntheticConfig())  # the demo's size
        logits = work / "logits.npz"
        given = GivenData(
            {
                **defaults,
                "validation": "none",
                "batch_size": batch_size,
                **data.values,
                "teacher_logits": str(logits),
            }
        )
        datamodule = build_datamodule(given, teacher_logits=None)
        keys = list(datamodule.frames()["train"]["filename"])
        classes = list(datamodule.spec.classes)
        metadata = {"split": "train", "classes": classes}
        save_logits(logits, keys, torch.randn(len(keys), len(classes)), metadata)
        batch_size = datamodule.hparams.batch_size
        loop_data = build_datamodule(given)
        loop_data.prepare_data()
        loop_data.setup("fit")

        def loop_epoch() -> tuple[float, int]:
            start, clips = time.perf_counter(), 0
            for batch in loop_data.train_dataloader():
                batch = mixup(loop_data.augment(batch), _MIXUP_ALPHA, len(classes))
                lam, perm = batch["mix_lambda"], batch["mix_permutation"]
                teacher_mixed = mix_teacher_logits(batch["teacher_logits"], lam, perm, temperature)
                clips += step(batch["waveform"], batch["target"], teacher_mixed)
            return time.perf_counter() - start, clips

        waveform = 0.1 * torch.randn(batch_size, 32000)
        target = torch.randint(0, 10, (batch_size,))
        teacher = torch.randn(batch_size, 10)

        def references() -> References:
            started = time.perf_counter() - fit_start
            loop_s, loop_clips = loop_epoch()
            # clips over the whole span, as the epoch's rate is: a median step would leave out
            # the slow steps (a collection, the machine's hiccups) that an epoch pays for
            bare = rate(lambda: step(waveform, target, teacher), bare_seconds, warmup=0)
            return References(loop_clips / loop_s, bare, loop_clips, started)

        for _ in range(3):
            step(waveform, target, teacher)
        loop_epoch()  # warms the loop's reads as the fit's first epoch warms the fit
        recipe = work / "bench_epoch.yaml"
        recipe.write_text(_EPOCH_RECIPE.format(epochs=epochs, mixup_alpha=_MIXUP_ALPHA))
        out = work / "out"
        args = [
            *("--config", str(RECIPES / "base.yaml")),
            *("--config", str(RECIPES / "students" / "kd.yaml")),
            *("--config", str(recipe)),
            *_data_options(given),
            *("--model.init_args.warmup_epochs", "0", "--model.init_args.decay_start_epoch", "0"),
            *("--checkpoint.dirpath", str(out / "ckpt"), "--test", "false"),
        ]
        EpochTimer.after_epoch = references
        fit_start = time.perf_counter()
        try:
            cli = _quiet_fit(args, out)
        finally:
            EpochTimer.after_epoch = None
        (timer,) = [c for c in cli.trainer.callbacks if isinstance(c, EpochTimer)]
        workers = cli.trainer.train_dataloader.num_workers
    epochs_run, refs = timer.epochs, timer.references
    if len(refs) != len(epochs_run):
        raise RuntimeError(f"{len(epochs_run)} epochs but {len(refs)} reference timings")
    first = 1 if len(epochs_run) > 1 else 0  # the first epoch warms up: its references bracket the next
    timed = [(epochs_run[i], refs[max(i - 1, 0)], refs[i]) for i in range(first, len(epochs_run))]
    fit_rates = [epoch.clips / epoch.seconds for epoch, _, _ in timed]
    loop_rates = [(before.loop_clips_per_s + after.loop_clips_per_s) / 2 for _, before, after in timed]
    bare_rates = [
        (before.bare_step_clips_per_s + after.bare_step_clips_per_s) / 2 for _, before, after in timed
    ]

    def median(values: list[float]) -> float:
        return float(np.median(values))

    results: dict[str, Any] = {
        "clips": timed[0][0].clips,
        "batch_size": batch_size,
        "threads": threads,
        "num_workers": workers,
        "epochs_timed": len(timed),
        "epoch_s": round(median([epoch.seconds for epoch, _, _ in timed]), 2),
        "epoch_clips_per_s": round(median(fit_rates), 1),
        "bare_step_clips_per_s": round(median(bare_rates), 1),
        "loop_clips": timed[0][2].loop_clips,
        "loop_clips_per_s": round(median(loop_rates), 1),
    }
    for name, numerators, denominators in (
        ("epoch_over_bare", fit_rates, bare_rates),
        ("epoch_over_loop", fit_rates, loop_rates),
        ("loop_over_bare", loop_rates, bare_rates),
    ):
        each = [n / d for n, d in zip(numerators, denominators, strict=True)]
        results[name] = round(median(each), 3)
        results[f"{name}_each"] = [round(r, 3) for r in each]
    results["bare_step_clips_per_s_each"] = [round(r, 1) for r in bare_rates]
    results["loop_clips_per_s_each"] = [round(r, 1) for r in loop_rates]
    results["references_after_each_epoch"] = [  # loop and bare clips/s, and when they started
        {
            "loop_clips_per_s": round(ref.loop_clips_per_s, 1),
            "bare_step_clips_per_s": round(ref.bare_step_clips_per_s, 1),
            "at_s": round(ref.at_s, 3),
        }
        for ref in refs
    ]
    return results


def _quiet_fit(args: list[str], out: Path) -> Any:
    """``asc_kd.fit`` with ``args``, its outputs under ``out``, W&B offline and no progress bar."""
    from asc_kd.training.fit import fit

    return fit(
        [
            *args,
            *("--trainer.default_root_dir", str(out), "--trainer.logger.init_args.save_dir", str(out)),
            *("--trainer.logger.init_args.offline", "true", "--trainer.enable_progress_bar", "false"),
            "--trainer.enable_model_summary=false",
        ]
    )


def bench_precision(seeds: int = 3, threads: int = 2) -> dict[str, Any]:
    """System 1's synthetic-scenes test accuracy over ``seeds`` seeds, fitted with the task's
    ``precision`` fp32 and bf16: whether bf16 keeps the recipe's result.

    The fits are ``make demo``'s system 1 (``base``, ``students/kd``, ``students/system1``,
    ``demo/synthetic``: Mixup, Freq-MixStyle, KD at temperature 3, 4 epochs) on the demo's
    synthetic scenes, distilled from one ``demo/teachers/cnn_tiny`` teacher fitted first; the
    two precisions share the teacher's logits and the seeds, so only the precision differs.
    Reported: each precision's mean and sample standard deviation of the test accuracy, every
    seed's value, and the gap between the means against the larger of the two spreads.
    """
    from asc_kd.data.synthetic import SyntheticConfig, ensure_synthetic
    from asc_kd.evaluation.inference import fast_bf16
    from asc_kd.training.logits import describe, logits_stage

    torch.set_num_threads(threads)
    results: dict[str, Any] = {
        "seeds": seeds,
        "threads": threads,
        "fast_bf16": fast_bf16(torch.device("cpu")),
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = ensure_synthetic(work / "synthetic", SyntheticConfig())
        data = GivenData({"root": str(root), "cache_dir": str(work / "cache")})
        demo = ["--config", "demo/synthetic", *_data_options(data)]
        start = time.perf_counter()
        teacher = _quiet_fit(
            ["--config", "base", "--config", "demo/teachers/cnn_tiny", *demo, "--test", "false"],
            work / "teacher",
        )
        logits = work / "logits.npz"
        source = teacher.summary["files"]["reported_checkpoint"]
        logits_stage([describe(source)], data, logits, device="cpu", progress=False)
        results["teacher_s"] = round(time.perf_counter() - start, 1)
        student = ["--config", "base", "--config", "students/kd", "--config", "students/system1", *demo]
        for precision in ("fp32", "bf16"):
            accuracies, start = [], time.perf_counter()
            for seed in range(seeds):
                cli = _quiet_fit(
                    [
                        *student,
                        *("--data.teacher_logits", str(logits), "--seed_everything", str(seed)),
                        *("--model.init_args.precision", precision),
                    ],
                    work / f"{precision}-{seed}",
                )
                accuracies.append(cli.summary["metrics"]["test/acc"])
            results[f"{precision}_fit_s"] = round(time.perf_counter() - start, 1)
            results[f"{precision}_acc"] = [round(a, 4) for a in accuracies]
            results[f"{precision}_acc_mean"] = round(float(np.mean(accuracies)), 4)
            results[f"{precision}_acc_std"] = round(
                float(np.std(accuracies, ddof=1)) if seeds > 1 else 0.0, 4
            )
    gap = abs(results["bf16_acc_mean"] - results["fp32_acc_mean"])
    spread = max(results["bf16_acc_std"], results["fp32_acc_std"])
    results["gap"] = round(gap, 4)
    results["within_spread"] = bool(gap <= spread)
    return results
