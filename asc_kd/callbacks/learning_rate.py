"""``LearningRateLog``: the learning rate as a logged curve, in every run that has a logger.

The student recipes warm up over 100 epochs, so in a short run the learning rate is still tiny;
without the curve nothing shows it.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor


class LearningRateLog(LearningRateMonitor):
    """Lightning's ``LearningRateMonitor`` (``lr-<optimizer>`` per step), silent without a logger
    instead of refusing to run, and logging at each epoch's first step too: an epoch shorter
    than ``log_every_n_steps`` would otherwise show no learning rate at all."""

    def __init__(self, logging_interval: str | None = "step", **kwargs: Any) -> None:
        super().__init__(logging_interval=logging_interval, **kwargs)
        self._active = True

    def on_train_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self._active = bool(trainer.loggers)
        if self._active:
            super().on_train_start(trainer, *args, **kwargs)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if not self._active:
            return
        if (
            batch_idx == 0
            and self.logging_interval == "step"
            and not trainer._logger_connector.should_update_logs
        ):
            stats = self._extract_stats(trainer, "any")
            for logger in trainer.loggers:
                logger.log_metrics(stats, step=trainer.fit_loop.epoch_loop._batches_that_stepped)
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self._active:
            super().on_train_epoch_start(trainer, *args, **kwargs)
