"""``python -m asc_kd.quantize`` and the ``QuantizationExport`` callback on the tiny scenes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger

from asc_kd.callbacks.quantization import QuantizationExport
from asc_kd.checkpoints import CheckpointError, load_task
from asc_kd.data.datamodule import TAU22DataModule
from asc_kd.data.tau22 import DEVICES, SCENES, read_split
from asc_kd.quantization import load_artifact
from asc_kd.quantize import main, quantize_task
from asc_kd.tasks import ClassificationTask

#: DebugCNN's parameters by hand: conv 1->8 3x3 and conv 8->16 3x3, each with a BN, linear 16->10.
DEBUG_PARAMS = (1 * 8 * 9 + 2 * 8) + (8 * 16 * 9 + 2 * 16) + (16 * 10 + 10)


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


def _datamodule(tiny_root: Path, cache_dir: Path) -> TAU22DataModule:
    return TAU22DataModule(
        root=str(tiny_root), cache_dir=str(cache_dir), num_workers=0, batch_size=16, eval_batch_size=64
    )


def _fit(
    tiny_root: Path, cache_dir: Path, folder: Path, callbacks: list[L.Callback], checkpoints: bool
) -> tuple[L.Trainer, MetricsRecorder]:
    """Four training steps of the debug classifier (fast_dev_run would drop the logger)."""
    L.seed_everything(0, verbose=False)
    recorder = MetricsRecorder()
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=4,
        limit_val_batches=1,
        log_every_n_steps=1,
        logger=recorder,
        enable_checkpointing=checkpoints,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=folder,
        callbacks=callbacks,
    )
    trainer.fit(ClassificationTask(model="debug", lr=1e-2), datamodule=_datamodule(tiny_root, cache_dir))
    return trainer, recorder


@dataclass
class FittedRun:
    """A fit whose best checkpoint ``QuantizationExport`` quantized at fit end."""

    trainer: L.Trainer
    recorder: MetricsRecorder
    export: QuantizationExport
    checkpoint: Path
    out_dir: Path


@pytest.fixture(scope="module")
def fitted(tiny_root: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FittedRun:
    folder = tmp_path_factory.mktemp("fit")
    export = QuantizationExport(out_dir=str(folder / "int8"), calibration_batches=2)
    callbacks = [ModelCheckpoint(dirpath=folder / "checkpoints"), export]
    trainer, recorder = _fit(tiny_root, cache_dir, folder, callbacks, checkpoints=True)
    checkpoint = Path(trainer.checkpoint_callback.best_model_path)
    return FittedRun(trainer, recorder, export, checkpoint, folder / "int8")


# -- quantize_task ------------------------------------------------------------------------------


def test_quantize_task_reports_fp32_and_int8_alike(
    fitted: FittedRun, tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "debug.int8.pt"
    report = quantize_task(
        load_task(fitted.checkpoint),
        _datamodule(tiny_root, cache_dir),
        out,
        calibration_batches=2,
        source=str(fitted.checkpoint),
    )
    fp32, int8 = report["fp32"], report["int8"]
    assert fp32.keys() == int8.keys()
    per_device = {f"acc_device_{device}" for device in DEVICES}
    per_class = {f"acc_class_{scene}" for scene in SCENES}
    groups = {"acc_real", "acc_seen", "acc_unseen"}
    assert {"acc", "macro_acc", "log_loss", "confusion"} | per_device | per_class | groups <= fp32.keys()
    n_test = len(read_split(tiny_root, "test"))
    for metrics in (fp32, int8):
        confusion = torch.tensor(metrics["confusion"])
        assert confusion.shape == (len(SCENES), len(SCENES))
        assert confusion.sum().item() == n_test
        assert metrics["acc"] == pytest.approx(confusion.diagonal().sum().item() / n_test)
    gap = int8["acc"] - fp32["acc"]
    print(f"tiny data: fp32 acc {fp32['acc']:.4f}, int8 acc {int8['acc']:.4f}, gap {gap:+.4f}")
    assert abs(gap) <= 0.05
    assert abs(int8["log_loss"] - fp32["log_loss"]) <= 0.05

    assert report["artifact"] == str(out) and out.is_file()
    # Exact int8 counts are in test_quantization.py (int8_memory counts the linear layer twice).
    assert report["mem_bytes"] == report["int8_weights"] + 4 * report["fp32_biases"]
    assert report["params"] == DEBUG_PARAMS
    assert report["macs"] > 0
    written = json.loads(out.with_suffix(".json").read_text())
    assert written == json.loads(json.dumps(report))

    _, meta = load_artifact(out)
    for key in ("mem_bytes", "params", "macs", "int8_weights", "fp32_biases"):
        assert meta[key] == report[key], key
    assert meta["classes"] == list(SCENES)
    assert meta["model"] == "debug"
    assert meta["source_checkpoint"] == str(fitted.checkpoint)
    assert meta["sample_rate"] == 32_000


# -- the command line ---------------------------------------------------------------------------


def test_cli_prints_fp32_and_int8(
    fitted: FittedRun, tiny_root: Path, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "x.int8.pt"
    data = ["--root", str(tiny_root), "--cache-dir", str(cache_dir)]
    assert main([str(fitted.checkpoint), *data, "--out", str(out), "--calibration-batches", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.match(r"fp32: acc \d\.\d{4}  log loss \d+\.\d{4}  real .* seen .* unseen \d\.\d{4}$", lines[0])
    assert re.match(r"int8: acc \d\.\d{4}  log loss \d+\.\d{4}  real .* seen .* unseen \d\.\d{4}$", lines[1])
    report = json.loads((tmp_path / "x.int8.json").read_text())
    assert lines[2].startswith(f"MEM {report['mem_bytes']:,} bytes ({report['int8_weights']:,} int8 weights")
    assert lines[2].endswith(f"artifact {out}")
    assert out.is_file()
    assert report["calibration_batches"] == 2
    assert report["source_checkpoint"] == str(fitted.checkpoint)


def test_cli_missing_checkpoint(tiny_root: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "best.ckpt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        main([str(missing), "--root", str(tiny_root), "--out", str(tmp_path / "x.int8.pt")])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello, I am a text file\n", "model.ckpt"),
        ({"weights": torch.zeros(2)}, "no 'state_dict'"),
        ({"state_dict": {}, "hyper_parameters": {}}, "no asc_kd hyperparameters"),
    ],
    ids=["text", "no-state-dict", "no-hyperparameters"],
)
def test_cli_file_that_is_not_a_checkpoint(
    tiny_root: Path, tmp_path: Path, content: bytes | dict, message: str
) -> None:
    path = tmp_path / "model.ckpt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=message) as raised:
        main([str(path), "--root", str(tiny_root), "--out", str(tmp_path / "x.int8.pt")])
    assert str(path) in str(raised.value)
    assert not (tmp_path / "x.int8.pt").exists()


@pytest.mark.parametrize("text", ["filename,scene_label\n", "not a checkpoint\n", '{"model": "debug"}\n'])
def test_cli_text_file_is_not_said_to_hold_refused_objects(
    tiny_root: Path, tmp_path: Path, text: str
) -> None:
    path = tmp_path / "model.ckpt"
    path.write_text(text)
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint"):
        main([str(path), "--root", str(tiny_root), "--out", str(tmp_path / "x.int8.pt")])


# -- the callback -------------------------------------------------------------------------------


def test_quantization_export_quantizes_the_best_checkpoint(fitted: FittedRun) -> None:
    report = fitted.export.report
    assert report is not None
    assert (fitted.out_dir / "debug.int8.pt").is_file()
    assert (fitted.out_dir / "debug.int8.json").is_file()
    assert report["source_checkpoint"] == str(fitted.checkpoint)
    assert fitted.checkpoint.parent.name == "checkpoints"

    logged = [(step, m) for step, m in fitted.recorder.logged if "int8/acc" in m]
    assert len(logged) == 1
    step, metrics = logged[0]
    assert step == fitted.trainer.global_step == 4
    assert metrics["int8/acc"] == report["int8"]["acc"]
    assert metrics["int8/acc_unseen"] == report["int8"]["acc_unseen"]
    assert metrics["int8/mem_bytes"] == report["mem_bytes"]
    assert "int8/confusion" not in metrics


def test_quantization_export_without_checkpoints(tiny_root: Path, cache_dir: Path, tmp_path: Path) -> None:
    """No checkpoint callback: the fitted module itself is quantized into the root folder."""
    export = QuantizationExport(calibration_batches=1)
    trainer, recorder = _fit(tiny_root, cache_dir, tmp_path, [export], checkpoints=False)
    assert (tmp_path / "debug.int8.pt").is_file()
    assert export.report is not None and export.report["source_checkpoint"] is None
    assert any("int8/acc" in metrics for _, metrics in recorder.logged)
    assert trainer.lightning_module.device.type == "cpu"
