"""``asc_kd.tracking.lineage``: artifact names and versions derived from files, inputs declared online or
recorded offline, large files by reference, and ``relink`` drawing the edges after a sync."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import wandb
from fit_helpers import fit_on_noise

import asc_kd.tracking.lineage as lineage
from asc_kd.callbacks import CheckpointSelection
from asc_kd.tasks import ClassificationTask


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import lightning as L

    folder = tmp_path_factory.mktemp("lineage")
    task = ClassificationTask(model="debug")
    task.run_info = {"recipe": "passt", "seed": 3}
    callback = CheckpointSelection(dirpath=str(folder))
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    fit_on_noise(task, trainer)
    return folder / "last.ckpt"


def test_a_checkpoint_is_named_by_recipe_and_seed_and_versioned_by_content(checkpoint: Path) -> None:
    ref = lineage.model_ref(checkpoint)
    assert (ref.name, ref.type) == ("model-passt-seed3", "model")
    import hashlib

    assert ref.alias == "sha256-" + hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:16]
    assert ref.qualified == f"model-passt-seed3:{ref.alias}"
    assert lineage.int8_ref(checkpoint, checkpoint).name == "int8-passt-seed3"


def test_a_weights_file_without_a_record_is_named_after_its_stem(tmp_path: Path) -> None:
    path = tmp_path / "passt weights.pt"
    torch.save({"w": torch.zeros(2)}, path)
    assert lineage.model_ref(path).name == "model-passt-weights"
    (tmp_path / "x.safetensors").write_bytes(b"not torch")
    assert lineage.model_ref(tmp_path / "x.safetensors").name == "model-x"


class FakeRun:
    def __init__(self, offline: bool) -> None:
        self.offline = offline
        self.settings = SimpleNamespace(mode="offline" if offline else "online")
        self.config = SimpleNamespace(update=lambda values, allow_val_change: self.updates.append(values))
        self.updates: list[dict] = []
        self.used: list[tuple[str, str]] = []
        self.logged: list[tuple[Any, list[str]]] = []
        self.id = "abc123"

    def use_artifact(self, name: str, type: str) -> None:
        self.used.append((name, type))

    def log_artifact(self, artifact: Any, aliases: list[str]) -> None:
        self.logged.append((artifact, aliases))


@pytest.mark.parametrize("offline", [True, False])
def test_inputs_are_recorded_and_used_online(checkpoint: Path, offline: bool) -> None:
    run = FakeRun(offline)
    ref = lineage.model_ref(checkpoint)
    lineage.declare_inputs(run, [ref])
    assert run.updates == [
        {"asc_kd_inputs": [{"name": ref.name, "type": "model", "alias": ref.alias, "path": ref.path}]}
    ]
    assert run.used == ([] if offline else [(ref.qualified, "model")])


def test_outputs_carry_inputs_and_large_files_are_references(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = FakeRun(True)
    ref = lineage.model_ref(checkpoint)
    monkeypatch.setattr(lineage, "UPLOAD_LIMIT_BYTES", checkpoint.stat().st_size - 1)
    small = tmp_path / "report.json"
    small.write_text("{}")
    (artifact,) = lineage.log_outputs(run, [lineage.Output(ref, {"acc": 0.5}, [str(small)])], [ref])
    logged, aliases = run.logged[0]
    assert logged is artifact and aliases == [ref.alias, "latest"]
    assert artifact.metadata["acc"] == 0.5 and artifact.metadata["run_id"] == "abc123"
    assert artifact.metadata["inputs"][0]["alias"] == ref.alias
    entries = artifact.manifest.entries
    assert entries["last.ckpt"].ref == checkpoint.resolve().as_uri()  # by reference: not copied
    assert entries["report.json"].ref is None  # uploaded


def test_relink_declares_the_recorded_inputs_of_synced_runs() -> None:
    inputs = [
        {"name": "teacher-logits-train", "type": "teacher-logits", "alias": "sha256-0123", "path": "/x"}
    ]
    remote_runs = [
        SimpleNamespace(id="student1", config={"asc_kd_inputs": inputs}),
        SimpleNamespace(id="teacher1", config={}),
    ]
    queries: list[tuple[str, Any]] = []

    class Api:
        def runs(self, path: str, filters: Any = None) -> list[Any]:
            queries.append((path, filters))
            return remote_runs

    resumed: list[dict[str, Any]] = []

    def init(**kwargs: Any) -> FakeRun:
        resumed.append(kwargs)
        run = FakeRun(False)
        run.finish = lambda: None
        init.runs.append(run)
        return run

    init.runs = []
    assert lineage.relink("team/asc", group="g1", api=Api(), init=init) == 1
    assert queries == [("team/asc", {"group": "g1"})]
    assert resumed == [{"entity": "team", "project": "asc", "id": "student1", "resume": "must"}]
    assert init.runs[0].used == [("team/asc/teacher-logits-train:sha256-0123", "teacher-logits")]
    with pytest.raises(ValueError, match="ENTITY/PROJECT"):
        lineage.relink("asc", api=Api(), init=init)


def test_a_frame_becomes_a_wandb_table() -> None:
    import pandas as pd

    logged = {}
    run = SimpleNamespace(log=lambda values: logged.update(values))
    lineage.log_table(run, "table2", pd.DataFrame({"system": ["s1"], "acc": [0.5], "bytes": [None]}))
    table = logged["table2"]
    assert isinstance(table, wandb.Table) and table.columns == ["system", "acc", "bytes"]
    assert table.data == [["s1", 0.5, None]]
