"""Losses of the students: cross-entropy on (possibly mixed) labels and Hinton's KD term.

Pure functions, so they are tested against hand computations without Lightning.

Knowledge distillation (Hinton et al. 2015; report section 2)::

    loss = label_weight * CE(student, labels)
         + (1 - label_weight) * T**2 * KL(softmax(teacher / T) || softmax(student / T))

``kl_reduction`` says how the KL is averaged. ``"batchmean"`` sums over classes and averages
over examples: the true KL divergence, Hinton's form and the report's. ``"mean"`` also
averages over the classes, which is what CP-JKU's DCASE23 code does (``KLDivLoss(reduction=
"mean")``): the KD term is then ``n_classes`` times smaller (tenfold for the 10 scenes), so
their lambda = 0.02 corresponds to a much larger label weight under ``"batchmean"``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

KLReduction = Literal["batchmean", "mean"]


def classification_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against class indices (B,) or class probabilities (B, C) from Mixup."""
    return F.cross_entropy(logits, target)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float,
    kl_reduction: KLReduction = "batchmean",
) -> torch.Tensor:
    """``T**2 * KL(teacher || student)`` on temperature-softened distributions.

    The T**2 factor keeps the gradient scale of the soft term independent of T.
    """
    if kl_reduction not in ("batchmean", "mean"):
        raise ValueError(f"kl_reduction must be 'batchmean' or 'mean', got {kl_reduction!r}")
    student = F.log_softmax(student_logits / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    # Summed, then divided explicitly: torch plans to change what kl_div's "mean" means.
    kl = F.kl_div(student, teacher, reduction="sum", log_target=True)
    divisor = student.shape[0] if kl_reduction == "batchmean" else student.numel()
    return kl / divisor * temperature**2


def knowledge_distillation_loss(
    student_logits: torch.Tensor,
    target: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 3.0,
    label_weight: float = 0.5,
    kl_reduction: KLReduction = "batchmean",
) -> dict[str, torch.Tensor]:
    """Weighted sum of label CE and the KD term; returns ``loss``, ``label_loss``, ``kd_loss``."""
    if not 0.0 <= label_weight <= 1.0:
        raise ValueError(f"label_weight must lie in [0, 1], got {label_weight}")
    label_loss = classification_loss(student_logits, target)
    kd_loss = distillation_loss(student_logits, teacher_logits, temperature, kl_reduction)
    loss = label_weight * label_loss + (1.0 - label_weight) * kd_loss
    return {"loss": loss, "label_loss": label_loss.detach(), "kd_loss": kd_loss.detach()}
