"""Timing shared by the benchmarks: items per second, and the synthetic scenes a benchmark
reads when no dataset is given."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from asc_kd.data.options import GivenData


def rate(fn: Callable[[], int], min_seconds: float, warmup: int = 1) -> float:
    """Items per second of ``fn`` (which returns how many items it processed)."""
    for _ in range(warmup):
        fn()
    items, start = 0, time.perf_counter()
    while True:
        items += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return items / elapsed


def data_defaults(data: GivenData, workdir: Path, config: Any = None) -> dict[str, str]:
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


def interleaved(
    steps: dict[str, Callable[[], Any]], seconds: float, min_rounds: int = 5, sync: bool = False
) -> dict[str, float]:
    """Median seconds of each callable, timed in turns (one call of each per round) for at least
    ``seconds`` per callable, so drift in machine load hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    deadline = time.perf_counter() + seconds * len(steps)
    while time.perf_counter() < deadline or min(len(t) for t in times.values()) < min_rounds:
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if sync:
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in times.items()}
