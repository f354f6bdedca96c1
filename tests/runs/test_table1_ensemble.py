"""Which teacher runs make up Table 1's ensemble row: the runs marked ``in_ensemble`` (the
pipeline's ``--ensemble`` names), averaged with equal weights; the other runs get their own rows
and nothing else. The ensemble row's numbers are checked against the metrics of the mean of the
chosen teachers' own test logits, computed here without the export code."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import torch
from tiny_checkpoints import fit_checkpoint

import asc_kd.logits as logits_command
import asc_kd.runs.pipeline as pipeline_module
import asc_kd.training.logits as logits_module
from asc_kd.data.datamodule import TAU22DataModule
from asc_kd.data.options import data_values
from asc_kd.data.tau import TAU22
from asc_kd.evaluation.metrics import scene_metrics
from asc_kd.recipes import RECIPES
from asc_kd.runs.pipeline import Pipeline, PipelineConfig
from asc_kd.tasks import ClassificationTask
from asc_kd.tasks.restore import load_task
from asc_kd.tracking.lineage import WandbTarget
from asc_kd.training.logits import LOGITS_DATA_DEFAULTS, TeacherRun, export_logits

#: A small front-end: the teachers score the 180 test clips several times over.
SMALL_FRONTEND = {"n_fft": 512, "win_length": 512, "hop_length": 1024, "n_mels": 32}


@pytest.fixture(scope="module")
def three_teachers(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("table1")
    paths = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        paths.append(
            fit_checkpoint(
                ClassificationTask(model="debug", lr=0.05, frontend_kwargs=SMALL_FRONTEND, spec=TAU22),
                folder / f"t{seed}.ckpt",
            )
        )
    return paths


def _test_logits(paths: list[Path], datamodule: TAU22DataModule) -> list[torch.Tensor]:
    """Each teacher's logits on every test clip, read from the cache in the split's order."""
    dataset = datamodule.datasets["test"]
    waveform = dataset.audio.read([dataset.audio.row_of[n] for n in dataset.frame["filename"]])
    with torch.no_grad():
        return [load_task(p)(waveform) for p in paths]


def test_the_ensemble_row_is_the_mean_of_the_marked_runs_only(
    three_teachers: list[Path], tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    datamodule = TAU22DataModule(
        root=str(tiny_root), cache_dir=str(cache_dir), num_workers=0, eval_batch_size=90, check_data=False
    )
    runs = [
        TeacherRun(str(three_teachers[0]), "passt", 0, "last"),
        TeacherRun(str(three_teachers[1]), "passt", 1, "last"),
        TeacherRun(str(three_teachers[2]), "cnn", 0, "last", in_ensemble=False),
    ]
    table = export_logits(runs, datamodule, tmp_path / "e.npz", table=tmp_path / "table1", progress=False)
    assert list(table["teacher"]) == ["passt", "cnn", "ensemble of 2 (passt)"]
    assert list(table["seeds"]) == [2, 1, 1]
    a, b, c = _test_logits(three_teachers, datamodule)
    labels = datamodule.datasets["test"].labels

    def metrics(logits: torch.Tensor) -> dict[str, float]:
        return scene_metrics(logits, labels["target"], labels["device"], TAU22)

    chosen, everyone = metrics((a + b) / 2), metrics((a + b + c) / 3)
    assert abs(chosen["log_loss"] - everyone["log_loss"]) > 1e-3  # the test can tell them apart
    assert abs(chosen["log_loss"] - metrics(a + b)["log_loss"]) > 1e-3  # and a sum from a mean
    row = table.iloc[2]
    assert row["log_loss_mean"] == pytest.approx(chosen["log_loss"], abs=1e-5)
    assert row["accuracy_mean"] == pytest.approx(chosen["acc"], abs=1e-9)
    assert row["accuracy_unseen_mean"] == pytest.approx(chosen["acc_unseen"], abs=1e-9)
    # The cnn row is the third teacher alone; the passt row the mean over its two seeds.
    assert table.iloc[1]["log_loss_mean"] == pytest.approx(metrics(c)["log_loss"], abs=1e-5)
    passt = (metrics(a)["log_loss"] + metrics(b)["log_loss"]) / 2
    assert table.iloc[0]["log_loss_mean"] == pytest.approx(passt, abs=1e-5)
    seeds = pd.read_csv(tmp_path / "table1_seeds.csv")
    assert list(seeds["teacher"]) == ["passt", "passt", "cnn", "ensemble of 2 (passt)"]


class _FakeRun:
    pass


def test_the_pipeline_marks_the_ensemble_by_name_and_declares_only_its_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--ensemble passt`` out of passt (two seeds) and cp_resnet: the export gets passt's runs
    marked and cp_resnet's unmarked, and the logits run declares the passt checkpoints only."""
    recipes = [tmp_path / "passt.yaml", tmp_path / "cp_resnet.yaml"]  # named by their stems
    for recipe in recipes:
        recipe.write_text(
            f"name: {recipe.stem}\nmodel:\n  class_path: ClassificationTask\n  init_args:\n    model: debug\n"
        )
    config = PipelineConfig(
        out=str(tmp_path / "out"),
        teachers=[str(recipe) for recipe in recipes],
        teacher_seeds=2,
        ensemble=["passt"],
        stages=["logits"],
    )
    pipeline = Pipeline(config)
    seen: dict[str, Any] = {}

    def export(runs: list[TeacherRun], *args: Any, **kwargs: Any) -> pd.DataFrame:
        seen["runs"] = [(r.source, r.name, r.in_ensemble) for r in runs]
        return pd.DataFrame({"teacher": [r.name for r in runs]})

    def record(run: Any, teachers: list[str], *args: Any) -> None:
        seen["declared"] = list(teachers)

    @contextlib.contextmanager
    def stage_run(*args: Any) -> Any:
        yield _FakeRun()

    monkeypatch.setattr(logits_module, "export_logits", export)
    monkeypatch.setattr(logits_module, "record_logits", record)
    monkeypatch.setattr(logits_module, "stage_run", stage_run)
    monkeypatch.setattr(logits_module, "stage_datamodule", lambda *args, **kwargs: SimpleNamespace())
    monkeypatch.setattr(pipeline, "_wandb_target", lambda: WandbTarget())
    teachers = [
        {"checkpoint": f"/ckpt/{name}-seed{seed}.ckpt", "name": name, "seed": seed, "selection": "last"}
        for name in ("passt", "cp_resnet")
        for seed in (0, 1)
    ]
    pipeline.logits(teachers)
    assert seen["runs"] == [
        ("/ckpt/passt-seed0.ckpt", "passt", True),
        ("/ckpt/passt-seed1.ckpt", "passt", True),
        ("/ckpt/cp_resnet-seed0.ckpt", "cp_resnet", False),
        ("/ckpt/cp_resnet-seed1.ckpt", "cp_resnet", False),
    ]
    assert seen["declared"] == ["/ckpt/passt-seed0.ckpt", "/ckpt/passt-seed1.ckpt"]


def test_the_command_and_the_pipeline_run_one_logits_stage_on_the_same_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m asc_kd.logits`` and the pipeline's logits stage both call ``logits_stage``,
    with the same data options, logits file and Table 1 stem."""
    calls: list[dict[str, Any]] = []

    def stage(teachers: list[TeacherRun], data: Any, out: Any, **kwargs: Any) -> pd.DataFrame:
        options = data_values(data, LOGITS_DATA_DEFAULTS)
        calls.append({"data": options, "out": str(out), "table": str(kwargs["table"])})
        return pd.DataFrame({"teacher": [t.name for t in teachers]})

    monkeypatch.setattr(logits_command, "logits_stage", stage)
    monkeypatch.setattr(pipeline_module, "logits_stage", stage)
    out, root, cache = tmp_path / "out", str(tmp_path / "data"), str(tmp_path / "cache")
    config = PipelineConfig(
        data={"root": root, "cache_dir": cache}, out=str(out), stages=["logits"], systems=[], wandb=False
    )
    logits_file = str(out / "teachers" / "ensemble_train.npz")
    Pipeline(config)._export_logits(
        [{"checkpoint": "w.pt", "name": "passt", "seed": 0, "selection": "-"}], logits_file
    )
    data = [
        "--data.root",
        root,
        "--data.cache_dir",
        cache,
        "--data.holdout_file",
        str(out / "holdout_split.csv"),
    ]
    recipe = str(RECIPES / "teachers" / "passt.yaml")
    argv = ["w.pt", "--recipe", recipe, "--out", logits_file, "--table", str(out / "table1"), *data]
    assert logits_command.main(argv) == 0
    pipeline_call, command_call = calls
    assert command_call == pipeline_call
    assert pipeline_call["data"]["batch_size"] == 64 and pipeline_call["data"]["root"] == root
