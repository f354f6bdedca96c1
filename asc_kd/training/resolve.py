"""A fit's fully resolved configuration, made by the fit's own parser without running anything.

The pipeline resolves every run's configuration in its driver (recipes composed left to right,
then its settings: typed values by key, not a command line of its making): a wrong key or value
is refused before anything is submitted, the run's identity is hashed from what the fit will
really use (``asc_kd.runs.record``), and the job is handed that configuration as one YAML file,
which ``asc_kd.fit --config FILE`` reads back to the same values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentError, Namespace
from lightning.pytorch.cli import LightningArgumentParser

from asc_kd.core.io import atomic_write
from asc_kd.core.noise import silence
from asc_kd.data.datamodule import SceneDataModule
from asc_kd.recipes import expand_config_args
from asc_kd.tasks import ClassificationTask
from asc_kd.training.fit import AscKdCLI, refusal

#: Settings of a fit by dotted key (``{"data.root": "DATA", "trainer.max_epochs": 3}``), typed.
Settings = Mapping[str, Any]


class _ResolvingCLI(AscKdCLI):
    """``AscKdCLI`` that parses and stops: no seed set, no folder chosen, no class built."""

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Compose ``args`` (a ``_Request``): the recipes, then the settings, then the command
        line's options, then the last settings, each over the one before."""
        request: _Request = args
        super().parse_arguments(
            parser, [arg for config in request.configs for arg in ("--config", str(config))]
        )
        self.config = parser.parse_object(_namespace(request.settings), namespace=self.config)
        if request.command_line:
            given = list(request.command_line)
            try:
                self.config = parser.parse_args(given, namespace=self.config)
            except ArgumentError as err:
                raise refusal(err, parser, given, self.config) from None
        self.config = parser.parse_object(_namespace(request.last), namespace=self.config)

    def _set_seed(self) -> None:
        pass

    def before_instantiate_classes(self) -> None:
        pass

    def instantiate_classes(self) -> None:
        pass


@dataclass(frozen=True)
class _Request:
    configs: Sequence[str | Path]
    settings: Settings
    command_line: Sequence[str]
    last: Settings


def _namespace(settings: Settings) -> Namespace:
    namespace = Namespace()
    for key, value in settings.items():
        namespace[key] = value
    return namespace


def resolve_config(
    configs: Sequence[str | Path],
    settings: Settings | None = None,
    command_line: Sequence[str] = (),
    last: Settings | None = None,
) -> dict[str, Any]:
    """The configuration ``asc_kd.fit`` would run from the recipe files ``configs`` (composed
    left to right), then ``settings`` (typed values by dotted key), then the options a
    user typed for every fit (``command_line``), then ``last``, as plain data: a ``ConfigError``
    for a wrong key or value, naming where it was given."""
    silence()
    cli = _ResolvingCLI(
        ClassificationTask,
        SceneDataModule,
        subclass_mode_model=True,
        run=False,
        args=_Request(  # type: ignore[arg-type]  # parse_arguments above reads it
            [str(config) for config in configs],
            settings or {},
            expand_config_args(list(command_line)),
            last or {},
        ),
        seed_everything_default=0,
        parser_kwargs={"allow_abbrev": False, "exit_on_error": False},
    )
    return json.loads(cli.parser.dump(cli.config, skip_unset=False, format="json"))


def write_config(config: dict[str, Any], path: Path) -> Path:
    """Write a resolved configuration as the YAML file a job is handed (``--config FILE``)."""

    with atomic_write(path) as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    return path
