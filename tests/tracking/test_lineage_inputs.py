"""Which inputs each W&B run declares (its lineage edges), for every kind of run:

==========  ==============================================================================
run         declared inputs
==========  ==============================================================================
fit         the teacher logits file it distils from and every online teacher checkpoint
logits      the ensemble's teacher checkpoints
quantize    the student checkpoint
tables      every student checkpoint and every int8 artifact
==========  ==============================================================================

Runs are stand-ins that record what they are given; artifact names and versions are derived
here from the files (``model-<recipe>-seed<seed>``, ``sha256-<16 hex>`` of the bytes).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import torch

import asc_kd.tracking.lineage as lineage
from asc_kd.data.teacher_logits import save_logits
from asc_kd.evaluation.tables import write_results
from asc_kd.tracking.lineage import record_fit
from asc_kd.tracking.loggers import AutoWandbLogger


class _Run:
    """An offline W&B run that records its config updates, logged artifacts and tables."""

    id = "run0"
    offline = True
    settings = SimpleNamespace(mode="offline")

    def __init__(self) -> None:
        self.inputs: list[tuple[str, str, str]] = []
        self.logged: list[Any] = []
        self.config = SimpleNamespace(update=self._update)

    def _update(self, values: dict[str, Any], allow_val_change: bool = False) -> None:
        self.inputs += [(i["name"], i["type"], i["alias"]) for i in values[lineage.INPUTS_KEY]]

    def log_artifact(self, artifact: Any, aliases: list[str]) -> None:
        self.logged.append(artifact)

    def log(self, values: dict[str, Any]) -> None:
        pass


def _alias(path: Path) -> str:
    return "sha256-" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _checkpoint(path: Path, recipe: str, seed: int) -> Path:
    torch.save({"asc_kd": {"run": {"recipe": recipe, "seed": seed}}, "state_dict": {}}, path)
    return path


@pytest.fixture
def files(tmp_path: Path) -> SimpleNamespace:
    teachers = [_checkpoint(tmp_path / f"passt{s}.ckpt", "passt", s) for s in (0, 1)]
    students = [_checkpoint(tmp_path / f"s{s}.ckpt", "system1", s) for s in (0, 1)]
    int8 = []
    for s in (0, 1):
        int8.append(tmp_path / f"s{s}.int8.pt")
        int8[-1].write_bytes(f"int8 model {s}".encode())
    logits = save_logits(
        tmp_path / "ensemble.npz",
        ["a.wav", "b.wav"],
        torch.zeros(2, 3),
        {"split": "train", "classes": list("xyz")},
    )
    frame = pd.DataFrame({"system": ["system1", "system1"], "seed": [0, 1], "accuracy": [0.5, 0.6]})
    write_results(frame, ["system"], tmp_path / "table2", "Table 2")
    return SimpleNamespace(
        teachers=teachers, students=students, int8=int8, logits=logits, table=tmp_path / "table2"
    )


def test_the_logits_run_declares_the_ensemble_checkpoints(files: SimpleNamespace) -> None:
    run = _Run()
    lineage.record_logits(run, [str(p) for p in files.teachers], files.logits, None, None)
    assert run.inputs == [(f"model-passt-seed{s}", "model", _alias(files.teachers[s])) for s in (0, 1)]
    (artifact,) = run.logged
    assert artifact.type == "teacher-logits" and artifact.name == "teacher-logits-train"
    assert [i["alias"] for i in artifact.metadata["inputs"]] == [_alias(p) for p in files.teachers]


def test_the_quantize_run_declares_its_student(files: SimpleNamespace) -> None:
    run = _Run()
    lineage.record_quantize(run, files.students[1], files.int8[1], {"int8": {"acc": 0.5}})
    assert run.inputs == [("model-system1-seed1", "model", _alias(files.students[1]))]
    (artifact,) = run.logged
    assert (artifact.name, artifact.type) == ("int8-system1-seed1", "int8-model")


def test_the_tables_run_declares_every_student_and_int8_model(files: SimpleNamespace) -> None:
    run = _Run()
    pairs = [(str(c), str(a)) for c, a in zip(files.students, files.int8, strict=True)]
    lineage.record_tables(run, pairs, files.table, pd.DataFrame({"system": ["system1"]}))
    assert run.inputs == [
        ("model-system1-seed0", "model", _alias(files.students[0])),
        ("model-system1-seed1", "model", _alias(files.students[1])),
        ("int8-system1-seed0", "int8-model", _alias(files.int8[0])),
        ("int8-system1-seed1", "int8-model", _alias(files.int8[1])),
    ]


def _wandb_loggers(run: _Run) -> list[AutoWandbLogger]:
    logger = AutoWandbLogger.__new__(AutoWandbLogger)
    logger._experiment = run
    return [logger]


def test_a_fit_declares_its_logits_file_and_online_teachers(files: SimpleNamespace) -> None:
    run = _Run()
    summary = {"files": {"reported_checkpoint": None, "int8_artifact": None, "selection": "last"}}
    record_fit(_wandb_loggers(run), summary, {}, str(files.logits), [str(p) for p in files.teachers])
    assert run.inputs == [
        ("teacher-logits-train", "teacher-logits", _alias(files.logits)),
        ("model-passt-seed0", "model", _alias(files.teachers[0])),
        ("model-passt-seed1", "model", _alias(files.teachers[1])),
    ]


def test_a_fit_from_scratch_declares_nothing(files: SimpleNamespace) -> None:
    run = _Run()
    summary = {"files": {"reported_checkpoint": None, "int8_artifact": None, "selection": "last"}}
    record_fit(_wandb_loggers(run), summary, {}, None, [])
    assert run.inputs == []
