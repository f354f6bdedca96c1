"""Mixup on waveforms (Zhang et al. 2018), with labels and teacher logits mixed alike."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

Batch = dict[str, torch.Tensor]


def mixup(batch: Batch, alpha: float, n_classes: int, generator: torch.Generator | None = None) -> Batch:
    """Mix every example with a random partner: ``x = λ·x + (1−λ)·x[perm]``, λ ~ Beta(α, α).

    One λ per example and one permutation are shared by the waveform, the one-hot labels
    (returned as ``soft_target``) and ``teacher_logits`` when present, so the student's
    targets describe exactly the audio it hears. ``target`` keeps the dominant label for
    bookkeeping.
    """
    waveform = batch["waveform"]
    n = waveform.shape[0]
    device = waveform.device
    perm = torch.randperm(n, generator=generator).to(device)
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    lam = beta.sample((n,)).to(device=device, dtype=waveform.dtype)

    def mix(x: torch.Tensor) -> torch.Tensor:
        weight = lam.view(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        return weight * x + (1.0 - weight) * x[perm]

    target = batch.get("soft_target")
    if target is None:
        target = F.one_hot(batch["target"], n_classes).to(waveform.dtype)
    out = {
        **batch,
        "waveform": mix(waveform),
        "soft_target": mix(target),
        "target": torch.where(lam >= 0.5, batch["target"], batch["target"][perm]),
        "mix_lambda": lam,
        "mix_permutation": perm,
    }
    if "teacher_logits" in batch:
        out["teacher_logits"] = mix(batch["teacher_logits"])
    return out


class Mixup(L.Callback):
    """Apply ``mixup`` to each training batch with probability ``p``.

    Args:
        alpha: Beta(α, α) parameter; CP-JKU's students use 0.3.
        p: probability that a batch is mixed.
        n_classes: number of classes of the one-hot targets.
    """

    def __init__(self, alpha: float = 0.3, p: float = 1.0, n_classes: int = 10) -> None:
        if alpha <= 0:
            raise ValueError(f"Mixup alpha must be > 0, got {alpha}")
        self.alpha = alpha
        self.p = p
        self.n_classes = n_classes

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if torch.rand(()) < self.p:
            # The batch dict is shared with training_step, so mixing it in place is enough.
            batch.update(mixup(batch, self.alpha, self.n_classes))
