"""The data options (``--data.*``) of every command that reads a dataset, and their one builder.

``python -m asc_kd.fit`` declares the options through LightningCLI: ``SceneDataModule``'s init
arguments under ``data.``. ``add_datamodule_arguments`` adds the same declaration to a command's
jsonargparse parser (``check``, ``logits``, ``quantize``, ``predict``, ``pipeline``, ``bench``), and
``build_datamodule`` instantiates from what the command was given (``given_data``), so every
command reads the clips and splits a fit reads: ``--data.root DATA --data.layout folders
--data.validation holdout ...`` mean the same thing everywhere, typed and checked by the same
signature. A command keeps its own defaults (``num_workers`` 0, say) as the builder's
``defaults``, shown in its ``--help``.

The declaration is the class's, so a command's parser imports ``asc_kd.data.datamodule`` (torch
and Lightning): ``--help`` of a command with data options takes the seconds of that import. A
second declaration that spared them (the class's arguments read from its source) would be one
more thing to keep equal.

The commands on a fitted model (``logits``, ``quantize``, ``predict``) read their data as its fit
did: ``fit_defaults`` turns the options the fit recorded (``FIT_OPTIONS``, read by
``asc_kd.tasks.restore.fit_data_options``) into their defaults, so ``--data.root`` alone reads
the fit's clips; a given option wins, and one that contradicts the record is named.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asc_kd.core.errors import ConfigError

if TYPE_CHECKING:
    from jsonargparse import ArgumentParser
    from lightning.pytorch.cli import LightningArgumentParser

    from asc_kd.data.datamodule import SceneDataModule

log = logging.getLogger(__name__)

_PREFIX = "--data."

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

#: The data options a fit's record hands on to the commands on its model as their defaults: the
#: clips and splits it read (``CLIP_OPTIONS``), the file of its held-out split, and its cache.
#: Its root is recorded too, but only compared: a command is always given its data's root (a
#: checkpoint travels; its fit's root may not be there). Training inputs (teacher logits,
#: augmentations, the crop) and loader sizes stay each command's own.
FIT_OPTIONS = (*CLIP_OPTIONS, "holdout_file", "cache_dir", "use_cache")

#: The clip options the model itself fixes: its front-end's rate and the window it reads. Another
#: value would feed it clips it cannot read as it was trained to, so a command refuses it; another
#: value of any other clip option (another split file or seed, clip length, layout, root) reads
#: other clips or splits, a choice a command makes with a warning.
MODEL_OPTIONS = ("sample_rate", "segment_seconds")

_MODEL_READS = {
    "sample_rate": "its front-end reads audio at {} Hz",
    "segment_seconds": "it reads windows of {} s",
}

#: Data options that are paths, compared as the files they name.
_PATH_OPTIONS = ("root", "train_split_file")


def data_values(given: GivenData, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every data option's value (``{"layout": "auto", ...}``) that ``given`` and ``defaults``
    give, over the fit's defaults, without building the DataModule."""
    _, config = _config(given, defaults)
    return {key.removeprefix("data."): value for key, value in config.items() if key.startswith("data.")}


def recorded_options(hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """The options of a DataModule's init arguments (as a checkpoint, ``config.yaml`` or an int8
    artifact keeps them) that a fit hands on: its root and ``FIT_OPTIONS``."""
    return {key: hyperparameters[key] for key in ("root", *FIT_OPTIONS) if key in hyperparameters}


def fit_defaults(given: GivenData, records: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The defaults of a command on fitted models: the data options their fits recorded.

    ``records`` maps each model's file to what its fit recorded (``recorded_options``; empty when
    nothing was). Options in ``given`` win; each typed clip option (or root) that differs from a
    record is named in one line: a ``ConfigError`` for ``MODEL_OPTIONS``, a warning for the rest.
    Models whose records disagree on a clip option that ``given`` leaves out are refused, naming
    both; their held-out file and cache are the first model's.
    """
    records = {source: record for source, record in records.items() if record}
    typed = [key for key in ("root", *CLIP_OPTIONS) if gives(given, key)]
    for key in typed:
        for source, record in records.items():
            if key in record and not _same(key, given.values[key], record[key]):
                _contradiction(key, given.values[key], record[key], source)
    defaults: dict[str, Any] = {}
    for key in FIT_OPTIONS:
        fitted = {source: record[key] for source, record in records.items() if key in record}
        if not fitted or gives(given, key):
            continue
        (first, value), *others = fitted.items()
        other = next(((s, v) for s, v in others if not _same(key, v, value)), None)
        if other is not None and key in CLIP_OPTIONS:
            _disagreement(key, (first, value), other)
        defaults[key] = value
    return defaults


def _same(key: str, a: Any, b: Any) -> bool:
    if key in _PATH_OPTIONS and a is not None and b is not None:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    return bool(a == b)


def _contradiction(key: str, typed: Any, recorded: Any, source: str) -> None:
    """Name a typed option that differs from what ``source``'s fit recorded: refuse one the
    model fixes, warn of any other."""
    if key in MODEL_OPTIONS:
        raise ConfigError(
            f"--data.{key} {_shown(typed)} contradicts {source}: {_MODEL_READS[key].format(recorded)}; "
            f"leave --data.{key} out (it defaults to the model's)"
        )
    if key == "root":
        log.warning("%s was fit on the data at %s; reading %s (--data.root)", source, recorded, typed)
        return
    log.warning(
        "--data.%s %s differs from the %s that %s was fit with: the model is scored on other "
        "clips or splits than its fit read",
        key,
        _shown(typed),
        _shown(recorded),
        source,
    )


def _disagreement(key: str, first: tuple[str, Any], other: tuple[str, Any]) -> None:
    """Refuse models whose fits read other clips, naming the option and both values."""
    (a, value), (b, other_value) = first, other
    fits = f"{a} was fit with --data.{key} {_shown(value)}, {b} with {_shown(other_value)}"
    if key in MODEL_OPTIONS:
        raise ConfigError(f"{fits}: their models read other clips; run them apart")
    raise ConfigError(f"{fits}; give --data.{key} to choose the clips they are run on")


def data_parser(defaults: Mapping[str, Any] | None = None) -> LightningArgumentParser:
    """The fit's data options (``SceneDataModule``'s signature under ``data.``, added as
    LightningCLI adds its DataModule), with a command's ``defaults`` (``{"num_workers": 0}``)."""
    from lightning.pytorch.cli import LightningArgumentParser

    from asc_kd.data.datamodule import SceneDataModule

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


@dataclass(frozen=True)
class GivenData:
    """The data options a command was given (on its command line or in its ``--config``), typed
    by its parser (``given_data``), by key (``{"root": "DATA", "batch_size": 16}``): the options
    a fit's record or a stage's own defaults do not replace (``gives``). Library code gives typed
    values too (``GivenData({"root": str(root), "clip_seconds": 2.0})``); text is read only by a
    command's parser, whose error hook names a bad value in one line."""

    values: Mapping[str, Any] = field(default_factory=dict)


def add_datamodule_arguments(
    parser: ArgumentParser, defaults: Mapping[str, Any] | None = None, required: Iterable[str] = ()
) -> None:
    """Add ``SceneDataModule``'s arguments under ``data.`` to a command's jsonargparse parser, as
    LightningCLI adds the fit's: one declaration, the class's signature and docstring.

    ``defaults`` are the command's own (shown in ``--help``; the command hands them to the
    builder); ``required`` names options the command cannot do without (``root``).
    """
    from asc_kd.data.datamodule import SceneDataModule

    parser.add_class_arguments(SceneDataModule, "data", fail_untyped=False, sub_configs=True)
    if defaults:
        unknown = sorted(set(defaults) - set(data_option_names(parser)))
        if unknown:
            raise ValueError(f"defaults {unknown} are not SceneDataModule arguments")
        parser.set_defaults({f"data.{key}": value for key, value in defaults.items()})
    actions = parser._option_string_actions
    for key in defaults or ():  # the command's default replaces the one the docstring explains
        action = actions[f"{_PREFIX}{key}"]
        action.help = re.sub(r"\s*\(default[^()]*(\([^()]*\)[^()]*)*\)", "", action.help or "")
    for key in required:
        actions[f"{_PREFIX}{key}"].required = True


def given_data(
    parser: ArgumentParser, argv: Sequence[str] | None, subcommand: str | None = None
) -> GivenData:
    """The data options ``argv`` gives a parser with ``add_datamodule_arguments`` (parsed without
    defaults, so that a default is never taken for a choice: ``fit_defaults`` fills those), or
    its ``subcommand``'s parser (``asc-kd bench data``)."""
    given = parser.parse_args(argv, defaults=False)
    if subcommand is not None:
        given = given.get(subcommand)
    data = given.get("data") if given is not None else None
    return GivenData(data.as_dict() if data is not None else {})


def build_datamodule(
    given: GivenData, defaults: Mapping[str, Any] | None = None, **overrides: Any
) -> SceneDataModule:
    """The DataModule that ``asc_kd.fit`` would build from the data options ``given``.

    ``defaults`` replace the fit's where ``given`` has no value (over a namespace's own);
    ``overrides`` replace any value (a benchmark's variants).
    """
    parser, config = _config(given, defaults)
    for key, value in overrides.items():
        config[f"data.{key}"] = value
    return parser.instantiate(config).data


def _config(given: GivenData, defaults: Mapping[str, Any] | None) -> tuple[LightningArgumentParser, Any]:
    """The fit's data parser (with ``defaults`` over a namespace's own) and its defaults with the
    values ``given`` over them."""
    parser = data_parser(defaults)
    config = parser.get_defaults()
    for key, value in given.values.items():
        config[f"data.{key}"] = value
    return parser, config


def gives(given: GivenData, key: str) -> bool:
    """Whether ``given`` has ``--data.<key>`` (rather than leaving it to a default)."""
    return key in given.values


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)
