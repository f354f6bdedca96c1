"""The LightningModules: learning-rate schedule, fast runs on the tiny scenes, checkpoints."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from fit_helpers import make_cpu_trainer

from asc_kd import __version__
from asc_kd.augmentations import FreqMixStyle, Mixup
from asc_kd.callbacks import ComplexityCheck
from asc_kd.data.cache import fingerprint_files
from asc_kd.data.datamodule import TAU22DataModule
from asc_kd.data.tau import SCENES, TAU22, read_split
from asc_kd.data.teacher_logits import save_logits
from asc_kd.tasks import ClassificationTask, DistillationTask, lr_factor
from asc_kd.tasks.restore import load_task

# -- lr_factor ----------------------------------------------------------------------------------


def test_cosine_schedule() -> None:
    assert lr_factor(0, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(5, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(10, 10, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(10, 10, "cosine", min_factor=0.2) == pytest.approx(0.2)
    assert lr_factor(5, 10, "cosine", min_factor=0.2) == pytest.approx(0.6)


def test_warmup_is_linear_then_the_schedule_starts_at_one() -> None:
    factors = [lr_factor(e, 10, "cosine", warmup_epochs=2) for e in (0.5, 1.0, 1.5)]
    assert factors[1] == pytest.approx(0.5, abs=1e-3)
    assert factors[1] - factors[0] == pytest.approx(0.25)
    assert factors[2] - factors[1] == pytest.approx(0.25)
    assert 0 < lr_factor(0, 10, "cosine", warmup_epochs=2) < 1e-3
    assert lr_factor(2, 10, "cosine", warmup_epochs=2) == pytest.approx(1.0)
    # After warm-up, cosine spans the remaining 8 epochs: halfway at epoch 6.
    assert lr_factor(6, 10, "cosine", warmup_epochs=2) == pytest.approx(0.5)


def test_exponential_schedule() -> None:
    def factor(epoch: float) -> float:
        return lr_factor(epoch, 30, "exponential", lr_decay=0.85, decay_start_epoch=5)

    assert [factor(e) for e in range(5)] == [1.0] * 5
    assert factor(5) == pytest.approx(0.85)
    assert factor(5.9) == pytest.approx(0.85)
    assert factor(6) == pytest.approx(0.7225)
    assert factor(10) == pytest.approx(0.85**6)


def test_linear_and_constant_schedules() -> None:
    assert lr_factor(0, 10, "linear", min_factor=0.1) == pytest.approx(1.0)
    assert lr_factor(5, 10, "linear", min_factor=0.1) == pytest.approx(0.55)
    assert lr_factor(10, 10, "linear", min_factor=0.1) == pytest.approx(0.1)
    assert lr_factor(12, 10, "linear", min_factor=0.1) == pytest.approx(0.1)  # clamped
    assert lr_factor(7, 10, "constant") == 1.0


def test_unknown_schedule() -> None:
    with pytest.raises(ValueError, match="schedule"):
        lr_factor(1, 10, "step")


# -- runs on the tiny scenes --------------------------------------------------------------------


def _datamodule(tiny_root: Path, cache_dir: Path, **kwargs: Any) -> TAU22DataModule:
    return TAU22DataModule(
        root=str(tiny_root),
        cache_dir=str(cache_dir),
        num_workers=0,
        batch_size=16,
        eval_batch_size=64,
        **kwargs,
    )


def _trainer(tmp_path: Path, callbacks: list[L.Callback] | None = None) -> L.Trainer:
    return make_cpu_trainer(tmp_path, fast_dev_run=2, callbacks=callbacks)


def _teacher_logits_file(tiny_root: Path, path: Path) -> Path:
    filenames = list(read_split(tiny_root, "train")["filename"])
    logits = 3 * torch.randn(len(filenames), 10, generator=torch.Generator().manual_seed(0))
    metadata = {
        "split": "train",
        "dataset_fingerprint": fingerprint_files(tiny_root, filenames),
        "classes": list(SCENES),
        "teachers": ["random"],
    }
    return save_logits(path, filenames, logits, metadata)


def _waveform() -> torch.Tensor:
    return 0.1 * torch.randn(3, 32_000, generator=torch.Generator().manual_seed(7))


def _eval_logits(task: ClassificationTask) -> torch.Tensor:
    task.eval()
    with torch.no_grad():
        return task(_waveform())


def _fit_debug_classifier(
    tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> tuple[ClassificationTask, Path]:
    """A debug classifier after a two-step fit, and its checkpoint."""
    L.seed_everything(0, verbose=False)
    task = ClassificationTask(model="debug", spec=TAU22)
    trainer = _trainer(tmp_path)
    trainer.fit(task, datamodule=_datamodule(tiny_root, cache_dir))
    path = tmp_path / "classifier.ckpt"
    trainer.save_checkpoint(path)
    return task, path


def test_classification_fast_dev_run(tiny_root: Path, cache_dir: Path, tmp_path: Path) -> None:
    L.seed_everything(0, verbose=False)
    task = ClassificationTask(model="debug", spec=TAU22)
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    trainer = _trainer(tmp_path, [Mixup(), FreqMixStyle(p=1.0)])
    trainer.fit(task, datamodule=_datamodule(tiny_root, cache_dir))
    assert trainer.global_step == 2
    assert math.isfinite(trainer.callback_metrics["train/loss"].item())
    assert 0.0 <= trainer.callback_metrics["val/acc"].item() <= 1.0
    assert not torch.equal(before["classifier.weight"], task.model.state_dict()["classifier.weight"])


def test_distillation_fast_dev_run_with_logits_file(tiny_root: Path, cache_dir: Path, tmp_path: Path) -> None:
    logits_file = _teacher_logits_file(tiny_root, tmp_path / "teachers.npz")
    L.seed_everything(0, verbose=False)
    task = DistillationTask(model="debug", temperature=3.0, label_weight=0.5, spec=TAU22)
    complexity = ComplexityCheck()
    trainer = _trainer(tmp_path, [Mixup(alpha=0.3), FreqMixStyle(p=1.0), complexity])
    trainer.fit(task, datamodule=_datamodule(tiny_root, cache_dir, teacher_logits=str(logits_file)))
    assert trainer.global_step == 2
    metrics = trainer.callback_metrics
    for key in ("train/loss", "train/label_loss", "train/kd_loss"):
        assert math.isfinite(metrics[key].item()), key
    assert metrics["train/kd_loss"].item() > 0
    assert complexity.result is not None and complexity.result.within_limits
    assert len(task.model._forward_pre_hooks) == 0


@dataclass
class OnlineRun:
    """A debug teacher fitted and saved, then a student distilled from its checkpoint."""

    teacher_logits: torch.Tensor
    teacher_path: Path
    frozen_teacher: dict[str, torch.Tensor]
    student: DistillationTask
    student_path: Path
    trainer: L.Trainer


@pytest.fixture(scope="module")
def online_run(tiny_root: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> OnlineRun:
    tmp_path = tmp_path_factory.mktemp("online")
    teacher, teacher_path = _fit_debug_classifier(tiny_root, cache_dir, tmp_path)
    L.seed_everything(1, verbose=False)
    student = DistillationTask(model="debug", teacher_checkpoints=[str(teacher_path)], spec=TAU22)
    assert len(student.teachers) == 0  # teachers load at fit setup, not at construction
    frozen = {k: v.clone() for k, v in load_task(teacher_path).state_dict().items()}
    trainer = _trainer(tmp_path, [Mixup()])
    trainer.fit(student, datamodule=_datamodule(tiny_root, cache_dir))
    student_path = tmp_path / "student.ckpt"
    trainer.save_checkpoint(student_path)
    return OnlineRun(_eval_logits(teacher), teacher_path, frozen, student, student_path, trainer)


def test_distillation_with_online_teacher(online_run: OnlineRun) -> None:
    student, trainer = online_run.student, online_run.trainer
    assert len(student.teachers) == 1
    assert trainer.global_step == 2
    assert math.isfinite(trainer.callback_metrics["train/kd_loss"].item())
    # The teacher neither trained nor updated its batch-norm statistics.
    online = student.teachers[0]
    assert not online.training
    for key, value in online.state_dict().items():
        assert torch.equal(value, online_run.frozen_teacher[key]), key
    torch.testing.assert_close(_eval_logits(online), online_run.teacher_logits)


def test_student_checkpoint_holds_no_teacher(online_run: OnlineRun) -> None:
    student = online_run.student
    assert not [k for k in student.state_dict() if k.startswith("teachers.")]
    state = torch.load(online_run.student_path, map_location="cpu", weights_only=True)["state_dict"]
    assert state and not [k for k in state if k.startswith("teachers.")]
    reloaded = DistillationTask.load_from_checkpoint(online_run.student_path, weights_only=True)
    assert len(reloaded.teachers) == 0  # loaded again only when fitting
    assert torch.equal(_eval_logits(reloaded), _eval_logits(student))
    # A student is a classifier: inference needs neither the teachers nor the KD settings.
    as_classifier = ClassificationTask.load_from_checkpoint(online_run.student_path, weights_only=True)
    assert type(as_classifier) is ClassificationTask
    assert torch.equal(_eval_logits(as_classifier), _eval_logits(student))


def test_student_checkpoint_reloads_without_teacher_files(online_run: OnlineRun) -> None:
    hidden = online_run.teacher_path.with_name("moved.ckpt")
    online_run.teacher_path.rename(hidden)
    try:
        reloaded = DistillationTask.load_from_checkpoint(online_run.student_path, weights_only=True)
    finally:
        hidden.rename(online_run.teacher_path)
    assert torch.equal(_eval_logits(reloaded), _eval_logits(online_run.student))


def test_checkpoint_reload(tiny_root: Path, cache_dir: Path, tmp_path: Path) -> None:
    task, path = _fit_debug_classifier(tiny_root, cache_dir, tmp_path)
    reloaded = ClassificationTask.load_from_checkpoint(path, weights_only=True)
    assert reloaded.hparams.model == "debug"
    assert torch.equal(_eval_logits(reloaded), _eval_logits(task))

    record = torch.load(path, map_location="cpu", weights_only=True)["asc_kd"]
    assert record["model"] == "debug"
    assert record["task"] == "ClassificationTask"
    assert record["version"] == __version__
    assert record["frontend"] == {"name": "student_mel", **task.frontend.config()}
    assert record["frontend"]["hop_length"] == 737
    assert record["spec"] == TAU22.as_dict() and reloaded.spec == TAU22
    assert record["task_class"] == "asc_kd.tasks.classification:ClassificationTask"


def test_distillation_without_teachers_names_the_logits_tool() -> None:
    task = DistillationTask(model="debug")
    batch = {"waveform": _waveform(), "target": torch.tensor([0, 1, 2])}
    with pytest.raises(KeyError, match=r"asc_kd\.logits"):
        task.teacher_logits(batch)
    with pytest.raises(KeyError, match=r"asc_kd\.logits"):
        task.training_loss(torch.zeros(3, 10), batch)


def test_validation_and_test_share_metrics(tiny_root: Path, cache_dir: Path, tmp_path: Path) -> None:
    L.seed_everything(0, verbose=False)
    task = ClassificationTask(model="debug", spec=TAU22)
    datamodule = _datamodule(tiny_root, cache_dir)
    trainer = _trainer(tmp_path)
    (validation,) = trainer.validate(task, datamodule=datamodule, verbose=False)
    (test,) = trainer.test(task, datamodule=datamodule, verbose=False)
    assert validation and all(key.startswith("val/") for key in validation)
    assert all(key.startswith("test/") for key in test)
    val_values = {key.removeprefix("val/"): value for key, value in validation.items()}
    test_values = {key.removeprefix("test/"): value for key, value in test.items()}
    assert val_values.keys() == test_values.keys()
    assert {"acc", "macro_acc", "log_loss", "acc_unseen", "acc_device_s6"} <= val_values.keys()
    # Both read fold1_evaluate with the same model, so the numbers agree too.
    for key, value in val_values.items():
        assert value == pytest.approx(test_values[key], nan_ok=True), key
