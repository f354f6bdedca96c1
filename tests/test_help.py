"""Every command's ``--help`` explains each option and shows its default."""

from __future__ import annotations

import argparse
import importlib

import pytest

from asc_kd.core.command_line import HelpFormatter

COMMANDS = [
    "asc_kd.bench",
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
    return [
        action
        for action in parser._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction)
    ]


@pytest.mark.parametrize("module", COMMANDS)
def test_every_option_has_a_description_and_its_default(module: str) -> None:
    for name, parser in _parsers(importlib.import_module(module).build_parser(), module):
        assert parser.formatter_class is HelpFormatter, name
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
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.endswith("(the data options are the fit's: --data.cache_dir, --data.layout)"), line
