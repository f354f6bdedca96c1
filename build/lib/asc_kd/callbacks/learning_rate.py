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
    instead of refusing to run."""

    def __init__(self, logging_interval: str | None = "step", **kwargs: Any) -> None:
        super().__init__(logging_interval=logging_interval, **kwargs)
        self._active = True

    def on_train_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self._active = bool(trainer.loggers)
        if self._active:
            super().on_train_start(trainer, *args, **kwargs)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self._active:
            super().on_train_batch_start(trainer, *args, **kwargs)

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self._active:
            super().on_train_epoch_start(trainer, *args, **kwargs)
