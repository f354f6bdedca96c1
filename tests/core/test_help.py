"""Every command's ``--help`` explains each option and shows its default, under the name the
user typed; a misspelt option or choice is answered in one line with the closest spelling;
``asc-kd docs`` and ``asc-kd --version`` for pip users; no traceback when the reader leaves."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from fit_helpers import REPO
from jsonargparse import ActionConfigFile

import asc_kd
from asc_kd.__main__ import COMMANDS as ASC_KD_COMMANDS
from asc_kd.__main__ import main as asc_kd_main
from asc_kd.core.command_line import CommandHelpFormatter

COMMANDS = [
    "asc_kd.bench",
    "asc_kd.docs.__main__",
    "asc_kd.recipes.__main__",
    "asc_kd.status",
    "asc_kd.complexity",
    "asc_kd.check",
    "asc_kd.synthetic",
    "asc_kd.export",
    "asc_kd.logits",
    "asc_kd.package",
    "asc_kd.pipeline",
    "asc_kd.predict",
    "asc_kd.quantize",
    "asc_kd.relink",
    "asc_kd.tables",
]


def _parsers(parser: argparse.ArgumentParser, name: str) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                found += _parsers(sub, f"{name} {sub_name}")
    return found


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The command's options: without ``--help`` and jsonargparse's ``--config``, ``--print_config``
    and a group's ``--data CONFIG`` (each without a value of its own: their default is SUPPRESS)."""
    return [
        action
        for action in parser._actions
        if action.option_strings
        and not isinstance(action, argparse._HelpAction | ActionConfigFile)
        and action.default is not argparse.SUPPRESS
    ]


@pytest.mark.parametrize("module", COMMANDS)
def test_every_option_has_a_description_and_its_default(module: str) -> None:
    for name, parser in _parsers(importlib.import_module(module).build_parser(), module):
        assert parser.formatter_class is CommandHelpFormatter, name
        formatter = parser._get_formatter()
        for action in _options(parser):
            assert action.help, f"{name} {action.option_strings[0]} has no description"
            text = formatter._get_help_string(action) % {"default": action.default}
            is_flag = action.nargs == 0 and action.default is False
            assert is_flag or action.required or "default" in text, (
                f"{name} {action.option_strings[0]}: {text!r}"
            )
            assert text.count("default") <= 2, f"{name} {action.option_strings[0]} says its default twice"


def test_a_default_the_help_explains_is_not_repeated() -> None:
    from asc_kd.quantize import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "(default $ASC_KD_CACHE or ~/.cache/asc_kd)" in text  # --data.cache_dir
    assert "(default: None)" not in text
    assert "(default: 20)" in text  # --calibration-batches, added by the formatter
    # The command's own default replaces the one SceneDataModule's docstring explains.
    assert "--data.num_workers NUM_WORKERS DataLoader processes. (default: 0)" in text


def test_options_cannot_be_abbreviated() -> None:
    from asc_kd.quantize import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["ckpt", "--data.root", "r", "--calib", "3"])


@pytest.mark.parametrize("name", ["asc_kd.logits", "asc_kd.quantize", "asc_kd.check", "asc_kd.predict"])
def test_a_data_option_typed_without_data_is_named_in_the_fits_spelling(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = importlib.import_module(name).build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["model.ckpt", "--data.root", "DATA", "--cache-dir", "C", "--layout=folders"])
    assert capsys.readouterr().err == (
        "error: command line: unknown option --cache-dir; did you mean --data.cache_dir? "
        "unknown option --layout; did you mean --data.layout? (the data options are the fit's)\n"
    )


# -- asc-kd COMMAND: usage names, one-line errors ---------------------------------------------

#: An option's own line in ``--help`` (two spaces, then ``--name`` or ``-x, --name``).
OPTION_LINE = re.compile(r"^  (?:-\w\S*(?: \S+)?, )?(--[\w.-]*\w)", re.M)
#: A positional's choices in ``--help`` (``  {list,show,copy}``: sub-commands, a page's name).
CHOICE_LINE = re.compile(r"^  \{([\w.,-]+)\}", re.M)
#: Misspellings a user types, beside the ones made from ``--help``: options' choices among them
#: (argparse's, and the fit's data options, which jsonargparse checks after argparse).
EXAMPLES = {
    "pipeline": [(["--epochs", "3"], "--max-epochs"), (["--executor", "lokal"], "local")],
    "fit": [(["--data.layout", "foldes"], "folders"), (["--test", "ture"], "true")],
    "check": [(["--data.root", "DATA", "--data.layout=foldes"], "folders")],
    "recipes": [(["lsit"], "list")],
}


@pytest.fixture
def as_asc_kd(monkeypatch: pytest.MonkeyPatch) -> None:
    """``asc-kd`` as its entry point runs, help on one line each."""
    monkeypatch.setattr(sys, "argv", ["asc-kd"])
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", None, raising=False)
    monkeypatch.setenv("COLUMNS", "1000")


def _run(
    main: Callable[[list[str]], int], argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as done:
        code = done.code
    out, err = capsys.readouterr()
    return code, out, err


def _misspelt(word: str) -> str:
    """``word`` with its last letter but one dropped (``--max-epochs`` -> ``--max-epocs``)."""
    return word[:-2] + word[-1]


@pytest.mark.usefixtures("as_asc_kd")
@pytest.mark.parametrize("command", ASC_KD_COMMANDS)
def test_a_misspelt_option_or_choice_is_one_line_naming_the_closest(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command, ``fit`` included: its longest option (``--help`` where it has no other)
    and its longest sub-command or page name, each misspelt, are refused with exit code 2 and
    one line in the fit's words, ``... did you mean --max-epochs?``, not the usage."""
    code, out, _ = _run(asc_kd_main, [command, "--help"], capsys)
    assert code == 0 and out.startswith(f"usage: asc-kd {command} "), out[:200]
    options = OPTION_LINE.findall(out)
    assert "--help" in options, f"asc-kd {command} --help lists no option to misspell"
    option = max([o for o in options if o != "--help"] or options, key=len)
    cases = [([f"{_misspelt(option)}=1"], option)]
    if choices := CHOICE_LINE.search(out):
        choice = max(choices.group(1).split(","), key=len)
        cases.append(([_misspelt(choice)], choice))
    for argv, closest in [*cases, *EXAMPLES.get(command, [])]:
        code, out, err = _run(asc_kd_main, [command, *argv], capsys)
        assert code == 2 and out == "", (argv, code)
        assert err.startswith("error: command line: ") and err.endswith(f"; did you mean {closest}?\n"), (
            argv,
            err,
        )
        assert err.count("\n") == 1, (argv, err)


@pytest.mark.usefixtures("as_asc_kd")
@pytest.mark.parametrize("command", ASC_KD_COMMANDS)
def test_the_usage_names_the_command_as_typed(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = ASC_KD_COMMANDS[command][0]
    code, out, _ = _run(importlib.import_module(module).main, ["--help"], capsys)
    assert code == 0 and out.startswith(f"usage: python -m {module.removesuffix('.__main__')} "), out[:200]
    # the sub-commands' usage too
    if command in ("recipes", "bench"):
        code, out, _ = _run(asc_kd_main, [command, "show" if command == "recipes" else "keys", "-h"], capsys)
        assert code == 0 and out.startswith(f"usage: asc-kd {command} "), out[:200]


#: The words before ``--print_config`` that a command needs to print a configuration.
PRINT_CONFIG_BEFORE = {"recipes": ["show", "students/kd"], "bench": ["train"]}


@pytest.mark.usefixtures("as_asc_kd")
@pytest.mark.parametrize("command", sorted(ASC_KD_COMMANDS))
def test_every_command_prints_its_configuration(
    command: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``asc-kd COMMAND --print_config`` prints the options as YAML (required ones unset) and
    exits 0; ``--config`` reads that file back to the same configuration."""
    before = PRINT_CONFIG_BEFORE.get(command, [])
    code, out, err = _run(asc_kd_main, [command, *before, "--print_config"], capsys)
    assert code == 0 and err == "", (code, err)
    printed = yaml.safe_load(out)
    assert isinstance(printed, dict) and printed, out
    if command in ("fit", "recipes", "bench"):
        return  # the fit's recipes need a model; recipes' and bench's print is the subcommand's
    (tmp_path / "config.yaml").write_text(out)
    code, again, err = _run(
        asc_kd_main, [command, "--config", str(tmp_path / "config.yaml"), "--print_config"], capsys
    )
    assert code == 0 and yaml.safe_load(again) == printed, err


def test_an_unknown_command_is_one_line_naming_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    assert asc_kd_main(["pipline", "--seeds", "3"]) == 2
    assert (
        capsys.readouterr().err == "error: command line: unknown command 'pipline'; did you mean pipeline?\n"
    )
    assert asc_kd_main(["xyz"]) == 2
    assert (
        capsys.readouterr().err
        == "error: command line: unknown command 'xyz'; `asc-kd --help` lists the commands\n"
    )


def test_asc_kd_names_its_version_and_docs(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--version", "-V"):
        assert asc_kd_main([flag]) == 0
        assert capsys.readouterr().out == f"asc_kd {importlib.metadata.version('asc_kd')}\n"
    assert importlib.metadata.version("asc_kd") == asc_kd.__version__
    assert asc_kd_main(["--help"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^  docs +the documentation pages", text, re.M), text
    assert "asc-kd docs lists the documentation pages" in text


def test_asc_kd_docs_lists_and_prints_the_pages(as_asc_kd: None, capsys: pytest.CaptureFixture[str]) -> None:
    pages = sorted((REPO / "docs").glob("*.md"))
    assert len(pages) >= 8
    assert asc_kd_main(["docs"]) == 0
    listed = capsys.readouterr().out.splitlines()
    width = max(len(page.stem) for page in pages)
    for page in pages:
        assert f"{page.stem:<{width}}  {page.read_text().splitlines()[0].removeprefix('# ')}" in listed
    assert f"{'results':<{width}}  asc_kd results" in listed  # the notebook's first heading
    assert listed[-1].startswith("`asc-kd docs TOPIC` prints one; the pages are in ")
    assert asc_kd_main(["docs", "training"]) == 0
    assert capsys.readouterr().out == (REPO / "docs" / "training.md").read_text()
    assert asc_kd_main(["docs", "results"]) == 0
    shown = capsys.readouterr().out.splitlines()[0]
    notebook = (REPO / "notebooks" / "results.ipynb").read_text()
    assert shown.endswith("results.ipynb") and Path(shown).read_text() == notebook


@pytest.mark.parametrize("argv", [["-h"], ["recipes", "list"], ["recipes", "--help"]])
def test_a_reader_that_leaves_ends_the_command_quietly(argv: list[str]) -> None:
    """``asc-kd -h | head -1``: the pipe is closed before asc-kd writes; no traceback, no
    "Exception ignored" at exit, exit code 1 as Python's docs advise. stdout is buffered, as in
    a shell (``PYTHONUNBUFFERED`` unset): the error comes when the output is flushed."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    read, write = os.pipe()
    os.close(read)  # the reader has left before the first write
    try:
        done = subprocess.run(
            [sys.executable, "-m", "asc_kd", *argv],
            stdout=write,
            stderr=subprocess.PIPE,
            cwd=REPO,
            env=env,
            timeout=60,
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr.decode()) == (1, "")
