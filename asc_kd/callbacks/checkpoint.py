"""``Checkpoint``: ModelCheckpoint whose ``last.ckpt`` really is the last epoch."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class Checkpoint(ModelCheckpoint):
    """Keep the best checkpoints by a metric and, every time they are considered, ``last.ckpt``.

    Lightning 2.6 writes ``last.ckpt`` only at a step where it also saved a new best, so once
    the monitored metric stops improving ``last.ckpt`` falls behind and ``--ckpt_path last``
    silently retrains epochs. This subclass saves it at every evaluation, once per step.
    """

    _last_saved_step: int = -1

    def _save_topk_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Any]) -> None:
        super()._save_topk_checkpoint(trainer, monitor_candidates)
        self._save_last_checkpoint(trainer, monitor_candidates)

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Any]) -> None:
        if not self.save_last or self._last_saved_step == trainer.global_step:
            return
        super()._save_last_checkpoint(trainer, monitor_candidates)
        self._last_saved_step = trainer.global_step
