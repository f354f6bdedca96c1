"""``python -m asc_kd.bench``: throughput figures measured in one run, printed as ratios.

    python -m asc_kd.bench data  [--root DIR] [--json]   # wav decode+resample vs cache
    python -m asc_kd.bench train [--json]                # KD training step, clips/s

Numbers depend on the machine; every figure in the README names the command that made it.
Benchmarks run on synthetic scenes (generated into a temporary folder unless ``--root``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

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


def _synthetic_root(root: str | None, workdir: Path) -> Path:
    from asc_kd.data.synthetic import SyntheticConfig, ensure_synthetic

    if root is not None:
        return Path(root)
    return ensure_synthetic(workdir / "synthetic", SyntheticConfig(train_segments_per_scene=60))


def bench_data(root: str | None, batch_size: int, seconds: float, num_workers: int) -> dict[str, Any]:
    """Clips/s of training batches decoded from wavs vs read from the resampled cache."""
    from asc_kd.data.datamodule import TAU22DataModule

    with tempfile.TemporaryDirectory() as tmp:
        data_root = _synthetic_root(root, Path(tmp))
        results: dict[str, Any] = {"batch_size": batch_size, "num_workers": num_workers}
        for name, use_cache in (("wav", False), ("cache", True)):
            datamodule = TAU22DataModule(
                root=str(data_root),
                cache_dir=str(Path(tmp) / "cache"),
                batch_size=batch_size,
                num_workers=num_workers,
                use_cache=use_cache,
            )
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


def bench_train(batch_size: int, seconds: float, threads: int, compile_model: bool) -> dict[str, Any]:
    """KD training step of system1 (front-end + Freq-MixStyle + fwd/bwd + Adam step), clips/s.

    ``baseline`` rebuilds the filterbank per batch and runs the model in NCHW, as the public
    CP-JKU DCASE23 components do; the other variants are asc_kd's front-end with the
    filterbank built once, with channels-last and (optionally) ``torch.compile``.
    """
    from asc_kd.callbacks.mixstyle import freq_mixstyle
    from asc_kd.data.frontends import StudentMel
    from asc_kd.losses import knowledge_distillation_loss
    from asc_kd.models import get_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    waveform = torch.randn(batch_size, 32000) * 0.1
    target = torch.randint(0, 10, (batch_size,))
    teacher = torch.randn(batch_size, 10)
    variants: dict[str, tuple[nn.Module, bool, bool]] = {
        "baseline": (_PerBatchFilterbankMel(), False, False),
        "asc_kd": (StudentMel(), False, False),
        "asc_kd_channels_last": (StudentMel(), True, False),
    }
    if compile_model:
        variants["asc_kd_compiled"] = (StudentMel(), True, True)
    results: dict[str, Any] = {"batch_size": batch_size, "threads": threads, "model": "system1"}
    for name, (frontend, channels_last, compiled) in variants.items():
        model = get_model("system1")
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        step_model = torch.compile(model) if compiled else model
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step(frontend=frontend, step_model=step_model, optimizer=optimizer, cl=channels_last) -> int:
            with torch.no_grad():
                x = frontend(waveform)
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            x = freq_mixstyle(x, 0.3)
            loss = knowledge_distillation_loss(step_model(x), target, teacher, 3.0, 0.1)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return batch_size

        results[f"{name}_clips_per_s"] = round(_rate(step, seconds, warmup=3 if compiled else 1), 1)
    best = max(
        (k for k in results if k.endswith("_clips_per_s") and k != "baseline_clips_per_s"),
        key=lambda k: results[k],
    )
    results["best"] = best.removesuffix("_clips_per_s")
    results["ratio_best_over_baseline"] = round(results[best] / results["baseline_clips_per_s"], 2)
    return results


def _print(results: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(results))
        return
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asc_kd.bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    data = sub.add_parser("data", help="clips/s loading batches: wav decode + resample vs cache")
    data.add_argument("--root", default=None, help="dataset root (default: generated synthetic scenes)")
    data.add_argument("--batch-size", type=int, default=64)
    data.add_argument("--num-workers", type=int, default=0)
    data.add_argument("--seconds", type=float, default=5.0, help="minimum measuring time per variant")
    train = sub.add_parser("train", help="KD training-step clips/s of system1")
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--threads", type=int, default=2)
    train.add_argument("--seconds", type=float, default=10.0)
    train.add_argument("--compile", action="store_true", help="also measure torch.compile")
    for sub_parser in (data, train):
        sub_parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.what == "data":
        results = bench_data(args.root, args.batch_size, args.seconds, args.num_workers)
    else:
        results = bench_train(args.batch_size, args.seconds, args.threads, args.compile)
    _print(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
