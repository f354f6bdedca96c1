"""``atomic_folder``: a folder appears whole or not at all. ``torch_load``'s ``map_location``:
Lightning's default (each tensor on its saved device where this host has one, else the CPU), and
a place that fits no device here told apart from a file that is no PyTorch file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from asc_kd.core.errors import ConfigError
from asc_kd.core.io import atomic_folder, saved_device_or_cpu, torch_load


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


@pytest.mark.parametrize("cuda", [True, False], ids=["host-with-cuda", "host-without-cuda"])
def test_tensors_stay_on_their_saved_device_where_the_host_has_it(
    monkeypatch: pytest.MonkeyPatch, cuda: bool
) -> None:
    """``None`` leaves the storage to ``torch.load`` (its saved device); a storage comes back
    only when it had to move, and then it is on the CPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    storage = torch.arange(3.0).untyped_storage()
    assert saved_device_or_cpu(storage, "cpu") is None
    on_cuda = saved_device_or_cpu(storage, "cuda:0")
    assert on_cuda is None if cuda else on_cuda.device == torch.device("cpu")
    assert saved_device_or_cpu(storage, "xla:0") is None  # other kinds: torch.load's way, as Lightning


def test_a_place_no_device_here_has_is_not_called_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.ones(2)}, path)
    assert torch_load(path, map_location="meta")["w"].device == torch.device("meta")
    with pytest.raises(ConfigError, match=r"^map_location='gpu' cannot place .*weights\.pt's tensors: "):
        torch_load(path, map_location="gpu")
    path.write_bytes(b"not torch")
    with pytest.raises(ValueError, match=r"weights\.pt is not a PyTorch file") as info:
        torch_load(path, map_location="gpu")
    assert not isinstance(info.value, ConfigError)
