"""A resampled-audio cache: decode and resample every clip once, then read rows of a memmap.

Decoding 24-bit wavs and resampling 44.1 -> 32 kHz costs far more than a training step of a
128 KB student, so the DataModule reads audio from one int16 array on disk instead
(``audio.int16``, shape clips x samples, memory-mapped so RAM does not grow with the dataset).

The cache is keyed by what its content depends on: the source files (relative names and
sizes), the source and target rates and the clip length. A build writes into a temporary
folder and renames it only when every clip is in, so an interrupted build is never read: the
next run finds no complete cache for its key and builds again (CP-JKU's cache was keyed by row
index only, so 1-s and 10-s audio could silently mix; cpjku_dcase23#6).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from asc_kd.data.audio import AudioFileError, Resampler, from_int16, read_clip, to_int16

log = logging.getLogger(__name__)

CACHE_VERSION = 1
_CHUNK = 64


def fingerprint_files(root: str | Path, filenames: Sequence[str]) -> str:
    """SHA-256 over the relative names and byte sizes of ``filenames`` under ``root``.

    Sizes come from ``stat`` (no audio is read), so fingerprinting the full 230k-file
    development set takes seconds. A missing file raises ``AudioFileError`` naming it.
    """
    root = Path(root)
    digest = hashlib.sha256()
    for name in filenames:
        path = root / name
        try:
            size = path.stat().st_size
        except FileNotFoundError as err:
            from asc_kd.data.tau22 import OFFICIAL_ARCHIVE

            raise AudioFileError(
                f"audio file {path} not found; it is part of the {OFFICIAL_ARCHIVE}"
            ) from err
        digest.update(f"{name}\t{size}\n".encode())
    return digest.hexdigest()


class AudioCache:
    """Read-only view of a complete cache; opens its memmap lazily in each process."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        index_path = self.folder / "index.json"
        if not index_path.is_file():
            raise FileNotFoundError(f"{self.folder} is not a complete audio cache (no index.json)")
        index = json.loads(index_path.read_text())
        self.fingerprint: str = index["fingerprint"]
        self.sample_rate: int = index["sample_rate"]
        self.n_samples: int = index["n_samples"]
        self.filenames: list[str] = index["filenames"]
        self.row_of: dict[str, int] = {name: row for row, name in enumerate(self.filenames)}
        expected = len(self.filenames) * self.n_samples * 2
        size = (self.folder / "audio.int16").stat().st_size
        if size != expected:
            raise FileNotFoundError(
                f"{self.folder}/audio.int16 has {size} bytes, expected {expected}; cache is damaged"
            )
        self._data: np.memmap | None = None

    def __len__(self) -> int:
        return len(self.filenames)

    @property
    def data(self) -> np.memmap:
        if self._data is None:
            self._data = np.memmap(
                self.folder / "audio.int16",
                dtype=np.int16,
                mode="r",
                shape=(len(self.filenames), self.n_samples),
            )
        return self._data

    def __getstate__(self) -> dict:
        # DataLoader workers reopen the memmap instead of receiving a pickled copy of it.
        return {**self.__dict__, "_data": None}

    def read(self, rows: Sequence[int] | np.ndarray) -> torch.Tensor:
        """float32 waveforms of the given rows, shape (len(rows), n_samples)."""
        rows = np.asarray(rows)
        order = np.argsort(rows, kind="stable")
        block = np.empty((len(rows), self.n_samples), dtype=np.int16)
        block[order] = self.data[rows[order]]  # sorted reads are sequential on disk
        return from_int16(block)


def _process_alive(pid: str) -> bool:
    """Whether a build's owner still runs (its partial folder must then be left alone)."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return int(pid) != os.getpid()


def cache_key(fingerprint: str, source_rate: int, sample_rate: int, n_samples: int) -> str:
    """Hash of everything a cache's content depends on."""
    text = f"v{CACHE_VERSION}|{fingerprint}|{source_rate}|{sample_rate}|{n_samples}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


_worker_state: dict = {}


def _init_worker(
    memmap_path: str, shape: tuple[int, int], source_rate: int, target_rate: int, source_n: int
) -> None:
    torch.set_num_threads(1)
    _worker_state["out"] = np.memmap(memmap_path, dtype=np.int16, mode="r+", shape=shape)
    _worker_state["resample"] = Resampler(source_rate, target_rate)
    _worker_state["source_rate"] = source_rate
    _worker_state["source_n"] = source_n


def _convert_chunk(job: tuple[int, list[str]]) -> int:
    start, paths = job
    rate, n = _worker_state["source_rate"], _worker_state["source_n"]
    clips = np.stack([read_clip(path, rate, n) for path in paths])
    waveforms = _worker_state["resample"](clips)
    out = _worker_state["out"]
    if waveforms.shape[1] != out.shape[1]:
        raise AudioFileError(
            f"{paths[0]}: resampled to {waveforms.shape[1]} samples, expected {out.shape[1]}"
        )
    out[start : start + len(paths)] = to_int16(waveforms)
    return len(paths)


def build_cache(
    root: str | Path,
    filenames: Sequence[str],
    cache_dir: str | Path,
    sample_rate: int = 32_000,
    source_rate: int = 44_100,
    clip_seconds: float = 1.0,
    num_workers: int | None = None,
    progress: bool = True,
) -> AudioCache:
    """Return the cache for ``filenames``, building it first if no complete one exists.

    Args:
        root: folder the filenames are relative to (the dataset root).
        filenames: clips to cache, in row order.
        cache_dir: where caches live; one sub-folder per key.
        sample_rate: target rate of the cached audio.
        source_rate: rate every source wav must have (TAU22: 44.1 kHz).
        clip_seconds: length every source clip must have.
        num_workers: decoding processes (default: all cores; 0 decodes in this process).
        progress: show a progress bar.
    """
    root, cache_dir = Path(root), Path(cache_dir)
    if not filenames:
        raise ValueError("no files to cache: the split is empty")
    source_n = round(source_rate * clip_seconds)
    target_n = round(sample_rate * clip_seconds)
    fingerprint = fingerprint_files(root, filenames)
    key = cache_key(fingerprint, source_rate, sample_rate, target_n)
    folder = cache_dir / f"tau22-{sample_rate}hz-{key}"
    if folder.is_dir():
        try:
            return AudioCache(folder)
        except (FileNotFoundError, json.JSONDecodeError, KeyError) as err:
            log.warning("rebuilding damaged cache %s: %s", folder, err)
            shutil.rmtree(folder)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for stale in cache_dir.glob(f"{folder.name}.partial-*"):
        if not _process_alive(stale.name.rsplit("-", 1)[-1]):
            log.info("removing interrupted cache build %s", stale)
            shutil.rmtree(stale, ignore_errors=True)
    partial = cache_dir / f"{folder.name}.partial-{os.getpid()}"
    partial.mkdir()
    try:
        _fill(
            partial,
            root,
            filenames,
            source_rate,
            sample_rate,
            source_n,
            target_n,
            num_workers,
            progress,
        )
        index = {
            "version": CACHE_VERSION,
            "fingerprint": fingerprint,
            "source_rate": source_rate,
            "sample_rate": sample_rate,
            "n_samples": target_n,
            "filenames": list(filenames),
        }
        (partial / "index.json").write_text(json.dumps(index))
        try:
            os.replace(partial, folder)
        except OSError:
            if not (folder / "index.json").is_file():
                raise
            shutil.rmtree(partial, ignore_errors=True)  # another process finished the same cache first
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return AudioCache(folder)


def _fill(
    partial: Path,
    root: Path,
    filenames: Sequence[str],
    source_rate: int,
    sample_rate: int,
    source_n: int,
    target_n: int,
    num_workers: int | None,
    progress: bool,
) -> None:
    shape = (len(filenames), target_n)
    memmap_path = partial / "audio.int16"
    np.memmap(memmap_path, dtype=np.int16, mode="w+", shape=shape).flush()
    paths = [str(root / name) for name in filenames]
    jobs = [(start, paths[start : start + _CHUNK]) for start in range(0, len(paths), _CHUNK)]
    workers = (os.cpu_count() or 1) if num_workers is None else num_workers
    init_args = (str(memmap_path), shape, source_rate, sample_rate, source_n)
    bar = tqdm(total=len(paths), desc="caching audio", unit="clip", disable=not progress)
    previous_threads = torch.get_num_threads()
    try:
        if workers <= 1:
            _init_worker(*init_args)
            for job in jobs:
                bar.update(_convert_chunk(job))
        else:
            context = multiprocessing.get_context("fork")  # as DataLoader workers: no re-import of __main__
            with context.Pool(workers, _init_worker, init_args) as pool:
                for done in pool.imap_unordered(_convert_chunk, jobs):
                    bar.update(done)
    finally:
        _worker_state.clear()
        torch.set_num_threads(previous_threads)
        bar.close()
