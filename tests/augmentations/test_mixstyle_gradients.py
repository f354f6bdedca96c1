"""Freq-MixStyle's statistics are style, not content: no gradient flows through them.

CP-JKU's ``mixstyle`` detaches the per-frequency mean and standard deviation ("block
gradients"), and so does ``freq_mixstyle`` (its docstring says so). The output is then an affine
map of each (example, frequency) row of the input, ``x * a + b`` with constant ``a`` and ``b``,
so the gradient of a weighted sum of the output is the weight times ``a`` and nothing else.
"""

from __future__ import annotations

import math

import pytest
import torch

from asc_kd.augmentations.spectrogram import freq_mixstyle


class _FixedBeta:
    """Stands in for ``torch.distributions.Beta``: its samples are the given λ."""

    lam = torch.tensor([0.25, 0.5])

    def __init__(self, *args: object) -> None:
        pass

    def sample(self, shape: tuple[int, ...]) -> torch.Tensor:
        return self.lam.view(shape)


def test_hand_made_batch_gives_the_hand_computed_output_and_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two examples, one channel, one frequency bin, two frames: [1, 3] and [2, 6].
    # Means 2 and 4; unbiased variances 2 and 8 (std √2 and 2√2, plus eps inside the root).
    # λ = (0.25, 0.5), partners swapped (perm = [1, 0]):
    #   example 0: mean 0.25·2 + 0.75·4 = 3.5, std 0.25·√2 + 0.75·2√2 = 1.75√2
    #              out = (x − 2)/√2 · 1.75√2 + 3.5 = 1.75·(x − 2) + 3.5 -> [1.75, 5.25]
    #   example 1: mean 0.5·4 + 0.5·2 = 3, std 0.5·2√2 + 0.5·√2 = 1.5√2
    #              out = (x − 4)/(2√2) · 1.5√2 + 3 = 0.75·(x − 4) + 3 -> [1.5, 4.5]
    # With the statistics detached, d sum(out) / dx is the slope of each row: 1.75 and 0.75.
    monkeypatch.setattr(torch.distributions, "Beta", _FixedBeta)
    monkeypatch.setattr(torch, "randperm", lambda n, **kwargs: torch.tensor([1, 0]))
    x = torch.tensor([[[[1.0, 3.0]]], [[[2.0, 6.0]]]], dtype=torch.float64, requires_grad=True)
    out = freq_mixstyle(x, alpha=0.3, eps=0.0)
    torch.testing.assert_close(
        out.detach().flatten(), torch.tensor([1.75, 5.25, 1.5, 4.5], dtype=torch.float64)
    )
    out.sum().backward()
    torch.testing.assert_close(x.grad.flatten(), torch.tensor([1.75, 1.75, 0.75, 0.75], dtype=torch.float64))


def test_each_output_depends_on_its_own_input_element_only() -> None:
    """Whatever λ and partners are drawn: the gradient is diagonal and equals each row's slope."""
    torch.manual_seed(0)
    # Eight examples with different per-frequency levels and spreads, 2 channels, 3 bins, 5 frames.
    level = torch.arange(8, dtype=torch.float64).view(8, 1, 1, 1)
    x = (level + (1 + level) * torch.randn(8, 2, 3, 5, dtype=torch.float64)).requires_grad_(True)
    weight = torch.randn(8, 2, 3, 5, dtype=torch.float64)
    out = freq_mixstyle(x, alpha=0.3)
    assert not torch.allclose(out, x)  # some example was restyled by a partner
    (out * weight).sum().backward()
    # The slope a of every (example, frequency) row, read off the output itself.
    flat_x = x.detach().transpose(1, 2).reshape(8, 3, -1)
    flat_out = out.detach().transpose(1, 2).reshape(8, 3, -1)
    slope = (flat_out[..., 1] - flat_out[..., 0]) / (flat_x[..., 1] - flat_x[..., 0])
    intercept = flat_out[..., :1] - flat_x[..., :1] * slope[..., None]
    torch.testing.assert_close(flat_out, flat_x * slope[..., None] + intercept)  # affine in every row
    expected = weight * slope.view(8, 1, 3, 1)
    torch.testing.assert_close(x.grad, expected, rtol=1e-9, atol=1e-9)


def test_a_single_output_has_a_gradient_at_its_own_input_only() -> None:
    torch.manual_seed(1)
    x = torch.randn(4, 1, 2, 6, dtype=torch.float64).mul(torch.tensor([1.0, 3.0, 0.5, 2.0]).view(4, 1, 1, 1))
    x.requires_grad_(True)
    out = freq_mixstyle(x, alpha=0.3)
    out[2, 0, 1, 3].backward()
    grad = x.grad.clone()
    assert grad[2, 0, 1, 3] != 0
    grad[2, 0, 1, 3] = 0
    assert grad.abs().max().item() == 0.0
    assert math.isfinite(float(x.grad[2, 0, 1, 3]))
