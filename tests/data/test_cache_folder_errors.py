"""A cache folder that cannot be written (a read-only mount, no permission, a path through a
file) is a one-line error naming the folder and how to choose another, never a traceback;
a complete cache in a read-only folder is still read."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from asc_kd.data.cache import CacheError, build_cache
from asc_kd.data.datamodule import SceneDataModule
from asc_kd.data.tau import read_meta
from asc_kd.errors import run_command


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
