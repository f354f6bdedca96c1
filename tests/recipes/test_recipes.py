"""Shipped recipes: named from any folder, a path still wins, copies never overwrite; the
``asc-kd`` command reaches every command."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from fit_helpers import CONF

from asc_kd.__main__ import COMMANDS
from asc_kd.__main__ import main as asc_kd
from asc_kd.core.errors import ConfigError
from asc_kd.recipes import RECIPES, copy_recipes, expand_config_args, list_recipes, resolve_recipe


def test_the_recipes_are_named_by_their_path_without_yaml() -> None:
    names = list_recipes()
    assert {"base", "students/kd", "students/system1", "teachers/passt", "demo/synthetic"} <= set(names)
    assert "demo/teachers/cnn_tiny" in names and len(names) == len(list(RECIPES.rglob("*.yaml")))
    for name in names:
        assert yaml.safe_load(resolve_recipe(name).read_text()) is not None, name


@pytest.mark.parametrize("written", ["students/system1", "students/system1.yaml", "recipe:students/system1"])
def test_a_name_resolves_to_the_shipped_file(written: str) -> None:
    assert resolve_recipe(written) == RECIPES / "students" / "system1.yaml"


def test_an_existing_file_wins_over_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "students").mkdir()
    own = tmp_path / "students" / "system1.yaml"
    own.write_text("model: {}\n")
    assert resolve_recipe("students/system1.yaml") == Path("students/system1.yaml")
    assert resolve_recipe("students/system1") == RECIPES / "students" / "system1.yaml"  # no such file
    assert resolve_recipe("recipe:students/system1.yaml") == RECIPES / "students" / "system1.yaml"


def test_an_unknown_recipe_is_one_line_naming_the_closest() -> None:
    with pytest.raises(ConfigError) as error:
        resolve_recipe("students/sytem1")
    message = str(error.value)
    assert "\n" not in message and "'students/sytem1'" in message
    assert "did you mean students/system1" in message and "python -m asc_kd.recipes list" in message
    with pytest.raises(ConfigError, match="no recipe '../pyproject'"):
        resolve_recipe("../pyproject")  # names stay inside the recipes folder


def test_config_arguments_take_names_and_leave_files_and_inline_yaml() -> None:
    inline = "{trainer: {max_epochs: 1}}"
    args = ["--config", "base", f"--config={CONF / 'teacher.yaml'}", "--config", inline, "--name", "base"]
    assert expand_config_args(args) == [
        *("--config", str(RECIPES / "base.yaml")),
        f"--config={CONF / 'teacher.yaml'}",
        *("--config", inline, "--name", "base"),  # only --config values are recipes
    ]
    with pytest.raises(ConfigError, match="no recipe 'bsae'"):
        expand_config_args(["--config", "bsae"])


def test_copy_writes_every_recipe_and_never_overwrites(tmp_path: Path) -> None:
    copied = copy_recipes(tmp_path / "mine")
    assert sorted(str(p.relative_to(tmp_path / "mine").with_suffix("")) for p in copied) == sorted(
        [*list_recipes(), "README"]
    )
    assert (tmp_path / "mine" / "students" / "kd.yaml").read_bytes() == (
        RECIPES / "students/kd.yaml"
    ).read_bytes()
    (tmp_path / "mine" / "base.yaml").write_text("# edited\n")
    with pytest.raises(ConfigError, match=rf"exists \({len(copied)} of the recipes' files are already in"):
        copy_recipes(tmp_path / "mine")
    assert (tmp_path / "mine" / "base.yaml").read_text() == "# edited\n"


def test_the_recipes_command_lists_shows_and_copies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert asc_kd(["recipes", "list"]) == 0
    assert capsys.readouterr().out.split() == list_recipes()
    assert asc_kd(["recipes", "show", "students/system3"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"# {RECIPES / 'students' / 'system3.yaml'}\n")
    assert shown.split("\n", 1)[1] == (RECIPES / "students" / "system3.yaml").read_text()
    assert asc_kd(["recipes", "copy", str(tmp_path / "copy")]) == 0
    assert (tmp_path / "copy" / "teachers" / "passt.yaml").is_file()
    suggested = capsys.readouterr().out.split("e.g. ")[1].split()  # a fit's --config chain, copied
    assert suggested[::2] == ["--config"] * 3 and [Path(p).name for p in suggested[1::2]] == [
        "base.yaml",
        "kd.yaml",
        "system1.yaml",
    ]
    assert all(Path(p).is_file() and Path(p).is_relative_to(tmp_path / "copy") for p in suggested[1::2])
    assert asc_kd(["recipes", "show", "nonesuch"]) == 1
    assert "no recipe 'nonesuch'" in capsys.readouterr().err


def test_asc_kd_lists_its_commands_and_refuses_unknown_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert asc_kd([]) == 2 and asc_kd(["--help"]) == 0
    listed = capsys.readouterr().out
    for name in ("fit", "logits", "quantize", "predict", "export", "pipeline", "check", "bench", "recipes"):
        assert f"  {name} " in listed and name in COMMANDS
    assert asc_kd(["fitt"]) == 2
    assert "unknown command 'fitt'" in capsys.readouterr().err


def test_asc_kd_fit_composes_recipe_names(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``asc-kd fit --config base --config students/kd ...`` parses as the files would, and leaves
    ``sys.argv`` and ``__main__`` as they were: a DDP relaunch (``python -m <__main__'s spec>
    sys.argv[1:]``, or the script and its arguments) runs the command that was typed."""
    monkeypatch.setattr(sys, "argv", ["asc-kd", "fit", "--config", "base"])
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", None, raising=False)
    names = ["--config", "base", "--config", "students/kd", "--config", "students/system1"]
    with pytest.raises(SystemExit) as done:
        asc_kd(["fit", *names, "--print_config"])
    assert done.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["name"] == "system1" and config["model"]["class_path"].endswith("DistillationTask")
    assert sys.modules["__main__"].__spec__ is None
    assert sys.argv == ["asc-kd", "fit", "--config", "base"]
