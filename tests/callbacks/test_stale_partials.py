"""A fit killed while writing a checkpoint leaves ``last.ckpt.partial-<pid>``; the next fit in
that folder removes the partial files of processes that no longer run, and only those."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from fit_helpers import fit_on_noise

from asc_kd.callbacks import CheckpointSelection
from asc_kd.io import abandoned, remove_stale_partials
from asc_kd.tasks import ClassificationTask


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
