"""``QuantizationExport``: the reported checkpoint quantized at fit end, logged, written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pytest
from fit_helpers import make_cpu_trainer
from lightning.pytorch.loggers import Logger

from asc_kd.callbacks import CheckpointSelection, QuantizationExport
from asc_kd.data.datamodule import TAU22DataModule
from asc_kd.data.tau import TAU22
from asc_kd.tasks import ClassificationTask


class MetricsRecorder(Logger):
    """Keeps every ``log_metrics`` call, so a test can see what a callback logged."""

    def __init__(self) -> None:
        super().__init__()
        self.logged: list[tuple[int | None, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "recorder"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.logged.append((step, dict(metrics)))


def _fit(tiny_root: Path, cache_dir: Path, folder: Path, callbacks: list[L.Callback], checkpoints: bool):
    """Four training steps of the debug classifier (fast_dev_run would drop the logger)."""
    L.seed_everything(0, verbose=False)
    recorder = MetricsRecorder()
    trainer = make_cpu_trainer(
        folder,
        max_epochs=1,
        limit_train_batches=4,
        limit_val_batches=1,
        log_every_n_steps=1,
        logger=recorder,
        enable_checkpointing=checkpoints,
        callbacks=callbacks,
    )
    datamodule = TAU22DataModule(
        root=str(tiny_root), cache_dir=str(cache_dir), num_workers=0, batch_size=16, eval_batch_size=64
    )
    task = ClassificationTask(model="debug", lr=1e-2, spec=TAU22)
    trainer.fit(task, datamodule=datamodule)
    return trainer, recorder


@dataclass
class FittedRun:
    trainer: L.Trainer
    recorder: MetricsRecorder
    export: QuantizationExport
    out_dir: Path


@pytest.fixture(scope="module")
def fitted(tiny_root: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FittedRun:
    folder = tmp_path_factory.mktemp("fit")
    export = QuantizationExport(out_dir=str(folder / "int8"), calibration_batches=2)
    callbacks = [CheckpointSelection(dirpath=str(folder / "checkpoints")), export]
    trainer, recorder = _fit(tiny_root, cache_dir, folder, callbacks, checkpoints=True)
    return FittedRun(trainer, recorder, export, folder / "int8")


def test_quantizes_the_reported_checkpoint(fitted: FittedRun) -> None:
    report = fitted.export.report
    assert report is not None
    assert (fitted.out_dir / "debug.int8.pt").is_file() and (fitted.out_dir / "debug.int8.json").is_file()
    last = fitted.trainer.checkpoint_callback.last_model_path
    assert report["source_checkpoint"] == last and Path(last).name == "last.ckpt"

    logged = [(step, m) for step, m in fitted.recorder.logged if "int8/acc" in m]
    assert len(logged) == 1
    step, metrics = logged[0]
    assert step == fitted.trainer.global_step == 4
    assert metrics["int8/acc"] == report["int8"]["acc"]
    assert metrics["int8/acc_unseen"] == report["int8"]["acc_unseen"]
    assert metrics["int8/mem_bytes"] == report["mem_bytes"]
    assert "int8/confusion" not in metrics


def test_without_checkpoints_the_fitted_module_is_quantized(
    tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    export = QuantizationExport(calibration_batches=1)
    trainer, recorder = _fit(tiny_root, cache_dir, tmp_path, [export], checkpoints=False)
    assert (tmp_path / "debug.int8.pt").is_file()
    assert export.report is not None and export.report["source_checkpoint"] is None
    assert any("int8/acc" in metrics for _, metrics in recorder.logged)
    assert trainer.lightning_module.device.type == "cpu"
