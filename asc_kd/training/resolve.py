"""A fit's fully resolved configuration, made by the fit's own parser without running anything.

The pipeline resolves every run's configuration in its driver (recipes composed left to right,
then its overrides): a wrong key or value is refused before anything is submitted, the run's
identity is hashed from what the fit will really use (``asc_kd.runs.record``), and the job is
handed that configuration as one YAML file, which ``asc_kd.fit --config FILE`` reads back to
the same values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from asc_kd.core.io import atomic_write
from asc_kd.core.noise import silence
from asc_kd.data.datamodule import SceneDataModule
from asc_kd.recipes import expand_config_args
from asc_kd.tasks import ClassificationTask
from asc_kd.training.fit import AscKdCLI


class _ResolvingCLI(AscKdCLI):
    """``AscKdCLI`` that parses and stops: no seed set, no folder chosen, no class built."""

    def _set_seed(self) -> None:
        pass

    def before_instantiate_classes(self) -> None:
        pass

    def instantiate_classes(self) -> None:
        pass


def resolve_config(args: list[str]) -> dict[str, Any]:
    """The configuration ``asc_kd.fit ARGS`` would run, as plain data (``ConfigError`` for a
    wrong key or value, naming where it was given)."""
    silence()
    cli = _ResolvingCLI(
        ClassificationTask,
        SceneDataModule,
        subclass_mode_model=True,
        run=False,
        args=expand_config_args(list(args)),
        seed_everything_default=0,
        parser_kwargs={"allow_abbrev": False, "exit_on_error": False},
    )
    return json.loads(cli.parser.dump(cli.config, skip_unset=False, format="json"))


def write_config(config: dict[str, Any], path: Path) -> Path:
    """Write a resolved configuration as the YAML file a job is handed (``--config FILE``)."""

    with atomic_write(path) as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    return path
