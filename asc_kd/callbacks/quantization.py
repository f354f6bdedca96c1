"""Quantize the best student at the end of fitting, as the submission would be."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L

from asc_kd.quantization import Backend

log = logging.getLogger(__name__)


class QuantizationExport(L.Callback):
    """At fit end: int8 PTQ of the best checkpoint, artifact export, fp32 vs int8 evaluation.

    The int8 metrics and MEM go to the loggers as ``int8/...``; the artifact and its JSON
    report are written to ``out_dir`` (default: the checkpoint folder).

    Args:
        out_dir: where ``<model>.int8.pt`` and ``<model>.int8.json`` go.
        calibration_batches: training batches used to calibrate activation ranges.
        backend: quantized engine (``x86`` on x86 CPUs, ``qnnpack`` on ARM).
    """

    def __init__(
        self, out_dir: str | None = None, calibration_batches: int = 20, backend: Backend = "x86"
    ) -> None:
        self.out_dir = out_dir
        self.calibration_batches = calibration_batches
        self.backend = backend
        self.report: dict | None = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from asc_kd.checkpoints import load_task
        from asc_kd.quantize import quantize_task

        if not trainer.is_global_zero:
            return
        checkpoint = trainer.checkpoint_callback
        best = checkpoint.best_model_path if checkpoint is not None else ""
        task = load_task(best) if best else pl_module
        folder = Path(self.out_dir or (Path(best).parent if best else trainer.default_root_dir))
        out = folder / f"{task.hparams.model}.int8.pt"
        self.report = quantize_task(
            task, trainer.datamodule, out, self.calibration_batches, self.backend, best or None
        )
        if not best:
            pl_module.to(trainer.strategy.root_device)  # quantize_task moved it to the CPU
        values = {f"int8/{k}": v for k, v in self.report["int8"].items() if k != "confusion"}
        values["int8/mem_bytes"] = self.report["mem_bytes"]
        for logger in trainer.loggers:
            logger.log_metrics(values, step=trainer.global_step)
        log.info(
            "int8 artifact %s: acc %.4f (fp32 %.4f)",
            out,
            self.report["int8"]["acc"],
            self.report["fp32"]["acc"],
        )
