"""Synthetic scenes are written only where the user asked for them: the demo root, or any root
with ``--data.generate_synthetic true`` on the command line. A recipe that sets
``generate_synthetic`` (the demo overlay, the demo teachers) never turns a mistyped
``--data.root`` into a generated dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
from fit_helpers import command_line

import asc_kd.data.datamodule as datamodule_module
from asc_kd.core.command_line import run_command
from asc_kd.data.spec import DatasetError
from asc_kd.fit import command
from asc_kd.recipes import RECIPES

DEMO_STUDENT = [
    *("--config", str(RECIPES / "base.yaml")),
    *("--config", str(RECIPES / "students" / "kd.yaml")),
    *("--config", str(RECIPES / "students" / "system1.yaml")),
    *("--config", str(RECIPES / "demo" / "synthetic.yaml")),
    *("--trainer.logger", "false"),
]
DEMO_TEACHER = [
    *("--config", str(RECIPES / "base.yaml")),
    *("--config", str(RECIPES / "demo" / "teachers" / "cnn_tiny.yaml")),
    *("--trainer.logger", "false"),
]


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def generation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """Work in an empty folder; generating scenes records the root and stops the fit there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ASC_KD_CACHE", str(tmp_path / "cache"))
    roots: list[Path] = []

    def ensure_synthetic(root, config=None, layout=None, lock_timeout=None):
        roots.append(Path(root))
        raise DatasetError(f"generation stopped by the test at {root}")

    monkeypatch.setattr(datamodule_module, "ensure_synthetic", ensure_synthetic)  # where it is called
    return roots


@pytest.mark.parametrize("recipe", [DEMO_STUDENT, DEMO_TEACHER], ids=["demo-overlay", "demo-teacher"])
def test_a_mistyped_root_is_a_one_line_error_and_creates_nothing(
    recipe: list[str], generation: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with command_line("asc_kd.fit"):
        assert run_command(command, [*recipe, "--data.root", "data/synthtic"]) == 1
    error = capsys.readouterr().err.splitlines()
    assert error == [
        "error: dataset root data/synthtic is missing or empty; put the dataset there (TAU22/TAU20: "
        "the unpacked development set; your own: one folder of audio files per class), or pass "
        "--data.generate_synthetic true to write synthetic scenes there",
        "(ASC_KD_DEBUG=1 shows the traceback)",
    ]
    assert generation == []
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    "extra, root",
    [
        ([], "data/synthetic"),  # the demo root: the recipe's setting applies
        (["--data.root", "my_scenes", "--data.generate_synthetic", "true"], "my_scenes"),
        (["--data.root", "my_scenes", "--data.generate_synthetic=true"], "my_scenes"),
    ],
    ids=["demo-root", "asked", "asked-with-equals"],
)
def test_scenes_are_generated_where_asked(
    extra: list[str], root: str, generation: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with command_line("asc_kd.fit"):
        assert run_command(command, [*DEMO_STUDENT, *extra]) == 1
    assert generation == [Path(root)]
    assert f"generation stopped by the test at {root}" in capsys.readouterr().err


def test_asking_on_the_command_line_for_no_scenes_wins_on_the_demo_root(
    generation: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with command_line("asc_kd.fit"):
        assert run_command(command, [*DEMO_STUDENT, "--data.generate_synthetic", "false"]) == 1
    assert generation == []
    assert "dataset root data/synthetic is missing or empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    "root, asked",
    [("data/synthtic", False), ("data/synthetic", False), ("my_scenes", True)],
    ids=["mistyped", "demo-root", "asked"],
)
def test_the_demo_pipeline_generates_only_into_the_demo_root_or_where_asked(
    root: str, asked: bool, generation: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from asc_kd.pipeline import main

    argv = ["--data.root", root, "--out", "out", "--stages", "teachers", "--no-wandb", "--quiet"]
    with command_line("asc_kd.pipeline"):
        assert run_command(main, [*argv, *(["--data.generate_synthetic", "true"] if asked else [])]) == 1
    if root != "data/synthtic":  # the pipeline makes them itself, before any fit (inline too)
        assert generation == [Path(root)]
        return
    (line, _) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: dataset root data/synthtic is missing or empty")
    assert generation == []
    assert not (tmp_path / "data").exists()
