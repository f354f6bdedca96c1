"""Quantize the reported student at the end of fitting, as the submission would be."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L

from asc_kd.deployment.quantize import Backend, int8_name, quantize_task
from asc_kd.tasks.restore import load_task

log = logging.getLogger(__name__)


class QuantizationExport(L.Callback):
    """At fit end: int8 PTQ of the reported checkpoint, artifact export, fp32 vs int8 evaluation.

    The reported checkpoint is the one ``CheckpointSelection`` selects (the last epoch by
    default). The int8 metrics and MEM go to the loggers as ``int8/...``; the artifact and its
    JSON report are written to ``out_dir`` (default: the checkpoint folder). Under DDP one
    process quantizes while the others wait, so every rank leaves ``fit`` together.

    Args:
        out_dir: where ``<run>.int8.pt`` and ``<run>.int8.json`` go (``<run>``: the fit's run
            name, ``<recipe>-seed<seed>``; see ``asc_kd.deployment.quantize.int8_name``).
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
        self.artifact: Path | None = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._export(trainer, pl_module)
        trainer.strategy.barrier("int8_export")

    def _export(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        checkpoint = trainer.checkpoint_callback
        selected = getattr(checkpoint, "selected_path", None) or getattr(checkpoint, "best_model_path", "")
        task = load_task(selected) if selected else pl_module
        folder = Path(self.out_dir or (Path(selected).parent if selected else trainer.default_root_dir))
        self.artifact = folder / int8_name(pl_module)  # the fit's run names the artifact
        self.report = quantize_task(
            task,
            trainer.datamodule,
            self.artifact,
            self.calibration_batches,
            self.backend,
            selected or None,
            progress=trainer.progress_bar_callback is not None,
        )
        if not selected:
            pl_module.to(trainer.strategy.root_device)  # quantize_task moved it to the CPU
        values = {f"int8/{k}": v for k, v in self.report["int8"].items() if k != "confusion"}
        values["int8/mem_bytes"] = self.report["mem_bytes"]
        for logger in trainer.loggers:
            logger.log_metrics(values, step=trainer.global_step)
        log.info(
            "int8 artifact %s: acc %.4f (fp32 %.4f)",
            self.artifact,
            self.report["int8"]["acc"],
            self.report["fp32"]["acc"],
        )
