"""Label cross-entropy and Hinton's KD term against hand and numpy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asc_kd.tasks.losses import classification_loss, distillation_loss, knowledge_distillation_loss


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _logits(seed: int, shape: tuple[int, int] = (5, 10)) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=3.0, size=shape)


def test_distillation_loss_two_classes_by_hand() -> None:
    # Teacher logits (3 ln 3, 0) at T = 3 give p_t = (3/4, 1/4); a zero student gives (1/2, 1/2).
    teacher = torch.tensor([[3 * math.log(3.0), 0.0]], dtype=torch.float64)
    student = torch.zeros(1, 2, dtype=torch.float64)
    expected = 9 * (0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5))
    assert distillation_loss(student, teacher, 3.0).item() == pytest.approx(expected, rel=1e-12)


def test_distillation_loss_batchmean_against_numpy() -> None:
    student, teacher, t = _logits(0), _logits(1), 3.0
    log_ps, log_pt = _log_softmax(student / t), _log_softmax(teacher / t)
    expected = t**2 * np.mean(np.sum(np.exp(log_pt) * (log_pt - log_ps), axis=1))
    got = distillation_loss(torch.from_numpy(student), torch.from_numpy(teacher), t, "batchmean")
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_mean_reduction_is_batchmean_over_classes() -> None:
    student, teacher = torch.from_numpy(_logits(2)), torch.from_numpy(_logits(3))
    batchmean = distillation_loss(student, teacher, 3.0, "batchmean")
    mean = distillation_loss(student, teacher, 3.0, "mean")
    torch.testing.assert_close(mean, batchmean / 10, rtol=1e-12, atol=0)


@pytest.mark.parametrize("kl_reduction", ["batchmean", "mean"])
def test_identical_logits_give_zero(kl_reduction: str) -> None:
    logits = torch.from_numpy(_logits(4))
    assert distillation_loss(logits, logits.clone(), 3.0, kl_reduction).item() == 0.0


def test_no_gradient_into_teacher_logits() -> None:
    student = torch.from_numpy(_logits(5)).requires_grad_()
    teacher = torch.from_numpy(_logits(6)).requires_grad_()
    target = torch.arange(5)
    knowledge_distillation_loss(student, target, teacher, label_weight=0.3)["loss"].backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0


@pytest.mark.parametrize("label_weight", [0.0, 0.3, 1.0])
def test_knowledge_distillation_loss_weights(label_weight: float) -> None:
    student, teacher = torch.from_numpy(_logits(7)), torch.from_numpy(_logits(8))
    target = torch.tensor([0, 3, 9, 3, 5])
    out = knowledge_distillation_loss(student, target, teacher, temperature=3.0, label_weight=label_weight)
    ce = F.cross_entropy(student, target)
    kd = distillation_loss(student, teacher, 3.0)
    torch.testing.assert_close(out["label_loss"], ce)
    torch.testing.assert_close(out["kd_loss"], kd)
    torch.testing.assert_close(out["loss"], label_weight * ce + (1 - label_weight) * kd)
    assert not out["label_loss"].requires_grad and not out["kd_loss"].requires_grad


def test_soft_targets_match_hand_cross_entropy() -> None:
    logits = _logits(9, (4, 10))
    probs = np.random.default_rng(10).dirichlet(np.ones(10), size=4)
    expected = -np.mean(np.sum(probs * _log_softmax(logits), axis=1))
    got = classification_loss(torch.from_numpy(logits), torch.from_numpy(probs))
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_one_hot_soft_targets_equal_hard_labels() -> None:
    logits = torch.from_numpy(_logits(11, (4, 10)))
    target = torch.tensor([1, 0, 9, 4])
    one_hot = F.one_hot(target, 10).double()
    torch.testing.assert_close(classification_loss(logits, one_hot), classification_loss(logits, target))
    # Soft targets flow through the KD loss as well.
    teacher = torch.from_numpy(_logits(12, (4, 10)))
    hard = knowledge_distillation_loss(logits, target, teacher, label_weight=0.5)["loss"]
    soft = knowledge_distillation_loss(logits, one_hot, teacher, label_weight=0.5)["loss"]
    torch.testing.assert_close(soft, hard)


@pytest.mark.parametrize("label_weight", [-0.1, 1.5])
def test_invalid_label_weight(label_weight: float) -> None:
    logits = torch.zeros(2, 10)
    with pytest.raises(ValueError, match="label_weight"):
        knowledge_distillation_loss(logits, torch.tensor([0, 1]), logits, label_weight=label_weight)


def test_invalid_kl_reduction() -> None:
    logits = torch.zeros(2, 10)
    with pytest.raises(ValueError, match="kl_reduction"):
        distillation_loss(logits, logits, 3.0, "sum")
    with pytest.raises(ValueError, match="kl_reduction"):
        knowledge_distillation_loss(logits, torch.tensor([0, 1]), logits, kl_reduction="none")
