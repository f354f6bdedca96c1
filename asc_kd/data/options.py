"""The data options (``--data.*``) of every command that reads a dataset, and their one builder.

``python -m asc_kd.fit`` declares the options through LightningCLI: ``SceneDataModule``'s init
arguments under ``data.``. ``data_parser`` is that declaration, and ``build_datamodule`` parses
and instantiates with it, so ``logits``, ``quantize``, ``check``, ``predict``, the bench, the
pipeline and its stages read the clips and splits a fit reads: ``--data.root DATA --data.layout
folders --data.validation holdout ...`` mean the same thing everywhere. A command keeps its own
defaults (``num_workers`` 0, say) as the builder's ``defaults``, not as options of its own.

``add_data_arguments`` lists the same options in an argparse command's ``--help`` with the
command's defaults; their values are typed and checked by ``data_parser`` when the DataModule is
built, and a bad one ends the command with one line that names the option and the value.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser

from asc_kd.core.command_line import given_on_command_line
from asc_kd.core.errors import ConfigError
from asc_kd.data.datamodule import SceneDataModule

_PREFIX = "--data."
#: The argparse namespace attribute where ``add_data_arguments`` keeps a command's defaults.
_DEFAULTS_KEY = "data_defaults"


#: The data options that choose which clips, splits and windows a DataModule serves. Where
#: several commands (or a pipeline's fits and stages) must read the same data, these must agree.
CLIP_OPTIONS = (
    "layout",
    "train_split_file",
    "sample_rate",
    "segment_seconds",
    "clip_seconds",
    "test_fraction",
    "recording_pattern",
    "validation",
    "holdout_fraction",
    "seed",
)


def data_values(args: DataArgs = (), defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every data option's value (``{"layout": "auto", ...}``) that ``args`` and ``defaults``
    give, typed as the fit types it, without building the DataModule."""
    _, config = _parse(args, defaults)
    return {key.removeprefix("data."): value for key, value in config.items() if key.startswith("data.")}


def data_parser(defaults: Mapping[str, Any] | None = None) -> LightningArgumentParser:
    """The fit's data options (``SceneDataModule``'s signature under ``data.``, added as
    LightningCLI adds its DataModule), with a command's ``defaults`` (``{"num_workers": 0}``)."""
    parser = LightningArgumentParser(exit_on_error=False)
    parser.add_lightning_class_args(SceneDataModule, "data")
    if defaults:
        unknown = sorted(set(defaults) - set(data_option_names(parser)))
        if unknown:
            raise ValueError(f"defaults {unknown} are not SceneDataModule arguments")
        parser.set_defaults({f"data.{key}": value for key, value in defaults.items()})
    return parser


def data_option_names(parser: argparse.ArgumentParser) -> list[str]:
    """The ``data.*`` keys (``root``, ``layout``, ...) a parser accepts, in its order."""
    return [
        option.removeprefix(_PREFIX)
        for action in parser._actions
        for option in action.option_strings
        if option.startswith(_PREFIX)
    ]


#: The data options of a command: its command line (``--data.*`` are read, the rest ignored) or
#: the namespace of a parser given ``add_data_arguments`` (which carries the command's defaults).
DataArgs = Sequence[str] | argparse.Namespace


def build_datamodule(
    args: DataArgs = (), defaults: Mapping[str, Any] | None = None, **overrides: Any
) -> SceneDataModule:
    """The DataModule that ``asc_kd.fit`` would build from the ``--data.*`` options in ``args``.

    ``defaults`` replace the fit's where ``args`` gives no value (over a namespace's own);
    ``overrides`` replace any value (a benchmark's variants). A value that is not of its
    option's type raises a one-line ``ConfigError`` naming the option and the value.
    """
    parser, config = _parse(args, defaults)
    for key, value in overrides.items():
        config[f"data.{key}"] = value
    return parser.instantiate(config).data


def _parse(args: DataArgs, defaults: Mapping[str, Any] | None) -> tuple[LightningArgumentParser, Any]:
    """The fit's data parser (with ``defaults`` over a namespace's own) and what it makes of the
    ``--data.*`` options in ``args``; a mistyped value is a one-line ``ConfigError``."""
    if isinstance(args, argparse.Namespace):
        defaults = {**getattr(args, _DEFAULTS_KEY, {}), **(defaults or {})}
    parser = data_parser(defaults)
    try:
        return parser, parser.parse_args(given_data_options(args))
    except argparse.ArgumentError as err:
        raise ConfigError(_one_line(str(err))) from err


def gives(args: DataArgs, key: str) -> bool:
    """Whether ``args`` give ``--data.<key>`` (rather than leaving it to a default)."""
    return given_on_command_line(given_data_options(args), f"{_PREFIX}{key}")


def add_data_arguments(
    parser: argparse.ArgumentParser,
    defaults: Mapping[str, Any] | None = None,
    required: Iterable[str] = (),
) -> None:
    """Add the fit's ``--data.*`` options to an argparse command, as one help group.

    ``defaults`` are the command's own (shown in ``--help`` and used by ``build_datamodule(args)``);
    ``required`` names options the command cannot do without (``root``).
    """
    defaults = dict(defaults or {})
    required = set(required)
    source = data_parser(defaults)
    group = parser.add_argument_group(
        "data options", "the --data.* options of python -m asc_kd.fit (SceneDataModule's arguments)"
    )
    for action in source._actions:
        option = next((o for o in action.option_strings if o.startswith(_PREFIX)), None)
        if option is None:
            continue
        key = option.removeprefix(_PREFIX)
        text = " ".join((action.help or "").replace("``", "").split())
        if key in defaults:  # the command's default replaces the one the docstring explains
            text = re.sub(r"\s*\(default[^()]*\)", "", text) + f" (default: {_shown(defaults[key])})"
        elif "default" not in text and key not in required:
            text += f" (default: {_shown(action.default)})"
        choices = f"{{{','.join(map(str, action.choices))}}}" if action.choices else None
        group.add_argument(
            option,
            dest=f"data.{key}",
            default=argparse.SUPPRESS,
            required=key in required,
            metavar=choices or action.metavar or key.upper(),
            help=text.replace("%", "%%"),
        )
    parser.set_defaults(**{_DEFAULTS_KEY: defaults})


def given_data_options(args: DataArgs) -> list[str]:
    """The ``--data.*`` options ``args`` give (``--data.k v`` or ``--data.k=v``), as a command line."""
    given: list[str] = []
    if isinstance(args, argparse.Namespace):
        for key, value in given_data_values(args).items():
            given += [f"{_PREFIX}{key}", value]
        return given
    for i, arg in enumerate(args):
        if arg.startswith(_PREFIX):
            given += [arg] if "=" in arg else [arg, *args[i + 1 : i + 2]]
    return given


def given_data_values(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--data.*`` options given to a parser with ``add_data_arguments``, by key
    (``{"root": "DATA"}``), as typed: a command that hands them on (the pipeline) keeps them whole."""
    return {
        dest.removeprefix("data."): value for dest, value in vars(args).items() if dest.startswith("data.")
    }


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


def _one_line(message: str) -> str:
    """jsonargparse's ``Parser key "data.x":\\n  Expected ...`` as ``--data.x: expected ...``."""
    text = " ".join(message.split())
    if text.startswith('Parser key "data.'):
        key, _, rest = text.removeprefix('Parser key "').partition('":')
        text = f"--{key}: {rest.strip()}"
    return text
