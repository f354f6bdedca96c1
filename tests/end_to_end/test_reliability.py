"""Reliability: real process kills (cache build, training), determinism, atomic outputs, a folder
that cannot be created, and no pickle outside checkpoints read with ``weights_only=True``.

Cases already covered elsewhere are not repeated here: a stale ``.partial-<pid>`` cache folder
(data/test_cache), a failed ``write_submission`` (deployment/test_submission) or ONNX export
(deployment/test_onnx_export), an empty dataset root (data/test_datamodule, data/test_tau) and a
model over the DCASE limits (training/test_fit, callbacks/test_complexity_check,
deployment/test_complexity).
"""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fit_helpers import CONF, REPO, command_line, write_teacher_logits

import asc_kd.core.io
import asc_kd.evaluation.tables
from asc_kd.check import main as check_main
from asc_kd.core.command_line import run_command
from asc_kd.core.locks import read_owner
from asc_kd.data.cache import build_cache
from asc_kd.data.tau import SCENES, TAU22, read_meta
from asc_kd.data.teacher_logits import save_logits
from asc_kd.deployment.predict import write_submission
from asc_kd.deployment.quantize import export_artifact
from asc_kd.evaluation.metrics import SceneMetrics
from asc_kd.evaluation.tables import write_table
from asc_kd.fit import main as fit_main
from asc_kd.models import get_model
from asc_kd.models.frontends import get_frontend
from asc_kd.recipes import RECIPES
from asc_kd.tasks import ClassificationTask

pytestmark = pytest.mark.slow

SIGKILL = signal.SIGKILL
WAIT_SECONDS = 120  # generous: a subprocess imports torch and Lightning on a shared CPU


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen, what: str, log: Path) -> None:
    """Poll ``condition`` while ``process`` runs; fail with its log if it ends or time runs out."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if process.poll() is not None:
            pytest.fail(
                f"process ended (code {process.returncode}) before {what}:\n{log.read_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.01)


def _kill(process: subprocess.Popen) -> None:
    """SIGKILL, then reap: an unreaped child is a zombie that ``os.kill(pid, 0)`` still finds."""
    os.kill(process.pid, SIGKILL)
    assert process.wait(timeout=30) == -SIGKILL


# -- 1. a cache build killed half-way -----------------------------------------------------------

_BUILD = """
import sys
from asc_kd.data.cache import build_cache
root, cache_dir, names = sys.argv[1:]
build_cache(root, open(names).read().split(), cache_dir, num_workers=0, progress=False)
"""


def _linked_root(tiny_root: Path, folder: Path, copies: int) -> tuple[Path, list[str]]:
    """A root whose clips are hard links to the tiny set's, each under ``copies`` names.

    The tiny set caches in well under a second; more names make the build last long enough to
    be killed in the middle, without writing more audio.
    """
    (folder / "audio").mkdir(parents=True)
    names = []
    for copy in range(copies):
        for name in read_meta(tiny_root)["filename"]:
            linked = f"audio/{copy}-{Path(name).name}"
            os.link(tiny_root / name, folder / linked)
            names.append(linked)
    return folder, names


def test_a_killed_cache_build_is_never_read_and_is_rebuilt_cleanly(tiny_root: Path, tmp_path: Path) -> None:
    root, names = _linked_root(tiny_root, tmp_path / "root", copies=4)
    (tmp_path / "names.txt").write_text("\n".join(names))
    cache_dir = tmp_path / "cache"
    log = tmp_path / "build.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", _BUILD, str(root), str(cache_dir), str(tmp_path / "names.txt")],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def filling() -> bool:
        return any(cache_dir.glob(f"*.partial-{process.pid}/audio.int16"))

    _wait_for(filling, process, "the cache was being filled", log)
    time.sleep(0.2)  # into the decoding loop (about 2 s of work for 1,440 clips)
    _kill(process)
    (partial,) = cache_dir.glob(f"*.partial-{process.pid}")
    final = partial.name.rsplit(".partial-", 1)[0]

    # No complete cache; the lock file names the dead builder, whose lock died with it.
    assert sorted(p.name for p in cache_dir.iterdir()) == [f"{final}.lock", partial.name]
    assert read_owner(cache_dir / f"{final}.lock").pid == process.pid
    assert not (partial / "index.json").exists()

    start = time.monotonic()
    cache = build_cache(root, names, cache_dir, num_workers=0, progress=False)
    assert time.monotonic() - start < 60  # took the lock over at once: no wait for a timeout
    assert cache.folder == cache_dir / final
    assert sorted(p.name for p in cache_dir.iterdir()) == [final]  # the dead build's folders are gone

    clean = build_cache(root, names, tmp_path / "clean", num_workers=0, progress=False)
    for file in ("audio.int16", "index.json", "content.sha256"):
        assert (cache.folder / file).read_bytes() == (clean.folder / file).read_bytes(), file


# -- 2. training killed mid-epoch resumes -------------------------------------------------------

#: ``asc_kd.fit`` in a real process that stops at a given global step: it creates a marker file
#: and sleeps in the training step, so the kill lands at the same point of the epoch every time.
_PAUSED_FIT = """
import pathlib, sys, time
from asc_kd.tasks import ClassificationTask
pause_at, marker = int(sys.argv[1]), pathlib.Path(sys.argv[2])
training_step = ClassificationTask.training_step
def paused(self, batch, batch_idx):
    if self.global_step == pause_at:
        marker.touch()
        time.sleep(600)
    return training_step(self, batch, batch_idx)
ClassificationTask.training_step = paused
from asc_kd.fit import main
args = sys.argv[3:]
sys.argv = ["python -m asc_kd.fit"]
main(args)
"""

STEPS_PER_EPOCH, EPOCHS = 6, 2
#: ``last.ckpt`` after every step; without a monitored metric, since Lightning defers a step
#: save that monitors ``val/acc`` until a validation has run (none mid-way through the first
#: epoch, nor after a resume, where the logged metrics are not restored).
EVERY_STEP = ("--checkpoint.every_n_train_steps", "1")


def _resume_args(tiny_root: Path, cache_dir: Path, out: Path, checkpointing: tuple[str, ...]) -> list[str]:
    """A debug teacher, 2 epochs of 6 steps, no logger."""
    return [
        *("--config", str(RECIPES / "base.yaml"), "--config", str(CONF / "teacher.yaml")),
        *("--data.root", str(tiny_root), "--data.cache_dir", str(cache_dir)),
        *("--trainer.default_root_dir", str(out), "--trainer.logger", "false"),
        *("--trainer.max_epochs", str(EPOCHS), "--trainer.limit_train_batches", str(STEPS_PER_EPOCH)),
        *("--checkpoint.dirpath", str(out / "checkpoints"), *checkpointing),
    ]


def _progress(path: Path) -> tuple[int, int] | None:
    """``(global_step, epoch)`` of a checkpoint, None if there is none."""
    if not path.is_file():
        return None
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return checkpoint["global_step"], checkpoint["epoch"]


@pytest.fixture(scope="module")
def reference_run(tiny_root: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable:
    """Uninterrupted runs, one per checkpoint setting: final (global step, epoch), and its ``last.ckpt``'s."""
    done: dict[tuple[str, ...], tuple] = {}

    def run(checkpointing: tuple[str, ...]) -> tuple:
        if checkpointing not in done:
            out = tmp_path_factory.mktemp("uninterrupted")
            with command_line("python -m asc_kd.fit"):
                trainer = fit_main(_resume_args(tiny_root, cache_dir, out, checkpointing)).trainer
            final = (trainer.global_step, trainer.current_epoch)
            done[checkpointing] = final, _progress(out / "checkpoints" / "last.ckpt")
        return done[checkpointing]

    return run


@pytest.mark.parametrize(
    ("checkpointing", "pause_at", "saved"),
    [((), 8, (6, 0)), (EVERY_STEP, 8, (8, 1)), ((), 3, None)],
    ids=["epoch-end-checkpoint", "mid-epoch-checkpoint", "no-checkpoint-yet"],
)
def test_training_killed_mid_epoch_resumes_to_the_same_end(
    tiny_root: Path,
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reference_run: Callable,
    checkpointing: tuple[str, ...],
    pause_at: int,
    saved: tuple[int, int] | None,
) -> None:
    """Killed mid-epoch, rerun with ``--ckpt_path last``: it continues from ``last.ckpt`` (the
    recipes' default writes one per epoch), or starts again when there is none yet."""
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.ckpt"
    args = _resume_args(tiny_root, cache_dir, out, checkpointing)
    marker, log = tmp_path / "paused", tmp_path / "fit.log"
    with log.open("w") as stream:
        process = subprocess.Popen(
            [sys.executable, "-c", _PAUSED_FIT, str(pause_at), str(marker), *args],
            cwd=REPO,
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
    _wait_for(marker.exists, process, f"step {pause_at}", log)
    _kill(process)
    assert _progress(last) == saved

    steps_run = []
    training_step = ClassificationTask.training_step

    def counted(self: ClassificationTask, batch: dict, batch_idx: int) -> torch.Tensor:
        steps_run.append(self.global_step)
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(ClassificationTask, "training_step", counted)
    with command_line("python -m asc_kd.fit"):
        trainer = fit_main([*args, "--ckpt_path", "last"]).trainer

    first = saved[0] if saved else 0
    assert steps_run == list(range(first, STEPS_PER_EPOCH * EPOCHS))  # continued, not restarted
    final, reference_last = reference_run(checkpointing)
    assert (trainer.global_step, trainer.current_epoch) == final == (STEPS_PER_EPOCH * EPOCHS, EPOCHS)
    if checkpointing == EVERY_STEP:  # by default last.ckpt lags: see the next test
        assert _progress(last) == reference_last == (STEPS_PER_EPOCH * EPOCHS, EPOCHS - 1)
    assert Path(trainer.checkpoint_callback.selected_path).is_file()  # tested after the fit
    assert "test/acc" in trainer.callback_metrics


def test_last_checkpoint_is_the_last_epoch_when_validation_plateaus(
    tiny_root: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compute = SceneMetrics.compute
    monkeypatch.setattr(SceneMetrics, "compute", lambda self: {**compute(self), "acc": torch.tensor(0.5)})
    out = tmp_path / "run"
    best = ("--checkpoint.selection", "best", "--checkpoint.allow_selection_on_test", "true")
    with command_line("python -m asc_kd.fit"):
        trainer = fit_main([*_resume_args(tiny_root, cache_dir, out, best), "--test", "false"]).trainer
    assert trainer.global_step == STEPS_PER_EPOCH * EPOCHS
    assert _progress(out / "checkpoints" / "best-epoch=0.ckpt") == (STEPS_PER_EPOCH, 0)  # val/acc: 0.5, 0.5
    assert _progress(out / "checkpoints" / "last.ckpt") == (STEPS_PER_EPOCH * EPOCHS, EPOCHS - 1)


# -- 3. determinism -----------------------------------------------------------------------------


def test_same_seed_same_data_same_config_same_metrics(
    tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """Knowledge distillation with every random piece on: time roll, Mixup, Freq-MixStyle."""
    logits = write_teacher_logits(tiny_root, tmp_path / "ensemble_train.npz")
    configs = [
        RECIPES / "base.yaml",
        RECIPES / "students" / "kd.yaml",
        RECIPES / "students" / "system3.yaml",
        CONF / "student.yaml",
    ]

    def run(name: str, *extra: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        out = tmp_path / name
        args = [
            *(arg for config in configs for arg in ("--config", str(config))),
            *("--data.root", str(tiny_root), "--data.cache_dir", str(cache_dir)),
            *("--data.teacher_logits", str(logits), "--trainer.max_epochs", "2"),
            *("--trainer.default_root_dir", str(out), "--trainer.logger", "false"),
            *("--checkpoint.dirpath", str(out / "checkpoints"), *extra),
        ]
        with command_line("python -m asc_kd.fit"):
            trainer = fit_main(args).trainer
        metrics = {key: value.clone() for key, value in trainer.callback_metrics.items()}
        weights = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        return metrics, weights

    first, second = run("first"), run("second")
    assert "test/log_loss" in first[0] and set(first[0]) == set(second[0])
    differing = [key for key in first[0] if not torch.equal(first[0][key], second[0][key])]
    assert differing == []
    assert all(torch.equal(first[1][key], second[1][key]) for key in first[1])

    # The comparison can fail: another seed gives other numbers.
    other = run("other", "--seed_everything", "1")
    assert not torch.equal(first[0]["test/log_loss"], other[0]["test/log_loss"])


# -- 4. outputs are written atomically ----------------------------------------------------------
# write_submission: deployment/test_submission.py; export_onnx: deployment/test_onnx_export.py.


class DiskFull(OSError):
    """Stands in for a write that fails half-way."""


def _fail_halfway(handle_index: int = 0) -> Callable:
    """A serialiser that writes a few bytes into its file handle argument, then fails."""

    def serialise(*args: object, **kwargs: object) -> None:
        handle = args[handle_index]
        handle.write(b"partial" if "b" in getattr(handle, "mode", "") else "partial")
        raise DiskFull("disk full")

    return serialise


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _logits_writer(path: Path) -> None:
    save_logits(path, ["audio/a.wav"], torch.zeros(1, len(SCENES)), {"split": "train"})


def _artifact_writer(path: Path) -> None:
    export_artifact(get_frontend("student_mel"), get_model("debug").eval(), path, {"classes": list(SCENES)})


def _table_frame() -> pd.DataFrame:
    return pd.DataFrame({"model": ["system1"], "acc": [0.5]})


@pytest.mark.parametrize(
    ("writer", "serialiser", "handle_index", "name"),
    [
        (_logits_writer, (np, "savez"), 0, "teacher.npz"),  # np.savez(handle, ...)
        (_artifact_writer, (torch.jit, "save"), 1, "system1.int8.pt"),  # torch.jit.save(module, handle)
    ],
    ids=["save_logits", "export_artifact"],
)
def test_a_failed_write_leaves_no_file_and_keeps_the_old_one(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    writer: Callable[[Path], None],
    serialiser: tuple,
    handle_index: int,
    name: str,
) -> None:
    writer(tmp_path / "good" / name)  # the real serialiser works on this input
    monkeypatch.setattr(*serialiser, _fail_halfway(handle_index))

    with pytest.raises(DiskFull):
        writer(tmp_path / "new" / name)
    assert _listing(tmp_path / "new") == {}

    old = tmp_path / "old" / name
    old.parent.mkdir()
    old.write_bytes(b"previous")
    with pytest.raises(DiskFull):
        writer(old)
    assert _listing(old.parent) == {name: b"previous"}


def test_a_failed_markdown_table_leaves_both_old_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stem = tmp_path / "table2"
    for suffix in (".md", ".csv"):
        stem.with_suffix(suffix).write_text(f"previous {suffix}")

    def fail(frame: pd.DataFrame) -> str:
        raise DiskFull("disk full")

    monkeypatch.setattr(asc_kd.evaluation.tables, "to_markdown", fail)  # called after the title is written
    with pytest.raises(DiskFull):
        write_table(_table_frame(), stem, title="Table 2")
    assert _listing(tmp_path) == {"table2.csv": b"previous .csv", "table2.md": b"previous .md"}


def test_a_failed_csv_table_leaves_no_partial_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stem = tmp_path / "table2"
    stem.with_suffix(".csv").write_text("previous .csv")
    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda self, handle, **kw: _fail_halfway()(handle))
    with pytest.raises(DiskFull):
        write_table(_table_frame(), stem)
    assert stem.with_suffix(".csv").read_text() == "previous .csv"
    assert sorted(_listing(tmp_path)) == ["table2.csv"]  # no .partial file, and no new half of the pair


def test_a_failed_csv_table_leaves_the_old_markdown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stem = tmp_path / "table2"
    for suffix in (".md", ".csv"):
        stem.with_suffix(suffix).write_text(f"previous {suffix}")
    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda self, handle, **kw: _fail_halfway()(handle))
    with pytest.raises(DiskFull):
        write_table(_table_frame(), stem)
    assert _listing(tmp_path) == {"table2.csv": b"previous .csv", "table2.md": b"previous .md"}


# -- 5. an output folder that cannot be created or written --------------------------------------

_WRITERS: dict[str, Callable[[Path], object]] = {
    "write_table": lambda path: write_table(_table_frame(), path),
    "save_logits": _logits_writer,
    "write_submission": lambda path: write_submission(_table_frame(), path),
}


@pytest.mark.parametrize("writer", _WRITERS)
@pytest.mark.parametrize("depth", [1, 2], ids=["parent-is-a-file", "grandparent-is-a-file"])
def test_an_output_folder_under_a_file_is_named(tmp_path: Path, writer: str, depth: int) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    folder = blocker if depth == 1 else blocker / "sub"
    with pytest.raises(OSError, match="cannot create output folder") as info:
        _WRITERS[writer](folder / "out.csv")
    assert str(folder) in str(info.value)
    assert _listing(tmp_path) == {"file.txt": b"not a folder"}


@pytest.mark.parametrize("writer", _WRITERS)
def test_a_folder_without_write_permission_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    # Tests may run as root, for whom chmod does not stop a write: ask os.access instead.
    monkeypatch.setattr(asc_kd.core.io.os, "access", lambda path, mode: False)
    folder = tmp_path / "out"
    with pytest.raises(PermissionError, match=re.escape(f"output folder {folder} is not writable")):
        _WRITERS[writer](folder / "out.csv")
    assert _listing(folder) == {}


# -- 6. nothing is unpickled, and no data is pickled --------------------------------------------


def _package_calls() -> list[tuple[str, ast.Call]]:
    """Every call in the package's source, with ``file:line``."""
    calls = []
    for path in sorted((REPO / "asc_kd").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                calls.append((f"{path.relative_to(REPO)}:{node.lineno}", node))
    return calls


def _keyword(call: ast.Call, name: str) -> object:
    for keyword in call.keywords:
        if keyword.arg == name:
            return (
                keyword.value.value if isinstance(keyword.value, ast.Constant) else ast.unparse(keyword.value)
            )
    return None


def test_every_torch_load_in_the_package_is_weights_only() -> None:
    loads = [
        (where, call)
        for where, call in _package_calls()
        if ast.unparse(call.func).endswith(("torch.load", "load_from_checkpoint"))
    ]
    assert len(loads) >= 1  # asc_kd/core/io.py's torch_load, the one place that loads PyTorch files
    unsafe = [where for where, call in loads if _keyword(call, "weights_only") is not True]
    assert unsafe == []
    imported = [
        alias.name
        for path in (REPO / "asc_kd").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module == "torch"
        for alias in node.names
    ]
    assert "load" not in imported  # a bare load(...) would escape the check above


def test_no_data_file_is_written_or_read_with_pickle() -> None:
    """Checkpoints are Lightning's (read with weights_only); everything else is npz, JSON, CSV."""
    pickling = ("pickle.dump", "pickle.dumps", "pickle.load", "pickle.loads", "torch.save", "to_pickle")
    pickling += ("read_pickle", "joblib.dump", "joblib.load", "dill.dump", "cloudpickle.dump")
    found = [
        f"{where} {ast.unparse(call.func)}"
        for where, call in _package_calls()
        if ast.unparse(call.func).endswith(pickling) or _keyword(call, "allow_pickle") not in (None, False)
    ]
    assert found == []


# -- 7. an empty dataset folder, through the data check ----------------------------------------
# TAU22DataModule: test_datamodule.py::test_empty_root_names_the_archive.


def test_data_check_of_an_empty_folder_says_what_was_looked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_command(check_main, ["--data.root", str(tmp_path)]) == 1  # the fit's refusal
    err = capsys.readouterr().err
    assert (
        f"dataset root {tmp_path} is missing or empty" in err and "one folder of audio files per class" in err
    )
    (tmp_path / "notes.txt").write_text("not a dataset")
    assert check_main(["--data.root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "no split could be read" in out and "cannot tell the layout" in out
    assert "meta.csv" in out and "one folder of audio files per class" in out
    assert check_main(["--data.root", str(tmp_path), "--data.layout", "tau22"]) == 1
    out = capsys.readouterr().out
    assert str(tmp_path / "meta.csv") in out and TAU22.archive in out
