"""Freq-MixStyle (CP-JKU, after Zhou et al.'s MixStyle): mix per-frequency statistics.

A recording device mostly colours the spectrum: it shifts each frequency bin's mean and
scales its spread. Normalising every spectrogram per frequency bin and re-styling it with
statistics mixed from another clip of the batch makes the student see device colourings that
never occurred in training, which helps on unseen devices.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.hooks import RemovableHandle


def freq_mixstyle(x: torch.Tensor, alpha: float, eps: float = 1e-6) -> torch.Tensor:
    """Mix per-frequency mean/std of (batch, channels, freq, time) inputs across the batch.

    Statistics are taken over channels and time for each frequency bin, detached (they are
    style, not content), and mixed with λ ~ Beta(α, α) per example and a random partner.
    """
    n = x.shape[0]
    mean = x.mean(dim=(1, 3), keepdim=True).detach()
    std = (x.var(dim=(1, 3), keepdim=True) + eps).sqrt().detach()
    normed = (x - mean) / std
    lam = torch.distributions.Beta(alpha, alpha).sample((n, 1, 1, 1)).to(x.device, x.dtype)
    perm = torch.randperm(n, device=x.device)
    mixed_mean = lam * mean + (1 - lam) * mean[perm]
    mixed_std = lam * std + (1 - lam) * std[perm]
    return normed * mixed_std + mixed_mean


class FreqMixStyle(L.Callback):
    """Attach ``freq_mixstyle`` to the student's input as a forward pre-hook.

    The hook acts only while the model is in training mode and, per batch, with probability
    ``p``; validation, test, export and quantization never see it. It is attached at fit start
    and removed at fit end, so the model object stays clean.

    Args:
        alpha: Beta(α, α) parameter (CP-JKU: 0.3 or 0.4).
        p: probability of restyling a batch (CP-JKU: 0.6-0.8).
    """

    def __init__(self, alpha: float = 0.3, p: float = 0.7) -> None:
        self.alpha = alpha
        self.p = p
        self._handle: RemovableHandle | None = None

    def _hook(self, module: torch.nn.Module, args: tuple[torch.Tensor, ...]):
        if module.training and torch.rand(()) < self.p:
            return (freq_mixstyle(args[0], self.alpha), *args[1:])
        return None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._handle = pl_module.model.register_forward_pre_hook(self._hook)

    def _detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._detach()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._detach()
