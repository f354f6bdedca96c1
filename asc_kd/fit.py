"""``python -m asc_kd.fit``: train a task from YAML configs, then test the best checkpoint.

    python -m asc_kd.fit --config experiments/students/kd.yaml \\
        --config experiments/students/system1.yaml --trainer.max_epochs 10

Configs compose left to right and any key can be overridden on the command line
(``--help`` lists every option). Model classes, callbacks and loggers may be given by their
short names (``DistillationTask``, ``Mixup``). Every run gets a ``ModelCheckpoint`` (best by
``val/acc``, plus ``last.ckpt`` for ``--ckpt_path last``) and the ``Complexity`` callback,
configured under ``checkpoint:`` and ``complexity:``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from asc_kd.callbacks import Checkpoint, Complexity, FreqMixStyle, Mixup  # noqa: F401  (short names in YAML)
from asc_kd.data import TAU22DataModule
from asc_kd.loggers import AutoWandbLogger, LogConfigCallback  # noqa: F401
from asc_kd.tasks import ClassificationTask, DistillationTask  # noqa: F401


class AscKdCLI(LightningCLI):
    """LightningCLI with the checkpoint and complexity callbacks every run needs."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(Checkpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-{epoch}",
                "checkpoint.enable_version_counter": False,  # a resumed fit overwrites last.ckpt
            }
        )
        parser.add_lightning_class_args(Complexity, "complexity")
        # One value, two consumers: the cache resamples to it, the front-end expects it.
        parser.link_arguments("data.sample_rate", "model.init_args.sample_rate")
        parser.add_argument(
            "--ckpt_path", type=str | None, default=None, help="resume from a checkpoint ('last' or a path)"
        )
        parser.add_argument("--test", type=bool, default=True, help="test the best checkpoint after fitting")

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


def _resumed_wandb_run(config: Namespace) -> str | None:
    path = config.get("ckpt_path")
    if path == "last":
        dirpath = config.get("checkpoint.dirpath")
        path = str(Path(dirpath) / "last.ckpt") if dirpath else None
    if not path or not Path(path).is_file():
        return None
    from asc_kd.checkpoints import read_checkpoint

    return read_checkpoint(path).get("asc_kd", {}).get("wandb_run_id")


def main(args: list[str] | None = None) -> AscKdCLI:
    """Fit, then test on the development-test split with the best checkpoint."""
    cli = AscKdCLI(
        ClassificationTask,
        TAU22DataModule,
        subclass_mode_model=True,
        run=False,
        args=args,
        seed_everything_default=0,
        save_config_callback=LogConfigCallback,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"description": __doc__.split("\n\n")[0], "allow_abbrev": False},
    )
    # The resolved CLI config is the run config (LogConfigCallback); Lightning's own logging of
    # the same hyperparameters would duplicate it under clashing keys.
    cli.model._log_hyperparams = False
    cli.datamodule._log_hyperparams = False
    try:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config["ckpt_path"])
        if cli.config["test"]:
            best = cli.trainer.checkpoint_callback
            ckpt = "best" if best is not None and best.best_model_path else None
            cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt)
    finally:
        _finish_wandb()  # otherwise the next fit in this process would log into this run
    return cli


def _finish_wandb() -> None:
    if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
        sys.modules["wandb"].finish()


if __name__ == "__main__":
    main()
    sys.exit(0)
