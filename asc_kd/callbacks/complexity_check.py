"""Log the model's NeSsi complexity at fit start and refuse students over the DCASE limits."""

from __future__ import annotations

import logging
import weakref

import lightning as L

from asc_kd.deployment.complexity import ParameterPrecision, check_limits, count_complexity
from asc_kd.tracking.loggers import log_wandb_table

log = logging.getLogger(__name__)


class ComplexityCheck(L.Callback):
    """Count MACs / params / MEM of ``pl_module.model`` on one clip and log them as hyperparameters.

    The input shape comes from the task's own front-end on one model window (DCASE: 1 s), so
    the count always matches what the model is trained on. With the W&B logger the numbers land in
    the run's config (``complexity/macs`` ...) and the per-layer table in ``complexity/layers``.

    Args:
        precision: parameter precision MEM is counted at (the submission's: int8).
        clip_seconds: clip length the MACs are counted for (default: the task's window).
        allow_over_limits: log but do not stop when the model is over 128 KB or 30 M MACs.
    """

    def __init__(
        self,
        precision: ParameterPrecision = "int8",
        clip_seconds: float | None = None,
        allow_over_limits: bool = False,
    ) -> None:
        self.precision = precision
        self.clip_seconds = clip_seconds
        self.allow_over_limits = allow_over_limits
        self.result = None
        self.input_shape: list[int] = []
        self._counted: weakref.ref[L.LightningModule] | None = None

    def check(self, pl_module: L.LightningModule) -> None:
        """Count ``pl_module.model`` and refuse it when over the limits (unless allowed).

        ``fit`` calls this before the trainer sets up, so a refused model leaves no logger
        folder or ``config.yaml`` behind; ``on_fit_start`` calls it for a bare ``Trainer``.
        """
        shape = pl_module.input_shape(self.clip_seconds)
        self.result = count_complexity(pl_module.model, shape, self.precision)
        self.input_shape = list(shape)
        if not self.allow_over_limits:
            name = f"model {pl_module.hparams.get('model', '?')!r}"
            check_limits(self.result, name, fix="; to train it anyway: --complexity.allow_over_limits true")
        self._counted = weakref.ref(pl_module)  # passed: fit start need not count it again

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._counted is None or self._counted() is not pl_module:
            self.check(pl_module)
        values = {f"complexity/{k}": v for k, v in self.result.summary().items()}
        values["complexity/input_shape"] = self.input_shape
        for logger in trainer.loggers:
            logger.log_hyperparams(values)
        log.info("complexity of model %r: %s", pl_module.hparams.get("model", "?"), self.result.summary())

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Here, not at fit start: a resumed fit knows its global step only now, and the table
        # belongs at that step of the run's history.
        if self.result is None:
            return
        columns = ["layer", "input_shape", "output_shape", "params", "macs"]
        rows = [
            [row.layer, str(tuple(row.input_shape)), str(tuple(row.output_shape)), row.params, row.macs]
            for row in self.result.layers
        ]
        log_wandb_table(trainer, "complexity/layers", columns, rows)
