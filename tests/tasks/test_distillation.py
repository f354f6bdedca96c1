"""``DistillationTask`` wiring, checked against independent computations: the configured λ and T,
Mixup's soft targets, the teacher targets of mixed clips, the mean of online teachers."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from asc_kd.augmentations import mixup
from asc_kd.tasks import DistillationTask
from asc_kd.tasks.restore import load_task


def _batch(n: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "waveform": 0.1 * torch.randn(n, 32_000, generator=generator),
        "target": torch.arange(n) % 10,
        "device": torch.zeros(n, dtype=torch.long),
        "index": torch.arange(n),
        "teacher_logits": 4 * torch.randn(n, 10, generator=generator),
    }


def _step_loss(task: DistillationTask, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss ``training_step`` returns (it logs too; there is no trainer to log to here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return task.training_step(batch, 0)


def _reference_loss(
    student: torch.Tensor, target: torch.Tensor, teacher_p: torch.Tensor, label_weight: float, t: float
) -> torch.Tensor:
    """λ·CE(soft or hard labels) + (1−λ)·T²·KL(teacher ‖ student), KL summed over classes and
    averaged over the batch, written out without asc_kd's loss functions."""
    log_q = student.double().div(t).log_softmax(-1)
    kl = (teacher_p * (teacher_p.log() - log_q)).sum(-1).mean()
    log_s = student.double().log_softmax(-1)
    one_hot = F.one_hot(target, 10).double() if target.ndim == 1 else target.double()
    ce = -(one_hot * log_s).sum(-1).mean()
    return label_weight * ce + (1 - label_weight) * t**2 * kl


@pytest.mark.parametrize("mode", ["probabilities", "logits"])
def test_one_step_loss_uses_lambda_t_soft_targets_and_mixed_teacher_targets(mode: str) -> None:
    torch.manual_seed(0)
    task = DistillationTask(model="debug", temperature=2.5, label_weight=0.3, teacher_mix=mode)
    task.model.eval()  # no batch-norm updates between the two forwards below
    batch = _batch()
    torch.manual_seed(1)
    mixed = mixup(batch, alpha=0.4, n_classes=10)
    loss = _step_loss(task, mixed)
    with torch.no_grad():
        student = task(mixed["waveform"])
    lam, perm, t = mixed["mix_lambda"].double()[:, None], mixed["mix_permutation"], 2.5
    teacher = batch["teacher_logits"].double()
    if mode == "probabilities":
        p = teacher.div(t).softmax(-1)
        teacher_p = lam * p + (1 - lam) * p[perm]
    else:
        teacher_p = (lam * teacher + (1 - lam) * teacher[perm]).div(t).softmax(-1)
    expected = _reference_loss(student, mixed["soft_target"], teacher_p, 0.3, t)
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    # The hard-label, unmixed alternatives give other numbers: the test would notice.
    unmixed = _reference_loss(
        student, mixed["target"], batch["teacher_logits"].double().div(t).softmax(-1), 0.3, t
    )
    assert abs(float(unmixed) - float(expected)) > 1e-3


def test_without_mixup_the_loss_is_lambda_ce_plus_kd() -> None:
    torch.manual_seed(0)
    task = DistillationTask(model="debug", temperature=1.7, label_weight=0.8, kl_reduction="batchmean")
    task.model.eval()
    batch = _batch()
    loss = _step_loss(task, batch)
    with torch.no_grad():
        student = task(batch["waveform"])
    teacher_p = batch["teacher_logits"].double().div(1.7).softmax(-1)
    assert float(loss.detach()) == pytest.approx(
        float(_reference_loss(student, batch["target"], teacher_p, 0.8, 1.7)), rel=1e-5
    )


def test_online_teachers_are_averaged(two_teachers: list[Path]) -> None:
    task = DistillationTask(model="debug", teacher_checkpoints=[str(p) for p in two_teachers])
    task.setup("fit")
    batch = _batch()
    with torch.no_grad():
        each = [load_task(p)(batch["waveform"]) for p in two_teachers]
    assert not torch.allclose(each[0], each[1])
    torch.testing.assert_close(task.teacher_logits(batch), (each[0] + each[1]) / 2)


def test_online_teachers_hear_the_mixed_audio_and_are_not_mixed_again(two_teachers: list[Path]) -> None:
    task = DistillationTask(model="debug", teacher_checkpoints=[str(two_teachers[0])])
    task.setup("fit")
    torch.manual_seed(3)
    mixed = mixup(_batch(), alpha=0.4, n_classes=10)
    with torch.no_grad():
        expected = load_task(two_teachers[0])(mixed["waveform"])
    torch.testing.assert_close(task.teacher_logits(mixed), expected)
