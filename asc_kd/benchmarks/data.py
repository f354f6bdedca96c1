"""The data path's benchmarks: training batches from wavs vs the cache (``bench data``), and
the seconds of the cache keys and dataset fingerprint (``bench keys``)."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asc_kd.data.options import GivenData

from asc_kd.benchmarks.timing import data_defaults, rate

log = logging.getLogger(__name__)


def bench_data(data: GivenData, seconds: float) -> dict[str, Any]:
    """Clips/s of training batches decoded from wavs vs read from the resampled cache."""
    from asc_kd.data.options import build_datamodule

    with tempfile.TemporaryDirectory() as tmp:
        defaults = data_defaults(data, Path(tmp))
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

            results[f"{name}_clips_per_s"] = round(rate(one_epoch, seconds), 1)
        results["clips"] = len(datamodule.datasets["train"])
        results["ratio_cache_over_wav"] = round(results["cache_clips_per_s"] / results["wav_clips_per_s"], 2)
    return results


def bench_keys(data: GivenData) -> dict[str, Any]:
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
