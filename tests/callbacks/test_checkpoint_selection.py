"""``CheckpointSelection``: the last epoch by default, the best only on a held-out split or by
explicit opt-in, each checkpoint labelled, and written so that a crash never corrupts one."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from fit_helpers import fit_on_noise
from lightning.fabric.plugins.io import torch_io

import asc_kd.callbacks.checkpoint_selection as selection_module
from asc_kd.callbacks import CheckpointSelection
from asc_kd.core.errors import ConfigError
from asc_kd.core.io import abandoned, remove_stale_partials
from asc_kd.tasks import ClassificationTask
from asc_kd.tasks.restore import read_checkpoint


def test_defaults_keep_only_the_last_checkpoint() -> None:
    callback = CheckpointSelection(dirpath="x")
    assert (callback.selection, callback.monitor, callback.save_top_k, callback.save_last) == (
        "last",
        None,
        0,
        True,
    )
    best = CheckpointSelection(selection="best")
    assert (best.monitor, best.save_top_k) == ("val/acc", 1)
    with pytest.raises(ConfigError, match="'last' or 'best'"):
        CheckpointSelection(selection="worst")


def test_a_crash_while_writing_keeps_the_previous_checkpoint(
    cpu_trainer, tmp_path: Path, monkeypatch
) -> None:
    folder = tmp_path / "checkpoints"
    callback = CheckpointSelection(dirpath=str(folder))
    task = ClassificationTask(model="debug")
    fit_on_noise(
        task, cpu_trainer(max_epochs=1, limit_val_batches=0, callbacks=[callback], enable_checkpointing=True)
    )
    last = folder / "last.ckpt"
    assert read_checkpoint(last)["epoch"] == 0 and read_checkpoint(last)["asc_kd"]["selection"] == "last"

    real_save = torch_io._atomic_save

    def crash_half_way(checkpoint, path):
        real_save(checkpoint, path)
        with open(path, "r+b") as handle:
            handle.truncate(100)  # a checkpoint cut off mid-write ...
        raise OSError("killed while writing")  # ... by a failure half-way

    monkeypatch.setattr(torch_io, "_atomic_save", crash_half_way)
    again = CheckpointSelection(dirpath=str(folder))
    with pytest.raises(OSError, match="killed while writing"):
        fit_on_noise(
            task, cpu_trainer(max_epochs=2, limit_val_batches=0, callbacks=[again], enable_checkpointing=True)
        )
    monkeypatch.undo()
    assert read_checkpoint(last)["epoch"] == 0  # the previous checkpoint, whole and loadable
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]  # no partial file left
    assert selection_module.os is os


@pytest.mark.parametrize("mode", ["max", "min"])
def test_a_last_checkpoint_that_is_the_best_is_written_once(cpu_trainer, tmp_path: Path, mode: str) -> None:
    folder = tmp_path / "checkpoints"
    callback = CheckpointSelection(
        selection="best", allow_selection_on_test=True, monitor="epoch", mode=mode, dirpath=str(folder)
    )
    trainer = cpu_trainer(max_epochs=2, limit_val_batches=0, callbacks=[callback], enable_checkpointing=True)
    fit_on_noise(ClassificationTask(model="debug"), trainer)
    last, best = folder / "last.ckpt", Path(callback.best_model_path)
    assert read_checkpoint(last)["epoch"] == 1
    if mode == "max":  # every epoch is a new best: one file under two names, the old best gone
        assert best.name == "best-epoch=1.ckpt" and last.samefile(best) and last.stat().st_nlink == 2
        assert sorted(p.name for p in folder.iterdir()) == ["best-epoch=1.ckpt", "last.ckpt"]
    else:  # the best stays at epoch 0: two files
        assert best.name == "best-epoch=0.ckpt" and read_checkpoint(best)["epoch"] == 0
        assert not last.samefile(best) and last.stat().st_nlink == 1
    assert not list(folder.glob("*.partial-*"))


# -- partial files of killed fits --------------------------------------------------------
# A fit killed while writing a checkpoint leaves ``last.ckpt.partial-<pid>``; the next fit in
# that folder removes the partial files of processes that no longer run, and only those.


def _killed_pid() -> int:
    """The id of a process that ran and was killed with SIGKILL."""
    process = subprocess.Popen(["sleep", "60"])
    process.send_signal(signal.SIGKILL)
    process.wait()
    return process.pid


def test_partials_of_killed_processes_are_removed_and_others_kept(tmp_path: Path) -> None:
    dead, alive = _killed_pid(), subprocess.Popen(["sleep", "60"])
    try:
        assert abandoned(dead) and not abandoned(alive.pid)
        names = [
            f"last.ckpt.partial-{dead}",
            f".summary.json.partial-{dead}",
            f"last.ckpt.partial-{alive.pid}",  # still being written
            "last.ckpt",
            f"notes.partial-{dead}.txt",  # not a partial file
        ]
        for name in names:
            (tmp_path / name).write_bytes(b"x")
        removed = remove_stale_partials(tmp_path)
        assert sorted(p.name for p in removed) == sorted(names[:2])
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])
    finally:
        alive.kill()
        alive.wait()
    assert remove_stale_partials(tmp_path / "missing") == []


def test_the_next_fit_removes_the_partial_checkpoint_of_a_killed_fit(cpu_trainer, tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    left = folder / f"last.ckpt.partial-{_killed_pid()}"
    left.write_bytes(b"half of a checkpoint")
    callback = CheckpointSelection(dirpath=str(folder))
    fit_on_noise(
        ClassificationTask(model="debug"),
        cpu_trainer(max_epochs=1, limit_val_batches=0, callbacks=[callback], enable_checkpointing=True),
    )
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]
