"""Decoding checks (``read_clip``) and the resampled-audio cache (``build_cache``): keys, bad
audio, interrupted and failed builds, full disks, the content hash the build takes, and one
builder among processes that ask for the same cache at once."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import pickle
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio
from fit_helpers import content_hash_by_hand, counted, run_together

import asc_kd.data.cache as cache_module
from asc_kd.core.command_line import run_command
from asc_kd.data.audio import AudioFileError, from_int16, read_clip, to_int16
from asc_kd.data.cache import AudioCache, CacheError, build_cache, changed_clips, fingerprint_files
from asc_kd.data.datamodule import SceneDataModule
from asc_kd.data.spec import DatasetError
from asc_kd.data.tau import read_meta

#: int16 rounding (half a step) plus float32 resampling arithmetic: the cache resamples in
#: float32 with a float32 kernel, which differs from a float64 resample by up to ~7e-6 (measured
#: on the tiny set), so 1e-6 would be too tight.
TOLERANCE = 0.5 / 32767 + 1e-5


def _resampled(path: Path) -> torch.Tensor:
    """Reference: the decoded clip resampled 44.1 -> 32 kHz by torchaudio in float64."""
    audio = torch.from_numpy(soundfile.read(path, dtype="float64")[0])
    return torchaudio.functional.resample(audio, 44100, 32000).float()


@pytest.fixture(scope="module")
def names(tiny_root) -> list[str]:
    """100 clips: more than one 64-clip build chunk, in an order that is not sorted."""
    return list(read_meta(tiny_root)["filename"].sample(n=100, random_state=0))


def _mini_root(tiny_root: Path, tmp_path: Path, count: int = 4) -> tuple[Path, list[str]]:
    """A writable root holding copies of a few tiny-set clips."""
    root = tmp_path / "root"
    (root / "audio").mkdir(parents=True)
    names = list(read_meta(tiny_root)["filename"].iloc[:count])
    for name in names:
        shutil.copy(tiny_root / name, root / name)
    return root, names


def _folders(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.iterdir()) if cache_dir.is_dir() else []


def test_int16_round_trip():
    waveform = torch.tensor([-1.5, -1.0, -0.25, 0.0, 1e-6, 0.5, 1.0, 2.0])
    samples = to_int16(waveform)
    assert samples.dtype == np.int16
    # Scale 32767, round half to even, clip to the int16 range (so -1.5 gives -32768).
    assert samples.tolist() == [-32768, -32767, -8192, 0, 0, 16384, 32767, 32767]
    assert from_int16(samples).tolist() == pytest.approx(
        [-32768 / 32767, -1.0, -8192 / 32767, 0.0, 0.0, 16384 / 32767, 1.0, 1.0]
    )


def test_round_trip_equals_torchaudio_resample(tiny_root, names, tmp_path):
    cache = build_cache(tiny_root, names, tmp_path, num_workers=0, progress=False)
    assert cache.filenames == names
    assert (cache.sample_rate, cache.n_samples, len(cache)) == (32000, 32000, 100)
    assert cache.fingerprint == fingerprint_files(tiny_root, names)
    rows = [57, 3, 99, 0, 64, 63]
    expected = torch.stack([_resampled(tiny_root / names[r]) for r in rows])
    got = cache.read(rows)
    assert got.dtype == torch.float32 and got.shape == (6, 32000)
    assert (got - expected).abs().max().item() <= TOLERANCE
    assert expected.abs().max() > 0.05  # real audio, not silence


def test_cache_is_reused(tiny_root, names, tmp_path, monkeypatch):
    first = build_cache(tiny_root, names, tmp_path, num_workers=0, progress=False)
    data = first.folder / "audio.int16"
    stamp = data.stat().st_mtime_ns

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the complete cache was rebuilt")

    monkeypatch.setattr(cache_module, "_fill", no_rebuild)
    second = build_cache(tiny_root, names, tmp_path, num_workers=0, progress=False)
    assert second.folder == first.folder
    assert data.stat().st_mtime_ns == stamp
    assert _folders(tmp_path) == [first.folder.name]


def test_key_follows_file_sizes_and_rate(tiny_root, tmp_path):
    root, names = _mini_root(tiny_root, tmp_path)
    cache_dir = tmp_path / "cache"
    first = build_cache(root, names, cache_dir, num_workers=0, progress=False)
    assert first.folder.name.startswith("tau22-32000hz-")

    lower = build_cache(root, names, cache_dir, sample_rate=16000, num_workers=0, progress=False)
    assert lower.folder != first.folder
    assert lower.folder.name.startswith("tau22-16000hz-")
    assert lower.n_samples == 16000

    # Same clip length and rate, another encoding: the size changes, so must the cache.
    audio, rate = soundfile.read(root / names[2], dtype="float32")
    soundfile.write(root / names[2], audio, rate, subtype="PCM_16")
    rewritten = build_cache(root, names, cache_dir, num_workers=0, progress=False)
    assert rewritten.folder not in (first.folder, lower.folder)
    expected = _resampled(root / names[2])
    assert (rewritten.read([2])[0] - expected).abs().max().item() <= TOLERANCE
    assert len(_folders(cache_dir)) == 3


def _regenerate(root: Path, name: str, seed: int) -> None:
    """Replace a clip by other audio of the same length and encoding: same name, same size."""
    noise = 0.1 * np.random.default_rng(seed).standard_normal(44100)
    size = (root / name).stat().st_size
    (root / name).unlink()
    soundfile.write(root / name, noise, 44100, subtype="PCM_24")
    assert (root / name).stat().st_size == size


def test_datasets_with_the_same_names_and_sizes_never_share_a_cache(tiny_root, tmp_path):
    first, names = _mini_root(tiny_root, tmp_path / "first")
    second, _ = _mini_root(tiny_root, tmp_path / "second")
    _regenerate(second, names[1], seed=1)  # e.g. the synthetic set made with another --jitter
    cache_dir = tmp_path / "cache"
    a = build_cache(first, names, cache_dir, num_workers=0, progress=False)
    b = build_cache(second, names, cache_dir, num_workers=0, progress=False)
    assert a.folder != b.folder and a.fingerprint != b.fingerprint
    assert (b.read([1])[0] - _resampled(second / names[1])).abs().max().item() <= TOLERANCE
    assert (a.read([1]) - b.read([1])).abs().max() > 0.01
    # Rewritten in place with other content: a new cache again, not the first one's audio.
    _regenerate(first, names[1], seed=2)
    c = build_cache(first, names, cache_dir, num_workers=0, progress=False)
    assert c.folder not in (a.folder, b.folder)
    assert (c.read([1])[0] - _resampled(first / names[1])).abs().max().item() <= TOLERANCE


def test_content_fingerprint_ignores_location_and_order(tiny_root, tmp_path):
    first, names = _mini_root(tiny_root, tmp_path / "first")
    copy, _ = _mini_root(tiny_root, tmp_path / "copy")
    assert fingerprint_files(first, names) == fingerprint_files(copy, names[::-1])
    _regenerate(copy, names[0], seed=3)
    assert fingerprint_files(first, names) != fingerprint_files(copy, names)


def test_partial_folder_is_not_reused(tiny_root, tmp_path):
    root, names = _mini_root(tiny_root, tmp_path)
    cache_dir = tmp_path / "cache"
    final = build_cache(root, names, tmp_path / "probe", num_workers=0, progress=False).folder.name
    stale = cache_dir / f"{final}.partial-12345"
    stale.mkdir(parents=True)
    (stale / "audio.int16").write_bytes(b"\x01" * 1000)
    (stale / "index.json").write_text("{not json")
    cache = build_cache(root, names, cache_dir, num_workers=0, progress=False)
    assert _folders(cache_dir) == [final]
    assert (cache.read([1])[0] - _resampled(root / names[1])).abs().max().item() <= TOLERANCE


def test_damaged_complete_folder_is_rebuilt(tiny_root, tmp_path):
    root, names = _mini_root(tiny_root, tmp_path)
    cache_dir = tmp_path / "cache"
    good = build_cache(root, names, cache_dir, num_workers=0, progress=False)
    expected = good.read([0, 1, 2, 3])
    with open(good.folder / "audio.int16", "r+b") as handle:
        handle.truncate(1000)
    rebuilt = build_cache(root, names, cache_dir, num_workers=0, progress=False)
    assert rebuilt.folder == good.folder
    assert torch.equal(rebuilt.read([0, 1, 2, 3]), expected)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_failed_build_leaves_nothing(tiny_root, tmp_path, num_workers):
    root, names = _mini_root(tiny_root, tmp_path, count=6)
    bad = root / names[4]
    bad.write_bytes(bad.read_bytes()[:100])  # header kept, audio data cut off
    cache_dir = tmp_path / "cache"
    with pytest.raises(AudioFileError) as info:
        build_cache(root, names, cache_dir, num_workers=num_workers, progress=False)
    assert str(bad) in str(info.value)
    assert _folders(cache_dir) == []


def test_empty_file_list(tiny_root, tmp_path):
    with pytest.raises(DatasetError, match="no files to cache") as info:
        build_cache(tiny_root, [], tmp_path, progress=False)
    assert str(tiny_root) in str(info.value)


# -- a full disk -------------------------------------------------------------------------------


def test_too_little_free_space_is_refused_before_writing(tiny_root, tmp_path, monkeypatch):
    root, names = _mini_root(tiny_root, tmp_path)
    cache_dir = tmp_path / "cache"
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(cache_module.shutil, "disk_usage", lambda _: usage._replace(free=100_000))
    with pytest.raises(CacheError) as info:
        build_cache(root, names, cache_dir, num_workers=0, progress=False)
    message = str(info.value)
    assert str(cache_dir) in message and "0.2 MiB" in message and "0.1 MiB are free" in message
    assert _folders(cache_dir) == []


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_write_error_in_any_worker_ends_the_build_at_once(
    tiny_root, names, tmp_path, monkeypatch, num_workers
):
    real = cache_module.read_clip
    failing = str(tiny_root / names[70])  # in the second chunk of 64

    def read_or_fail(path, *args):
        if str(path) == failing:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, *args)

    monkeypatch.setattr(cache_module, "read_clip", read_or_fail)  # workers fork with it
    cache_dir = tmp_path / "cache"
    with pytest.raises(CacheError, match="No space left on device") as info:
        build_cache(tiny_root, names, cache_dir, num_workers=num_workers, progress=False)
    assert str(cache_dir) in str(info.value)
    assert _folders(cache_dir) == []  # the partial folder is gone


def test_space_is_reserved_up_front(tiny_root, names, tmp_path, monkeypatch):
    """Reserving the file's blocks turns a disk that fills mid-build into an error, not SIGBUS."""

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_module.os, "posix_fallocate", no_space)
    cache_dir = tmp_path / "cache"
    with pytest.raises(CacheError, match="No space left on device"):
        build_cache(tiny_root, names, cache_dir, num_workers=2, progress=False)
    assert _folders(cache_dir) == []


def test_a_small_filesystem_fills_without_a_hang(tiny_root, names, tmp_path):
    """On a real 1 MB filesystem (where this process may mount one) the build fails at once."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a size-limited filesystem here; the injected errors above cover it")
    try:
        with pytest.raises(CacheError) as info:
            build_cache(tiny_root, names, mount / "cache", num_workers=2, progress=False)
        assert "MiB are free" in str(info.value)
        assert _folders(mount / "cache") == []
    finally:
        subprocess.run(["umount", str(mount)], check=False)


# -- bad audio ---------------------------------------------------------------------------------


def _tone(rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    return tone if channels == 1 else np.stack([tone] * channels, axis=1)


def _missing(path: Path, tiny_root: Path) -> str:
    return "not found"


def _garbage(path: Path, tiny_root: Path) -> str:
    path.write_bytes(b"this is not a RIFF file" * 100)
    return "not a decodable wav"


def _truncated(path: Path, tiny_root: Path) -> str:
    wav = (tiny_root / read_meta(tiny_root)["filename"].iloc[0]).read_bytes()
    path.write_bytes(wav[: len(wav) // 2])
    return "expected 44100"


def _wrong_rate(path: Path, tiny_root: Path) -> str:
    soundfile.write(path, _tone(22050, 1.0), 22050, subtype="PCM_24")
    return "sample rate 22050 Hz, expected 44100 Hz"


def _stereo(path: Path, tiny_root: Path) -> str:
    soundfile.write(path, _tone(44100, 1.0, channels=2), 44100, subtype="PCM_24")
    return "2 channels, expected mono"


def _short(path: Path, tiny_root: Path) -> str:
    soundfile.write(path, _tone(44100, 0.5), 44100, subtype="PCM_24")
    return "22050 samples \\(0.500 s\\), expected 44100"


def _directory(path: Path, tiny_root: Path) -> str:
    path.mkdir()
    return "is a directory, not an audio file"


def _zero_length(path: Path, tiny_root: Path) -> str:
    soundfile.write(path, np.zeros(0), 44100, subtype="PCM_24")
    return "holds no samples"


def _nan_samples(path: Path, tiny_root: Path) -> str:
    audio = _tone(44100, 1.0).astype(np.float32)
    audio[[10, 500]] = np.nan
    audio[700] = np.inf
    soundfile.write(path, audio, 44100, subtype="FLOAT")
    return "3 sample\\(s\\) are NaN or infinite"


BAD_AUDIO = [
    _missing,
    _garbage,
    _truncated,
    _wrong_rate,
    _stereo,
    _short,
    _directory,
    _zero_length,
    _nan_samples,
]


@pytest.mark.parametrize("spoil", BAD_AUDIO, ids=lambda f: f.__name__.strip("_"))
def test_read_clip_names_the_bad_file(tiny_root, tmp_path, spoil):
    path = tmp_path / "audio" / "bad.wav"
    path.parent.mkdir()
    problem = spoil(path, tiny_root)
    with pytest.raises(AudioFileError, match=problem) as info:
        read_clip(path, 44100, 44100)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("spoil", BAD_AUDIO, ids=lambda f: f.__name__.strip("_"))
def test_build_cache_names_the_bad_file(tiny_root, tmp_path, spoil):
    root, names = _mini_root(tiny_root, tmp_path, count=3)
    bad = root / "audio" / "bad.wav"
    problem = spoil(bad, tiny_root)
    cache_dir = tmp_path / "cache"
    with pytest.raises(AudioFileError, match=problem) as info:
        build_cache(root, [*names, "audio/bad.wav"], cache_dir, num_workers=0, progress=False)
    assert str(bad) in str(info.value)
    assert _folders(cache_dir) == []


def test_read_clip_good_file(tiny_root):
    name = read_meta(tiny_root)["filename"].iloc[0]
    audio, rate = read_clip(tiny_root / name, 44100, 44100)
    assert rate == 44100 and audio.dtype == np.float32 and audio.shape == (44100,)
    np.testing.assert_array_equal(audio, soundfile.read(tiny_root / name, dtype="float32")[0])


def test_cache_rows_are_a_read_only_plain_array_of_the_file(tiny_root, names, tmp_path):
    cache = build_cache(tiny_root, names, tmp_path, num_workers=0, progress=False)
    data = cache.data
    # A plain ndarray (no np.memmap hooks on each row read), still mapped from the file, read-only
    assert type(data) is np.ndarray and isinstance(data.base, np.memmap)
    assert not data.flags.writeable
    on_disk = np.fromfile(cache.folder / "audio.int16", dtype=np.int16).reshape(data.shape)
    np.testing.assert_array_equal(data, on_disk)
    assert torch.equal(cache.read([3, 1]), from_int16(on_disk[[3, 1]]))


# -- processes ---------------------------------------------------------------------------------


def test_cache_pickles_without_its_memmap(tiny_root, names, tmp_path):
    cache = build_cache(tiny_root, names, tmp_path, num_workers=0, progress=False)
    expected = cache.read([5, 70])
    assert cache._data is not None
    blob = pickle.dumps(cache)
    assert len(blob) < 50_000 < cache.data.nbytes  # filenames only: 100 x 32000 int16 is 6.4 MB
    copy = pickle.loads(blob)
    assert copy._data is None
    assert torch.equal(copy.read([5, 70]), expected)


def test_incomplete_folder_is_not_a_cache(tmp_path):
    with pytest.raises(FileNotFoundError, match="no index.json"):
        AudioCache(tmp_path)


def test_workers_write_the_same_bytes(tiny_root, names, tmp_path):
    serial = build_cache(tiny_root, names, tmp_path / "serial", num_workers=0, progress=False)
    parallel = build_cache(tiny_root, names, tmp_path / "parallel", num_workers=2, progress=False)
    assert serial.folder.name == parallel.folder.name
    for file in ("audio.int16", "index.json", "content.sha256"):
        assert (serial.folder / file).read_bytes() == (parallel.folder / file).read_bytes()
    assert os.path.getsize(serial.folder / "audio.int16") == 100 * 32000 * 2


# -- a cache folder that cannot be written -----------------------------------------------
# A cache folder that cannot be written (a read-only mount, no permission, a path through a
# file) is a one-line error naming the folder and how to choose another, never a traceback;
# a complete cache in a read-only folder is still read.


def _names(tiny_root: Path) -> list[str]:
    return list(read_meta(tiny_root)["filename"].iloc[:4])


def _message(folder: Path, reason: str) -> str:
    return (
        f"cannot write the audio cache in {folder} ({reason}); choose another folder with "
        "--data.cache_dir DIR or $ASC_KD_CACHE"
    )


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Makes a folder no write reaches, after ``fill`` wrote into it: by its mode for a normal
    user; for root, whom modes do not stop, a tmpfs remounted read-only."""
    undo: list[Callable[[], object]] = []

    def make(fill: Callable[[Path], object] = lambda folder: None) -> Path:
        folder = tmp_path / "read_only"
        folder.mkdir()
        if os.geteuid() != 0:
            fill(folder)
            for path in [folder, *folder.rglob("*")]:
                if path.is_dir():
                    path.chmod(0o555)
                    undo.append(lambda path=path: path.chmod(0o755))
            return folder
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)]).returncode:
            pytest.skip("root, and no read-only filesystem can be mounted here to stop its writes")
        undo.append(lambda: subprocess.run(["umount", str(folder)], check=False))
        fill(folder)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        return folder

    yield make
    for step in reversed(undo):
        step()


def test_a_read_only_cache_folder_is_named_with_the_fix(
    tiny_root: Path, read_only_folder: Callable[..., Path]
) -> None:
    folder = read_only_folder()
    with pytest.raises(OSError):  # the folder really refuses writes, root or not
        (folder / "probe").write_bytes(b"x")
    with pytest.raises(CacheError) as info:
        build_cache(tiny_root, _names(tiny_root), folder, num_workers=0, progress=False)
    assert str(info.value) == _message(folder, "not writable")


def test_the_data_module_ends_in_one_line_naming_asc_kd_cache(
    tiny_root: Path,
    read_only_folder: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = read_only_folder()
    monkeypatch.setenv("ASC_KD_CACHE", str(folder))

    def prepare(argv: list[str] | None) -> int:
        SceneDataModule(root=str(tiny_root), num_workers=0, check_data=False).prepare_data()
        return 0

    assert run_command(prepare, []) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {_message(folder, 'not writable')}",
        "(ASC_KD_DEBUG=1 shows the traceback)",
    ]


def test_a_cache_folder_under_a_file_is_named_with_the_fix(tiny_root: Path, tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("not a folder")
    folder = tmp_path / "a_file" / "cache"
    with pytest.raises(CacheError) as info:
        build_cache(tiny_root, _names(tiny_root), folder, num_workers=0, progress=False)
    assert str(info.value) == _message(folder, "Not a directory")


def test_a_complete_cache_in_a_read_only_folder_is_read(
    tiny_root: Path, read_only_folder: Callable[..., Path]
) -> None:
    def fill(folder: Path) -> None:
        build_cache(tiny_root, _names(tiny_root), folder, num_workers=0, progress=False)

    folder = read_only_folder(fill)
    cache = build_cache(tiny_root, _names(tiny_root), folder, num_workers=0, progress=False)
    assert cache.folder.parent == folder and len(cache) == 4


# -- the content hash ------------------------------------------------------------------------


@pytest.mark.parametrize("num_workers", [0, 2])
def test_the_build_hashes_every_byte_of_every_clip(tiny_root, names, tmp_path, num_workers):
    cache = build_cache(tiny_root, names, tmp_path, num_workers=num_workers, progress=False)
    rows = np.fromfile(cache.folder / "content.sha256", dtype=np.uint8).reshape(len(names), 32)
    for row, name in zip(rows, names, strict=True):  # row-aligned with the audio
        assert row.tobytes() == hashlib.sha256((tiny_root / name).read_bytes()).digest()
    assert cache.content == content_hash_by_hand(tiny_root, names)
    assert json.loads((cache.folder / "index.json").read_text())["content_hash"] == cache.content
    assert cache.content_hash() == cache.content_hash(names[::-1]) == cache.content
    assert cache.content_hash(names[:10]) == content_hash_by_hand(tiny_root, names[:10])
    outside = next(n for n in read_meta(tiny_root)["filename"] if n not in names)
    assert cache.content_hash([*names[:10], outside]) is None  # it cannot vouch for that clip


def test_a_clip_rewritten_at_the_same_size_changes_the_content_hash_only(tiny_root, tmp_path):
    """What the sampled fingerprint misses (a clip outside its 64 rewritten at the same size), the
    content hash catches, and the old cache beside the new one names the clip."""
    root, names = _mini_root(tiny_root, tmp_path, count=70)
    cache_dir = tmp_path / "cache"
    before = build_cache(root, names, cache_dir, num_workers=0, progress=False)
    rewritten = next(name for name in names if name not in cache_module._content_sample(names))
    sampled = fingerprint_files(root, names)
    _regenerate(root, rewritten, seed=4)
    assert fingerprint_files(root, names) == sampled
    after = build_cache(root, names, cache_dir, num_workers=0, progress=False)  # a new mtime: a new key
    assert after.folder != before.folder and after.fingerprint == before.fingerprint
    assert after.content == content_hash_by_hand(root, names) != before.content
    assert changed_clips(cache_dir, names, before.content, after) == [rewritten]
    assert changed_clips(cache_dir, names, "0" * 64, after) is None  # no cache holds that content


# -- one builder among processes ----------------------------------------------------------


def _build_counted(root: Path, names: list[str], cache_dir: Path, marks: Path) -> None:
    cache_module._fill = counted(cache_module._fill, marks)
    cache = build_cache(root, names, cache_dir, num_workers=0, progress=False)
    logging.getLogger().info("done %s %s", cache.folder.name, cache.content)


def test_two_processes_that_start_together_build_the_cache_once(tiny_root, tmp_path):
    root, names = _mini_root(tiny_root, tmp_path, count=8)
    cache_dir, marks = tmp_path / "cache", tmp_path / "marks"
    logs = [tmp_path / f"log{i}" for i in range(2)]
    pids = run_together(_build_counted, (root, names, cache_dir, marks), logs)
    (builder,) = marks.read_text().split()  # one build, by one process
    texts = [log.read_text() for log in logs]
    (folder,) = _folders(cache_dir)  # no partial folder, no lock file left
    for text in texts:  # both use the one cache, which holds what the files hold
        assert f"done {folder} {content_hash_by_hand(root, names)}" in text.splitlines()
    waiter = 1 - pids.index(int(builder))
    assert "waiting for" not in texts[1 - waiter]
    (line,) = [line for line in texts[waiter].splitlines() if line.startswith("waiting for")]
    lock = cache_dir / f"{folder}.lock"
    assert (
        line
        == f"waiting for the cache being built by pid {builder} on {socket.gethostname()} (lock file {lock})"
    )
