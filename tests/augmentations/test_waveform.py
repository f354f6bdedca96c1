"""Waveform augmentations: time roll and device impulse responses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asc_kd.augmentations.waveform import convolve_impulse_responses, time_roll


@pytest.fixture
def waveform() -> torch.Tensor:
    return torch.randn(8, 500, generator=torch.Generator().manual_seed(0))


def _shift_of(out: torch.Tensor, row: torch.Tensor, max_shift: int) -> int | None:
    """The shift s with ``out == torch.roll(row, s)``, if there is one within ±max_shift."""
    matches = [s for s in range(-max_shift, max_shift + 1) if torch.equal(out, torch.roll(row, s))]
    return matches[0] if len(matches) == 1 else None


def test_time_roll_shifts_each_row_circularly(waveform):
    torch.manual_seed(1)
    rolled = time_roll(waveform, max_shift=20)
    assert rolled.shape == waveform.shape
    shifts = [_shift_of(out, row, 20) for out, row in zip(rolled, waveform, strict=True)]
    assert None not in shifts
    assert len(set(shifts)) > 1  # each row draws its own shift


def test_time_roll_is_seeded(waveform):
    torch.manual_seed(3)
    first = time_roll(waveform, max_shift=50)
    torch.manual_seed(3)
    assert torch.equal(time_roll(waveform, max_shift=50), first)


def test_time_roll_zero_is_identity(waveform):
    assert torch.equal(time_roll(waveform, max_shift=0), waveform)


def test_unit_impulse_is_identity_on_selected_rows(waveform):
    responses = torch.zeros(3, 40)
    responses[:, 0] = 1.0
    apply = torch.tensor([True, False, True, True, False, False, True, False])
    out = convolve_impulse_responses(waveform, responses, apply)
    assert out.shape == waveform.shape
    torch.testing.assert_close(out[apply], waveform[apply], atol=1e-5, rtol=0)
    assert torch.equal(out[~apply], waveform[~apply])


def test_convolution_matches_numpy(waveform):
    response = torch.randn(1, 31, generator=torch.Generator().manual_seed(1))
    apply = torch.tensor([False, True, True, False, True, False, False, True])
    out = convolve_impulse_responses(waveform, response, apply)
    for row in apply.nonzero().squeeze(1).tolist():
        expected = np.convolve(waveform[row].double().numpy(), response[0].double().numpy())
        np.testing.assert_allclose(out[row].numpy(), expected[:500], atol=1e-4, rtol=0)
    assert torch.equal(out[~apply], waveform[~apply])


def test_nothing_selected_returns_input(waveform):
    responses = torch.randn(2, 10)
    apply = torch.zeros(8, dtype=torch.bool)
    assert torch.equal(convolve_impulse_responses(waveform, responses, apply), waveform)


@pytest.mark.parametrize("grad", [False, True], ids=["numpy copies", "torch.roll"])
def test_time_roll_is_torch_roll_of_each_clip_with_its_drawn_shift(waveform, grad):
    """Both paths (slice copies in numpy for a plain CPU batch, ``torch.roll`` for one that needs
    gradients) give each clip ``torch.roll`` by the shift drawn for it, wrapping both ways."""
    source = waveform.clone().requires_grad_(grad)
    torch.manual_seed(5)
    rolled = time_roll(source, max_shift=300)
    torch.manual_seed(5)
    shifts = torch.randint(-300, 301, (len(waveform), 1)).flatten().tolist()
    assert any(s < 0 for s in shifts) and any(s > 0 for s in shifts)
    expected = torch.stack([torch.roll(clip, s) for clip, s in zip(waveform, shifts, strict=True)])
    assert torch.equal(rolled.detach(), expected)
    assert rolled.requires_grad == grad


@pytest.mark.parametrize("dtype", [torch.int16, torch.bfloat16])
def test_time_roll_keeps_dtype_and_gives_a_contiguous_batch_from_a_transposed_one(dtype):
    """int16 through the numpy copies, bf16 (which numpy lacks) through ``torch.roll``; a
    transposed (non-contiguous) batch comes back contiguous, with each clip rolled."""
    clips = torch.arange(3 * 7).reshape(7, 3).to(dtype).t()  # (3 clips, 7 samples), strides (1, 3)
    torch.manual_seed(2)
    rolled = time_roll(clips, max_shift=9)  # shifts past the clip length wrap around
    torch.manual_seed(2)
    shifts = torch.randint(-9, 10, (3, 1)).flatten().tolist()
    assert rolled.dtype == dtype and rolled.is_contiguous()
    assert torch.equal(rolled, torch.stack([torch.roll(c, s) for c, s in zip(clips, shifts, strict=True)]))


def test_time_roll_of_empty_clips_is_empty():
    assert time_roll(torch.zeros(2, 0), max_shift=5).shape == (2, 0)
