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

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from asc_kd.callbacks import Complexity, FreqMixStyle, Mixup  # noqa: F401  (short names in YAML)
from asc_kd.data import TAU22DataModule
from asc_kd.loggers import AutoWandbLogger, LogConfigCallback  # noqa: F401
from asc_kd.tasks import ClassificationTask, DistillationTask  # noqa: F401


class AscKdCLI(LightningCLI):
    """LightningCLI with the checkpoint and complexity callbacks every run needs."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-{epoch}",
            }
        )
        parser.add_lightning_class_args(Complexity, "complexity")
        parser.add_argument(
            "--ckpt_path", type=str | None, default=None, help="resume from a checkpoint ('last' or a path)"
        )
        parser.add_argument("--test", type=bool, default=True, help="test the best checkpoint after fitting")


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
        parser_kwargs={"description": __doc__.split("\n\n")[0]},
    )
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config["ckpt_path"])
    if cli.config["test"]:
        best = cli.trainer.checkpoint_callback
        ckpt = "best" if best is not None and best.best_model_path else None
        cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt)
    return cli


if __name__ == "__main__":
    main()
    sys.exit(0)
