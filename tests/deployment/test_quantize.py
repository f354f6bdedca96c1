"""``python -m asc_kd.quantize``: the command prints fp32 and int8 and names bad inputs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tiny_checkpoints import fit_checkpoint

import asc_kd.quantize as quantize_command
import asc_kd.runs.pipeline as pipeline_module
from asc_kd.data.options import data_values
from asc_kd.data.tau import TAU22
from asc_kd.deployment.quantize import QUANTIZE_DATA_DEFAULTS, find_int8, int8_name
from asc_kd.quantize import main
from asc_kd.runs.pipeline import Pipeline, PipelineConfig, Run
from asc_kd.tasks import ClassificationTask
from asc_kd.tasks.restore import CheckpointError


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    task = ClassificationTask(model="debug", lr=1e-2, spec=TAU22)
    return fit_checkpoint(task, tmp_path_factory.mktemp("quantize") / "debug.ckpt")


def test_cli_prints_fp32_and_int8(
    checkpoint: Path, tiny_root: Path, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "x.int8.pt"
    data = ["--data.root", str(tiny_root), "--data.cache_dir", str(cache_dir)]
    assert main([str(checkpoint), *data, "--out", str(out), "--calibration-batches", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.match(
        r"fp32: acc \d\.\d{4}  log loss \d+\.\d{4}  real \d\.\d{4}  seen \d\.\d{4}  unseen \d\.\d{4}$",
        lines[0],
    )
    assert re.match(
        r"int8: acc \d\.\d{4}  log loss \d+\.\d{4}  real \d\.\d{4}  seen \d\.\d{4}  unseen \d\.\d{4}$",
        lines[1],
    )
    report = json.loads((tmp_path / "x.int8.json").read_text())
    assert lines[2].startswith(f"MEM {report['mem_bytes']:,} bytes (parameters x 1 byte")
    assert f"the artifact's weights take {report['artifact_bytes']:,}" in lines[2]
    # 180 training clips in batches of 64 (the last dropped): 2 batches, not the 20 asked for.
    assert report["calibration_batches"] == 2 and "calibrated on 2 batches" in lines[2]
    assert lines[3] == f"artifact: {out}" and lines[4] == f"report: {tmp_path / 'x.int8.json'}"
    assert out.is_file()
    assert report["source_checkpoint"] == str(checkpoint)


def test_cli_missing_checkpoint(tiny_root: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "last.ckpt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        main([str(missing), "--data.root", str(tiny_root), "--out", str(tmp_path / "x.int8.pt")])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello, I am a text file\n", "is not a PyTorch file"),
        ({"weights": torch.zeros(2)}, "no 'state_dict'"),
        ({"state_dict": {}, "hyper_parameters": {}}, "no asc_kd hyperparameters"),
    ],
    ids=["text", "no-state-dict", "no-hyperparameters"],
)
def test_cli_file_that_is_not_a_checkpoint(
    tiny_root: Path,
    tmp_path: Path,
    foreign_file: Callable[[str, bytes | dict], Path],
    content: bytes | dict,
    message: str,
) -> None:
    path = foreign_file("model.ckpt", content)
    with pytest.raises(CheckpointError, match=message) as raised:
        main([str(path), "--data.root", str(tiny_root), "--out", str(tmp_path / "x.int8.pt")])
    assert str(path) in str(raised.value)
    assert "objects" not in str(raised.value)  # a text file is not said to hold refused objects
    assert not (tmp_path / "x.int8.pt").exists()


def test_the_default_artifact_is_named_after_the_checkpoints_run_and_found_by_it(
    tiny_root: Path, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    torch.manual_seed(0)
    task = ClassificationTask(model="debug", spec=TAU22)
    task.run_info = {"recipe": "mywork:TinyCNN", "seed": 2}  # a fit of that model, unnamed, seed 2
    run = tmp_path / "TinyCNN-seed2"
    checkpoint = fit_checkpoint(task, run / "checkpoints" / "last.ckpt")
    data = ["--data.root", str(tiny_root), "--data.cache_dir", str(cache_dir)]
    assert main([str(checkpoint), *data, "--calibration-batches", "1"]) == 0
    artifact = run / "checkpoints" / "TinyCNN-seed2.int8.pt"
    assert f"artifact: {artifact}" in capsys.readouterr().out.splitlines()
    assert sorted(p.name for p in artifact.parent.glob("*.int8.*")) == [
        "TinyCNN-seed2.int8.json",
        "TinyCNN-seed2.int8.pt",
    ]
    assert find_int8(run) == artifact
    beside = tmp_path / "TinyCNN-seed2.int8.pt"  # where the pipeline's int8 stage puts its copy
    beside.write_bytes(artifact.read_bytes())
    assert find_int8(run) == beside


def test_a_task_no_fit_named_names_its_artifact_after_its_model() -> None:
    task = ClassificationTask(model="debug", spec=TAU22)
    assert int8_name(task) == "debug.int8.pt"
    task.run_info = {"recipe": "system1", "seed": 0}
    assert int8_name(task) == "system1-seed0.int8.pt"


def test_a_run_without_an_int8_artifact_is_named_with_both_places_and_the_fix(tmp_path: Path) -> None:
    run = tmp_path / "system1-seed0"
    with pytest.raises(FileNotFoundError) as raised:
        find_int8(run)
    message = str(raised.value)
    assert str(tmp_path / "system1-seed0.int8.pt") in message
    assert str(run / "checkpoints" / "system1-seed0.int8.pt") in message
    assert "asc-kd quantize" in message


def test_the_command_and_the_pipeline_run_one_quantize_stage_on_the_same_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m asc_kd.quantize`` and the pipeline's quantize stage both call
    ``quantize_stage``, with the same checkpoint, data options and artifact."""
    calls = []
    metrics = {"acc": 0.5, "log_loss": 1.0}
    report = {"fp32": metrics, "int8": metrics, "device_groups": {}, "mem_bytes": 1, "artifact_bytes": 1}

    def stage(checkpoint: str, data, out, **kwargs) -> dict:
        calls.append((checkpoint, data_values(data, QUANTIZE_DATA_DEFAULTS), str(out)))
        return {**report, "macs": 1, "calibration_batches": 1, "artifact": str(out)}

    monkeypatch.setattr(quantize_command, "quantize_stage", stage)
    monkeypatch.setattr(pipeline_module, "quantize_stage", stage)
    out, root = tmp_path / "out", str(tmp_path / "data")
    config = PipelineConfig(data={"root": root}, out=str(out), stages=["quantize"], systems=[], wandb=False)
    checkpoint, artifact = str(tmp_path / "last.ckpt"), str(out / "students" / "s-seed0.int8.pt")
    student = Run("student", "s", 0, tmp_path / "s.yaml")
    Pipeline(config)._quantize_run(student, {"checkpoint": checkpoint, "selection": "last"}, artifact)
    holdout = str(out / "holdout_split.csv")
    assert main([checkpoint, "--data.root", root, "--data.holdout_file", holdout, "--out", artifact]) == 0
    pipeline_call, command_call = calls
    assert command_call == pipeline_call
    assert pipeline_call[1]["num_workers"] == 0 and pipeline_call[1]["root"] == root
