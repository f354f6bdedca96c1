"""A resampled-audio cache: decode and resample every clip once, then read rows of a memmap.

Decoding 24-bit wavs and resampling 44.1 -> 32 kHz costs far more than a training step of a
128 KB student, so the DataModule reads audio from one int16 array on disk instead
(``audio.int16``, shape clips x samples, memory-mapped so RAM does not grow with the dataset).
Each clip is stored once at its full length (1 s for TAU22, 10 s for TAU20); segments are
slices of its row.

The cache is keyed by what its content depends on (``cache_key``): the dataset's sampled
fingerprint (``fingerprint_files``: names, sizes and the bytes of a sample of the files),
where the files are and when they were written (the root's real path, each file's inode and
mtime), the source and target rates and the clip length. Two datasets whose files differ
therefore never share a cache, even when their names and sizes agree. A build writes into a
temporary folder and renames it only when every clip is in, so an interrupted build is never
read: the next run finds no complete cache for its key and builds again (CP-JKU's cache was
keyed by row index only, so 1-s and 10-s audio could silently mix; cpjku_dcase23#6). One
process builds a cache at a time (``asc_kd.core.locks.folder_lock``): another one that asks
for the same cache meanwhile waits and then reads it.

The build reads every byte of every clip, so it also hashes them: ``content.sha256`` holds each
clip's SHA-256 (one row per cached clip) and ``AudioCache.content_hash`` combines them into the
full content hash of any of its clips (``combine_digests``). That hash, unlike the sampled
fingerprint, tells a clip rewritten at the same size apart; checkpoints and logits files record
it, and a resume or a logits join compares it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import stat
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from asc_kd.core.io import remove_stale_partials
from asc_kd.core.locks import DEFAULT_TIMEOUT, folder_lock
from asc_kd.data.audio import AudioFileError, Resampler, fit_length, from_int16, read_clip, to_int16
from asc_kd.data.spec import DatasetError

log = logging.getLogger(__name__)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask on Linux, else all of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


CACHE_VERSION = 3  # 3: each clip's SHA-256 in content.sha256
_CHUNK = 64
#: Files whose full content enters the fingerprint: enough to tell two generated or edited
#: datasets apart, few enough that fingerprinting the 230k-file TAU22 stays a stat per file.
CONTENT_SAMPLE = 64
#: The file of each cached clip's SHA-256, one row of ``DIGEST_SIZE`` bytes per clip.
DIGESTS = "content.sha256"
DIGEST_SIZE = 32


class CacheError(DatasetError):
    """The cache cannot be built (no space, a write error); the message names the folder."""


def _stat(root: Path, name: str, archive: str | None) -> os.stat_result:
    path = root / name
    try:
        result = path.stat()
    except FileNotFoundError as err:
        where = f"; it is part of the {archive}" if archive else ""
        raise AudioFileError(f"audio file {path} not found{where}", "exists") from err
    if stat.S_ISDIR(result.st_mode):
        raise AudioFileError(f"{path} is a directory, not an audio file", "exists")
    return result


def _content_sample(filenames: Sequence[str], k: int = CONTENT_SAMPLE) -> list[str]:
    """A sample of names chosen by their hash: the same files whatever the listing order."""
    return sorted(filenames, key=lambda name: hashlib.sha1(name.encode()).digest())[:k]


def fingerprint_files(root: str | Path, filenames: Sequence[str], archive: str | None = None) -> str:
    """SHA-256 of a set of files: sorted names and byte sizes, plus the bytes of a sample.

    Independent of where the dataset lies and of the listing's order, so a logits file made
    on one machine checks out against a copy on another; dependent on content, so a dataset
    regenerated with other settings (same names, same sizes) gets another fingerprint.
    A missing file raises ``AudioFileError`` naming it.
    """
    root = Path(root)
    digest = hashlib.sha256()
    for name in sorted(filenames):
        digest.update(f"{name}\t{_stat(root, name, archive).st_size}\n".encode())
    for name in _content_sample(filenames):
        digest.update((root / name).read_bytes())
    return digest.hexdigest()


def combine_digests(named_digests: Iterable[tuple[str, bytes]]) -> str:
    """The full content hash of a set of files from each file's SHA-256: SHA-256 of the sorted
    ``name<TAB>hex digest`` lines, so, as ``fingerprint_files``, independent of where the files lie
    and of their order, and dependent on every byte of every file."""
    digest = hashlib.sha256()
    for name, file_digest in sorted(named_digests):
        digest.update(f"{name}\t{file_digest.hex()}\n".encode())
    return digest.hexdigest()


def location_digest(root: Path, filenames: Sequence[str]) -> str:
    """Where and when the files were written: root's real path, inodes and mtimes."""
    digest = hashlib.sha256(str(root.resolve()).encode())
    for name in filenames:
        stat = (root / name).stat()
        digest.update(f"{name}\t{stat.st_ino}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class AudioCache:
    """Read-only view of a complete cache; opens its memmap lazily in each process."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        index_path = self.folder / "index.json"
        if not index_path.is_file():
            raise FileNotFoundError(f"{self.folder} is not a complete audio cache (no index.json)")
        index = json.loads(index_path.read_text())
        #: The sampled fingerprint of the cached clips (``fingerprint_files``), part of the key.
        self.fingerprint: str = index["fingerprint"]
        #: The full content hash of every cached clip (``combine_digests``); None for a cache
        #: written without the clips' digests (the benchmarks' cache of random audio).
        self.content: str | None = index.get("content_hash")
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
        if self.content is not None:
            digests = self.folder / DIGESTS
            size = digests.stat().st_size if digests.is_file() else 0
            if size != len(self.filenames) * DIGEST_SIZE:
                raise FileNotFoundError(
                    f"{digests} has {size} bytes, expected {len(self.filenames) * DIGEST_SIZE}; "
                    "cache is damaged"
                )
        self._data: np.ndarray | None = None
        self._digests: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.filenames)

    @property
    def data(self) -> np.ndarray:
        """The clips, (clips, samples) int16: a plain ndarray view of the read-only memmap, whose
        rows index without ``np.memmap``'s per-row Python hooks (``read`` indexes 64 per batch)."""
        if self._data is None:
            self._data = np.memmap(
                self.folder / "audio.int16",
                dtype=np.int16,
                mode="r",
                shape=(len(self.filenames), self.n_samples),
            ).view(np.ndarray)
        return self._data

    def __getstate__(self) -> dict:
        # DataLoader workers reopen the memmap instead of receiving a pickled copy of it.
        return {**self.__dict__, "_data": None, "_digests": None}

    def digest(self, filename: str) -> bytes | None:
        """The SHA-256 of ``filename``'s bytes when the cache was built; None when it holds no
        such clip or no digests."""
        if self.content is None or filename not in self.row_of:
            return None
        if self._digests is None:
            self._digests = np.fromfile(self.folder / DIGESTS, dtype=np.uint8).reshape(-1, DIGEST_SIZE)
        return self._digests[self.row_of[filename]].tobytes()

    def content_hash(self, filenames: Sequence[str] | None = None) -> str | None:
        """The full content hash (``combine_digests``) of ``filenames`` (default: every cached
        clip), from the digests the build took; None when the cache does not hold them all."""
        if filenames is None or set(filenames) == self.row_of.keys():
            return self.content
        named = []
        for name in filenames:
            digest = self.digest(name)
            if digest is None:
                return None
            named.append((name, digest))
        return combine_digests(named)

    def read(
        self, rows: Sequence[int] | np.ndarray, starts: np.ndarray | None = None, length: int | None = None
    ) -> torch.Tensor:
        """float32 waveforms of the given rows, (len(rows), length or n_samples).

        ``starts`` (one per row) and ``length`` read segments of the clips instead of whole ones.
        """
        rows = np.asarray(rows)
        order = np.argsort(rows, kind="stable")  # sorted reads are sequential on disk
        if starts is None or length is None or length == self.n_samples:
            block = np.empty((len(rows), self.n_samples), dtype=np.int16)
            for i in order:  # one copy per clip (an index array would copy the batch twice)
                block[i] = self.data[rows[i]]
        else:
            block = np.empty((len(rows), length), dtype=np.int16)
            for i in order:
                block[i] = self.data[rows[i], starts[i] : starts[i] + length]
        return from_int16(block)


def changed_clips(
    cache_dir: str | Path, filenames: Sequence[str], recorded: str, current: AudioCache
) -> list[str] | None:
    """The clips of ``filenames`` whose bytes changed since ``recorded``, their content hash, was
    taken; None when no cache in ``cache_dir`` still holds them as they were.

    A clip rewritten in place gets a new mtime, hence a new cache key: the cache built from the
    old files usually stays beside the new one, with each old clip's digest.
    """
    for index in sorted(Path(cache_dir).glob("*/index.json")):
        if index.parent == current.folder:
            continue
        try:
            old = AudioCache(index.parent)
        except (OSError, ValueError, KeyError):
            continue
        if old.content_hash(filenames) == recorded:
            return [name for name in filenames if old.digest(name) != current.digest(name)]
    return None


def _unwritable(cache_dir: Path, error: OSError) -> CacheError:
    return CacheError(
        f"cannot write the audio cache in {cache_dir} ({error.strerror or error}); choose another "
        "folder with --data.cache_dir DIR or $ASC_KD_CACHE"
    )


def cache_key(
    fingerprint: str, source_rate: int | None, sample_rate: int, n_samples: int, location: str = ""
) -> str:
    """Hash of everything a cache's content depends on."""
    text = f"v{CACHE_VERSION}|{fingerprint}|{location}|{source_rate}|{sample_rate}|{n_samples}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


_worker_state: dict = {}


def _init_worker(
    memmap_path: str,
    shape: tuple[int, int],
    source_rate: int | None,
    target_rate: int,
    source_n: int | None,
    mono: bool,
    archive: str | None,
) -> None:
    torch.set_num_threads(1)
    _worker_state.update(
        out=np.memmap(memmap_path, dtype=np.int16, mode="r+", shape=shape),
        resamplers={},
        target_rate=target_rate,
        source_rate=source_rate,
        source_n=source_n,
        mono=mono,
        archive=archive,
    )


def _resample(audio: np.ndarray, rate: int) -> torch.Tensor:
    resamplers = _worker_state["resamplers"]
    if rate not in resamplers:
        resamplers[rate] = Resampler(rate, _worker_state["target_rate"])
    return resamplers[rate](audio)


def _convert_chunk(job: tuple[int, list[str]]) -> tuple[int, list[bytes]]:
    start, paths = job
    state = _worker_state
    out = state["out"]
    clips = [
        read_clip(path, state["source_rate"], state["source_n"], state["mono"], state["archive"])
        for path in paths
    ]
    # The decode just read each file: hashing it again reads the page cache, not the disk.
    digests = [hashlib.sha256(Path(path).read_bytes()).digest() for path in paths]
    rates = {rate for _, rate in clips}
    lengths = {len(audio) for audio, _ in clips}
    if len(rates) == 1 and len(lengths) == 1:  # the common case: one batched resample
        waveforms = _resample(np.stack([audio for audio, _ in clips]), rates.pop())
    else:
        waveforms = [_resample(audio, rate) for audio, rate in clips]
    target_n = out.shape[1]
    rows = []
    for path, waveform in zip(paths, waveforms, strict=True):
        if state["source_n"] is not None and waveform.shape[-1] != target_n:
            raise AudioFileError(f"{path}: resampled to {waveform.shape[-1]} samples, expected {target_n}")
        rows.append(fit_length(waveform, target_n))
    out[start : start + len(paths)] = to_int16(torch.stack(rows))
    out.flush()
    return start, digests


def build_cache(
    root: str | Path,
    filenames: Sequence[str],
    cache_dir: str | Path,
    sample_rate: int = 32_000,
    source_rate: int | None = 44_100,
    clip_seconds: float = 1.0,
    num_workers: int | None = None,
    progress: bool = True,
    mono: bool = True,
    exact_length: bool = True,
    name: str = "tau22",
    archive: str | None = None,
    lock_timeout: float | None = DEFAULT_TIMEOUT,
) -> AudioCache:
    """Return the cache for ``filenames``, building it first if no complete one exists.

    One process builds it: another that asks for the same cache meanwhile waits for it (at most
    ``lock_timeout`` seconds), then reads it.

    Args:
        root: folder the filenames are relative to (the dataset root).
        filenames: clips to cache, in row order.
        cache_dir: where caches live; one sub-folder per key.
        sample_rate: target rate of the cached audio.
        source_rate: rate every source file must have (TAU: 44.1 kHz); ``None`` accepts any
            rate and resamples each file from its own.
        clip_seconds: length of every cached clip.
        num_workers: decoding processes (default: all cores; 0 decodes in this process).
        progress: show a progress bar.
        mono: require mono files (TAU); ``False`` mixes other channel counts down.
        exact_length: require every source clip to last ``clip_seconds``; ``False`` crops or
            zero-pads each clip to it after resampling.
        name: dataset name, the first part of the cache folder's name.
        archive: where missing files are published, for the error message.
        lock_timeout: seconds to wait for another process building the same cache.
    """
    root, cache_dir = Path(root), Path(cache_dir)
    if not filenames:
        raise DatasetError(f"no files to cache from {root}: the split is empty")
    target_n = round(sample_rate * clip_seconds)
    source_n = round(source_rate * clip_seconds) if (source_rate and exact_length) else None
    fingerprint = fingerprint_files(root, filenames, archive)
    key = cache_key(fingerprint, source_rate, sample_rate, target_n, location_digest(root, filenames))
    folder = cache_dir / f"{name}-{sample_rate}hz-{key}"
    cache = _complete(folder)
    if cache is not None:
        return cache
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _unwritable(cache_dir, err) from err
    if not os.access(cache_dir, os.W_OK):
        raise _unwritable(cache_dir, PermissionError(errno.EACCES, "not writable"))
    with folder_lock(folder, "the cache", lock_timeout):
        cache = _complete(folder, rebuild_damaged=True)  # another process may have built it meanwhile
        if cache is not None:
            return cache
        remove_stale_partials(cache_dir, prefix=folder.name)  # builds interrupted by a kill
        needed = len(filenames) * (target_n * 2 + DIGEST_SIZE)
        free = shutil.disk_usage(cache_dir).free
        if needed > free:
            raise CacheError(
                f"the audio cache needs {needed / 2**20:,.1f} MiB in {cache_dir}, but only "
                f"{free / 2**20:,.1f} MiB are free; free space or set data.cache_dir (or $ASC_KD_CACHE)"
            )
        partial = cache_dir / f"{folder.name}.partial-{os.getpid()}"
        try:
            partial.mkdir()
        except OSError as err:  # a read-only mount, whatever the folder's mode says
            raise _unwritable(cache_dir, err) from err
        try:
            digests = _fill(
                partial,
                root,
                filenames,
                source_rate,
                sample_rate,
                source_n,
                target_n,
                num_workers,
                progress,
                mono,
                archive,
            )
            digests.tofile(partial / DIGESTS)
            index = {
                "version": CACHE_VERSION,
                "fingerprint": fingerprint,
                "content_hash": combine_digests(
                    (name, row.tobytes()) for name, row in zip(filenames, digests, strict=True)
                ),
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
                shutil.rmtree(partial, ignore_errors=True)  # built meanwhile where files cannot be locked
        except OSError as err:
            shutil.rmtree(partial, ignore_errors=True)
            raise CacheError(f"writing the audio cache in {cache_dir} failed: {err}") from err
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return AudioCache(folder)


def _complete(folder: Path, rebuild_damaged: bool = False) -> AudioCache | None:
    """The complete cache in ``folder``, or None; a damaged one is removed with ``rebuild_damaged``
    (only under the folder's lock: another process may be reading it)."""
    if not folder.is_dir():
        return None
    try:
        return AudioCache(folder)
    except (FileNotFoundError, json.JSONDecodeError, KeyError) as err:
        if rebuild_damaged:
            log.warning("rebuilding damaged cache %s: %s", folder, err)
            shutil.rmtree(folder)
        return None


def _fill(
    partial: Path,
    root: Path,
    filenames: Sequence[str],
    source_rate: int | None,
    sample_rate: int,
    source_n: int | None,
    target_n: int,
    num_workers: int | None,
    progress: bool,
    mono: bool,
    archive: str | None,
) -> np.ndarray:
    """Write every clip's row of ``partial``'s memmap; return their SHA-256s (clips x 32 bytes)."""
    shape = (len(filenames), target_n)
    memmap_path = partial / "audio.int16"
    with memmap_path.open("wb") as handle:
        # Reserve every block now: a disk that fills mid-build would otherwise kill a worker
        # writing to the memmap with SIGBUS instead of raising an error.
        os.posix_fallocate(handle.fileno(), 0, shape[0] * shape[1] * 2)
    paths = [str(root / name) for name in filenames]
    jobs = [(start, paths[start : start + _CHUNK]) for start in range(0, len(paths), _CHUNK)]
    workers = (os.cpu_count() or 1) if num_workers is None else num_workers
    init_args = (str(memmap_path), shape, source_rate, sample_rate, source_n, mono, archive)
    digests = np.empty((len(paths), DIGEST_SIZE), dtype=np.uint8)

    def done(start: int, chunk: list[bytes]) -> None:
        digests[start : start + len(chunk)] = np.frombuffer(b"".join(chunk), np.uint8).reshape(
            -1, DIGEST_SIZE
        )
        bar.update(len(chunk))

    bar = tqdm(total=len(paths), desc="caching audio", unit="clip", disable=not progress)
    previous_threads = torch.get_num_threads()
    try:
        if workers <= 1:
            _init_worker(*init_args)
            for job in jobs:
                done(*_convert_chunk(job))
        else:
            context = multiprocessing.get_context("fork")  # as DataLoader workers: no re-import of __main__
            with ProcessPoolExecutor(workers, context, _init_worker, init_args) as pool:
                try:
                    for start, chunk in pool.map(_convert_chunk, jobs):
                        done(start, chunk)
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    except BrokenProcessPool as err:
        raise CacheError(f"a cache worker died while writing to {partial.parent}: {err}") from err
    finally:
        _worker_state.clear()
        torch.set_num_threads(previous_threads)
        bar.close()
    return digests
