"""Batch mixing: Mixup on waveforms (Zhang et al. 2018) and the teacher targets of mixed clips."""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F

from asc_kd.core.batch import Batch

TeacherMix = Literal["probabilities", "logits"]


def mixup(batch: Batch, alpha: float, n_classes: int, generator: torch.Generator | None = None) -> Batch:
    """Mix every example with a random partner: ``x = λ·x + (1−λ)·x[perm]``, λ ~ Beta(α, α).

    One λ per example and one permutation are shared by the waveform and the one-hot labels
    (returned as ``soft_target``), and returned as ``mix_lambda`` and ``mix_permutation`` so
    that precomputed teacher logits can be mixed to match (``mix_teacher_logits``).
    ``target`` keeps the dominant label for bookkeeping; ``teacher_logits`` are left as they
    are: how to mix them is the distillation task's choice.
    """
    waveform = batch["waveform"]
    n = waveform.shape[0]
    device = waveform.device
    perm = torch.randperm(n, generator=generator).to(device)
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    lam = beta.sample((n,)).to(device=device, dtype=waveform.dtype)

    def mix(x: torch.Tensor) -> torch.Tensor:
        # λ·x + (1−λ)·x[perm] as x[perm] + λ·(x − x[perm]): one fused pass (equal up to rounding),
        # in place on a copy of the partners' rows (index_select copies whole rows; x[perm]
        # goes through the general indexing kernel)
        weight = lam.view(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        return torch.index_select(x, 0, perm).lerp_(x, weight)

    target = batch.get("soft_target")
    if target is None:
        target = F.one_hot(batch["target"], n_classes).to(waveform.dtype)
    return {
        **batch,
        "waveform": mix(waveform),
        "soft_target": mix(target),
        "target": torch.where(lam >= 0.5, batch["target"], batch["target"][perm]),
        "mix_lambda": lam,
        "mix_permutation": perm,
    }


def mix_teacher_logits(
    logits: torch.Tensor,
    lam: torch.Tensor,
    perm: torch.Tensor,
    temperature: float,
    mode: TeacherMix = "probabilities",
) -> torch.Tensor:
    """Teacher logits for Mixup-mixed clips, as the KD loss softens them with ``temperature``.

    ``probabilities`` returns logits whose softened distribution is exactly the mix of the two
    teachers' softened distributions, ``λ·p_T(t) + (1−λ)·p_T(t[perm])`` (as ``T·log`` of it,
    which softmax at T maps back), matching how the labels are mixed. ``logits`` mixes the
    logits linearly, ``λ·t + (1−λ)·t[perm]``, whose softened distribution is not that mix.
    """
    if mode == "logits":
        weight = lam.view(-1, 1).to(logits.dtype)
        return weight * logits + (1.0 - weight) * logits[perm]
    if mode != "probabilities":
        raise ValueError(f"teacher_mix must be 'probabilities' or 'logits', got {mode!r}")
    log_p = F.log_softmax(logits.float() / temperature, dim=-1)
    weight = lam.view(-1, 1).double().clamp(0.0, 1.0)
    mixed = torch.logaddexp(log_p.double() + weight.log(), log_p[perm].double() + (1.0 - weight).log())
    return (temperature * mixed).to(logits.dtype)


class Mixup(L.Callback):
    """Apply ``mixup`` to each training batch with probability ``p``.

    Runs in ``on_train_batch_start``: after the DataModule's waveform augmentations, before
    the task's front-end.

    Args:
        alpha: Beta(α, α) parameter; CP-JKU's students use 0.3.
        p: probability that a batch is mixed.
    """

    def __init__(self, alpha: float = 0.3, p: float = 1.0) -> None:
        if alpha <= 0:
            raise ValueError(f"Mixup alpha must be > 0, got {alpha}")
        self.alpha = alpha
        self.p = p

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if torch.rand(()) < self.p:
            # The batch dict is shared with training_step, so mixing it in place is enough.
            batch.update(mixup(batch, self.alpha, len(pl_module.classes)))
