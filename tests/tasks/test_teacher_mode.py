"""Online teachers stay in eval mode while the student trains: whatever mode the student is put
in (Lightning calls ``train()`` on the whole task at fit start and after each validation), the
teachers' batch norm uses its running statistics, which never change, and their logits for a
batch are those of the teacher loaded alone in eval mode."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from fit_helpers import fit_on_noise, make_cpu_trainer
from tiny_checkpoints import fit_checkpoint

from asc_kd.tasks import ClassificationTask, DistillationTask
from asc_kd.tasks.restore import load_task

#: A small front-end for teacher and student: the modes are the point here, not the features.
SMALL_FRONTEND = {"n_fft": 512, "win_length": 512, "hop_length": 1024, "n_mels": 32}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(4)
    return fit_checkpoint(
        ClassificationTask(model="debug", lr=0.05, frontend_kwargs=SMALL_FRONTEND),
        tmp_path_factory.mktemp("t") / "t.ckpt",
    )


def _waveform() -> torch.Tensor:
    return 0.1 * torch.randn(6, 32_000, generator=torch.Generator().manual_seed(2))


def test_train_mode_of_the_student_leaves_the_teachers_in_eval(teacher: Path) -> None:
    task = DistillationTask(model="debug", teacher_checkpoints=[str(teacher)], frontend_kwargs=SMALL_FRONTEND)
    task.setup("fit")
    task.train()
    assert task.training and task.model.training and all(m.training for m in task.model.modules())
    assert not any(m.training for t in task.teachers for m in t.modules())
    assert not any(p.requires_grad for p in task.teachers.parameters())
    waveform = _waveform()
    alone = load_task(teacher)
    with torch.no_grad():
        expected = alone.eval()(waveform)
        in_train_mode = alone.train()(waveform)  # batch statistics: other logits
    assert (expected - in_train_mode).abs().max() > 1e-3  # the mode matters for this teacher
    torch.testing.assert_close(task.teacher_logits({"waveform": waveform}), expected)
    task.eval().train()
    assert not any(m.training for t in task.teachers for m in t.modules())


class _RecordTeacherModes(L.Callback):
    def __init__(self) -> None:
        self.modes: list[bool] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        assert pl_module.model.training
        self.modes += [m.training for t in pl_module.teachers for m in t.modules()]


def test_during_a_fit_the_teachers_stay_in_eval_and_their_statistics_fixed(
    teacher: Path, tmp_path: Path
) -> None:
    L.seed_everything(0, verbose=False)
    task = DistillationTask(model="debug", teacher_checkpoints=[str(teacher)], frontend_kwargs=SMALL_FRONTEND)
    record = _RecordTeacherModes()
    fit_on_noise(task, make_cpu_trainer(tmp_path, max_epochs=2, callbacks=[record]))
    assert record.modes and not any(record.modes)
    before = load_task(teacher).state_dict()
    after = task.teachers[0].state_dict()
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == []  # running means, variances and batch counts included
