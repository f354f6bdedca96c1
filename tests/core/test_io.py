"""``atomic_folder``: a folder appears whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from asc_kd.core.io import atomic_folder


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_folder_appears_only_when_its_block_succeeds(tmp_path: Path) -> None:
    out = tmp_path / "set"
    with pytest.raises(RuntimeError, match="killed"), atomic_folder(out) as partial:
        assert partial == tmp_path / f"set.partial-{os.getpid()}"
        (partial / "half.txt").write_text("half")
        raise RuntimeError("killed")
    assert _tree(tmp_path) == []  # neither the folder nor its partial
    out.mkdir()  # an empty folder may be filled
    with atomic_folder(out) as partial:
        (partial / "a" / "b.txt").parent.mkdir()
        (partial / "a" / "b.txt").write_text("whole")
    assert _tree(tmp_path) == ["set", "set/a", "set/a/b.txt"]


def test_a_folder_with_files_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "mine.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"set already exists and is not empty; choose a new folder"):
        with atomic_folder(tmp_path / "set"):
            pass
    assert _tree(tmp_path) == ["set", "set/mine.txt"]


def test_the_folder_another_process_completed_first_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "set"
    with atomic_folder(out) as partial:
        (partial / "mine.txt").write_text("mine")
        out.mkdir()  # another process renamed its complete folder into place meanwhile
        (out / "theirs.txt").write_text("theirs")
    assert _tree(tmp_path) == ["set", "set/theirs.txt"]
