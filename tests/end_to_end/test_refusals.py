"""A refused command leaves every folder as it was: a fit refused on a finished run's folder
changes no byte of it and adds nothing beside it (no config.yaml, CSV version, W&B run or
checkpoint), a refused fit in a new folder leaves no folder, and logits and quantize refuse
before they write any of their outputs (quantize: its artifact and report both, or neither)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch
from fit_helpers import (
    TINY_TEACHER,
    command_line,
    fit_args,
    offline_runs,
    other_audio,
    wandb_records,
    write_teacher_logits,
)
from tiny_checkpoints import fit_checkpoint

import asc_kd.deployment.quantize as quantize_module
from asc_kd.core.command_line import run_command
from asc_kd.data.tau import TAU22
from asc_kd.fit import command, main
from asc_kd.logits import main as export_logits
from asc_kd.quantize import main as quantize
from asc_kd.tasks import ClassificationTask


def folder_state(folder: Path) -> dict[str, str]:
    """Every path under ``folder``: a file's md5, a link's target, ``folder`` for a folder."""
    state = {}
    for top, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(top) / name
            key = str(path.relative_to(folder))
            if path.is_symlink():
                state[key] = f"-> {os.readlink(path)}"
            elif path.is_dir():
                state[key] = "folder"
            else:
                state[key] = hashlib.md5(path.read_bytes()).hexdigest()
    return state


class FinishedRun:
    """A finished tiny teacher run (W&B offline) in ``out/teacher-seed0``, and inputs that differ."""

    def __init__(self, tiny_root: Path, cache_dir: Path, base: Path) -> None:
        self.tiny_root, self.cache_dir = tiny_root, cache_dir
        self.out = base / "out"
        self.other_root = other_audio(tiny_root, base / "other")
        self.other_logits = write_teacher_logits(self.other_root, base / "other_logits.npz")

    def args(self, out: Path) -> list[str]:
        return [*fit_args(self.tiny_root, self.cache_dir, out, *TINY_TEACHER), "--test", "false"]


@pytest.fixture(scope="module")
def finished(tiny_root: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    run = FinishedRun(tiny_root, cache_dir, tmp_path_factory.mktemp("refusals"))
    with command_line("python -m asc_kd.fit"):
        main(run.args(run.out))
    folder = run.out / "teacher-seed0"
    for wandb_run in offline_runs(folder):
        list(wandb_records(wandb_run))  # W&B has written all of it
    assert (folder / "summary.json").is_file()
    return run


REFUSED = {
    "resume on other audio": (
        ["--data.root", "{other_root}", "--trainer.max_epochs", "2", "--ckpt_path", "last"],
        "error: --ckpt_path {folder}/checkpoints/last.ckpt was trained on other data",
    ),
    "a new fit in the finished folder": ([], "error: {folder} holds a finished run (summary.json)"),
    "resume with a student over the limits": (
        [
            "--model.init_args.model_kwargs",
            '{"width": 64}',
            "--trainer.max_epochs",
            "2",
            "--ckpt_path",
            "last",
        ],
        "error: model 'debug' exceeds the DCASE limits",
    ),
    "overwrite with a student over the limits": (
        ["--model.init_args.model_kwargs", '{"width": 64}', "--overwrite", "true"],
        "error: model 'debug' exceeds the DCASE limits",
    ),
    "resume with another model": (
        [
            "--model.init_args.model_kwargs",
            '{"width": 4}',
            "--trainer.max_epochs",
            "2",
            "--ckpt_path",
            "last",
        ],
        "error: --ckpt_path {folder}/checkpoints/last.ckpt holds the weights of another model than this "
        "model 'debug' (model.classifier.weight is (10, 16) there, (10, 8) here); resume with the recipe",
    ),
    "resume selecting the best epoch on the test split": (
        ["--checkpoint.selection", "best", "--trainer.max_epochs", "2", "--ckpt_path", "last"],
        "error: checkpoint.selection=best would pick the epoch by its accuracy on the development-test",
    ),
    "resume with teacher logits of other audio": (
        ["--data.teacher_logits", "{other_logits}", "--trainer.max_epochs", "2", "--ckpt_path", "last"],
        "error: teacher logits file {other_logits} does not match the dataset",
    ),
    "resume with a mistyped value": (
        ["--trainer.max_epochs", "two", "--ckpt_path", "last"],
        "error: command line: trainer.max_epochs = two is not valid",
    ),
    "resume with an invalid data option": (
        ["--data.segment_seconds", "-1", "--ckpt_path", "last"],
        "error: data.segment_seconds must be > 0, got -1.0",
    ),
    "a new seed with a student over the limits": (
        ["--seed_everything", "1", "--model.init_args.model_kwargs", '{"width": 64}'],
        "error: model 'debug' exceeds the DCASE limits",
    ),
    "a new seed selecting the best epoch on the test split": (
        ["--seed_everything", "2", "--checkpoint.selection", "best"],
        "error: checkpoint.selection=best would pick the epoch",
    ),
    "a new seed with an invalid data option": (
        ["--seed_everything", "3", "--data.segment_seconds", "-1"],
        "error: data.segment_seconds must be > 0, got -1.0",
    ),
}


#: Refusals of the command line as typed: exit code 2, as argparse's; the others exit 1.
USAGE_ERRORS = {"resume with a mistyped value"}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refused_fit_changes_and_adds_nothing(
    case: str, finished: FinishedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = shutil.copytree(finished.out, tmp_path / "out", symlinks=True)  # each case on a whole run
    extra, error = REFUSED[case]
    names = {
        "folder": out / "teacher-seed0",
        "other_root": finished.other_root,
        "other_logits": finished.other_logits,
    }

    def fill(text: str) -> str:
        for name, value in names.items():
            text = text.replace(f"{{{name}}}", str(value))
        return text

    before = folder_state(out)
    capsys.readouterr()
    with command_line("python -m asc_kd.fit"):
        code = run_command(command, [*finished.args(out), *map(fill, extra)])
    assert code == (2 if case in USAGE_ERRORS else 1)
    line = capsys.readouterr().err.splitlines()[0]
    assert line.startswith(fill(error)), line
    assert folder_state(out) == before


# -- logits and quantize: all their outputs or none ---------------------------------------------


@pytest.fixture(scope="module")
def student_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    task = ClassificationTask(model="debug", lr=1e-2, spec=TAU22)
    return fit_checkpoint(task, tmp_path_factory.mktemp("student") / "debug.ckpt")


def _earlier_outputs(folder: Path, *names: str) -> dict[str, str]:
    """Outputs of an earlier run in ``folder`` (a rerun must leave them whole when refused)."""
    folder.mkdir()
    for name in names:
        (folder / name).write_text(f"earlier {name}\n")
    return folder_state(folder)


def _refuse_writing_in(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    # Tests may run as root, for whom chmod does not stop a write: ask os.access instead.
    access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode, **kw: Path(path) != folder and access(path, mode, **kw)
    )


def test_quantize_refuses_data_of_other_classes_before_writing(
    student_checkpoint: Path,
    folders_root: Path,
    cache_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    before = _earlier_outputs(out, "model.int8.pt", "model.int8.json")
    data = ["--data.root", str(folders_root), "--data.cache_dir", str(cache_dir)]
    assert run_command(quantize, [str(student_checkpoint), *data, "--out", str(out / "model.int8.pt")]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        f"error: {student_checkpoint} predicts 10 classes (airport, bus, metro, ...), the dataset at "
        f"{folders_root} has 13 (scene00, scene01, scene02, ...); quantize it with the data it was trained on"
    )
    assert folder_state(out) == before


def test_quantize_failing_after_the_export_leaves_the_earlier_artifact_and_report(
    student_checkpoint: Path,
    tiny_root: Path,
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    before = _earlier_outputs(out, "model.int8.pt", "model.int8.json")

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("scoring failed")

    monkeypatch.setattr(quantize_module, "scene_metrics", fail)
    data = ["--data.root", str(tiny_root), "--data.cache_dir", str(cache_dir)]
    with pytest.raises(RuntimeError, match="scoring failed"):
        quantize([str(student_checkpoint), *data, "--out", str(out / "model.int8.pt")])
    assert folder_state(out) == before  # no new artifact without its report, no partial file


def test_logits_refuse_a_table_folder_they_cannot_write_before_the_teachers_run(
    student_checkpoint: Path,
    tiny_root: Path,
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, tables = tmp_path / "out", tmp_path / "tables"
    before = _earlier_outputs(out, "ensemble.npz")
    tables.mkdir()
    _refuse_writing_in(monkeypatch, tables)
    data = ["--data.root", str(tiny_root), "--data.cache_dir", str(cache_dir)]
    outputs = ["--out", str(out / "ensemble.npz"), "--table", str(tables / "table1")]
    assert run_command(export_logits, [str(student_checkpoint), *data, *outputs]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"error: output folder {tables} is not writable"
    assert "on train" not in err  # no teacher ran
    assert folder_state(out) == before and folder_state(tables) == {}
