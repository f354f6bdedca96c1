"""The training command line: ``AscKdCLI`` (LightningCLI) and ``fit``, which ``python -m
asc_kd.fit`` and the pipeline run.

Configs compose left to right and any key can be overridden on the command line. Model
classes, callbacks and loggers may be given by their short names (``DistillationTask``,
``Mixup``) or import paths (``mytask.TinyKD``). Every run gets a ``CheckpointSelection``
(``last.ckpt``, plus the best by a held-out metric when asked) and a ``ComplexityCheck``,
configured under ``checkpoint:`` and ``complexity:``. The dataset's spec (classes, devices and
groups), its rate, window length and front-end are linked into the task, so one recipe runs on
TAU22, TAU20 or your own folders.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from asc_kd.augmentations import FreqMixStyle, Mixup  # noqa: F401  (short names in YAML)
from asc_kd.callbacks import CheckpointSelection, ComplexityCheck, QuantizationExport  # noqa: F401
from asc_kd.data.datamodule import SceneDataModule
from asc_kd.loggers import AutoWandbLogger, LogConfigCallback  # noqa: F401
from asc_kd.tasks import ClassificationTask, DistillationTask  # noqa: F401


class AscKdCLI(LightningCLI):
    """LightningCLI with the checkpoint and complexity callbacks every run needs, and the links
    that carry the dataset's spec into the task."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(CheckpointSelection, "checkpoint")
        parser.add_lightning_class_args(ComplexityCheck, "complexity")
        # One value, two consumers: the cache resamples to the rate and cuts the windows the
        # front-end expects; the recipe names its front-end with the data, the task applies it.
        for key in ("sample_rate", "segment_seconds", "frontend", "frontend_kwargs"):
            parser.link_arguments(f"data.{key}", f"model.init_args.{key}")
        for key, attribute in (
            ("classes", "classes"),
            ("devices", "devices"),
            ("device_groups", "device_groups"),
        ):
            parser.link_arguments(
                "data", f"model.init_args.{key}", compute_fn=_spec_value(attribute), apply_on="instantiate"
            )
        parser.add_argument(
            "--name", type=str | None, default=None, help="run name (recipes set it; default: the model)"
        )
        parser.add_argument(
            "--ckpt_path", type=str | None, default=None, help="resume from a checkpoint ('last' or a path)"
        )
        parser.add_argument(
            "--test", type=bool, default=True, help="test the reported checkpoint after fitting"
        )

    def before_instantiate_classes(self) -> None:
        """When resuming, hand the checkpoint's W&B run id to the logger: same run, not a new one."""
        run_id = _resumed_wandb_run(self.config)
        logger = self.config.get("trainer.logger")
        if (
            run_id
            and isinstance(logger, Namespace)
            and str(logger.get("class_path", "")).endswith("WandbLogger")
        ):
            logger.init_args.id = run_id
            logger.init_args.resume = "allow"


def _spec_value(attribute: str):
    def value(datamodule: SceneDataModule):
        spec_value = getattr(datamodule.spec, attribute)
        return (
            {k: list(v) for k, v in spec_value.items()} if isinstance(spec_value, dict) else list(spec_value)
        )

    return value


def _resumed_wandb_run(config: Namespace) -> str | None:
    path = config.get("ckpt_path")
    if path == "last":
        dirpath = config.get("checkpoint.dirpath")
        path = str(Path(dirpath) / "last.ckpt") if dirpath else None
    if not path or not Path(path).is_file():
        return None
    from asc_kd.tasks.restore import read_checkpoint

    return read_checkpoint(path).get("asc_kd", {}).get("wandb_run_id")


def fit(args: list[str] | None = None, description: str | None = None) -> AscKdCLI:
    """Parse ``args`` (``sys.argv`` when None), fit, then test the reported checkpoint."""
    cli = AscKdCLI(
        ClassificationTask,
        SceneDataModule,
        subclass_mode_model=True,
        run=False,
        args=args,
        seed_everything_default=0,
        save_config_callback=LogConfigCallback,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"description": description or __doc__.split("\n\n")[0], "allow_abbrev": False},
    )
    seed = cli.config.get("seed_everything")
    cli.model.run_info = {"recipe": cli.config.get("name") or str(cli.model.hparams.model), "seed": seed}
    try:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config["ckpt_path"])
        if cli.config["test"]:
            selected = getattr(cli.trainer.checkpoint_callback, "selected_path", None)
            cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=selected or None)
    finally:
        _finish_wandb()  # otherwise the next fit in this process would log into this run
    return cli


def _finish_wandb() -> None:
    if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
        sys.modules["wandb"].finish()
