"""Waveform augmentations that run batched on the device (GPU when there is one).

Applied by the DataModule in ``on_after_batch_transfer``, before Mixup and the front-end.
"""

from __future__ import annotations

import torch
import torchaudio

#: Dtypes whose CPU tensors ``time_roll`` copies through numpy (others go through ``torch.roll``).
_NUMPY_DTYPES = (torch.float32, torch.float64, torch.float16, torch.int16)


def time_roll(waveform: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Circularly shift each clip of a (batch, samples) tensor by its own random offset.

    Scenes are stationary, so where a 1-s crop starts carries no label information; rolling
    teaches that without changing the clip's content or length.
    """
    if max_shift <= 0:
        return waveform
    batch, n = waveform.shape
    shift = torch.randint(-max_shift, max_shift + 1, (batch, 1), device=waveform.device)
    shifts = shift.flatten().tolist()
    if waveform.device.type == "cpu" and not waveform.requires_grad and waveform.dtype in _NUMPY_DTYPES and n:
        # Each clip as two slice copies into one new batch, in numpy: the values of torch.roll
        # without its per-call cost, which dominates for clips of a second; a gather over a
        # (batch, samples) index costs more than either.
        out = torch.empty(waveform.shape, dtype=waveform.dtype)
        source, target = waveform.numpy(), out.numpy()
        for row, s in enumerate(shifts):
            s %= n
            target[row, s:] = source[row, : n - s]
            target[row, :s] = source[row, n - s :]
        return out
    return torch.stack([torch.roll(clip, s) for clip, s in zip(waveform, shifts, strict=True)])


def convolve_impulse_responses(
    waveform: torch.Tensor, responses: torch.Tensor, apply: torch.Tensor
) -> torch.Tensor:
    """Convolve the clips where ``apply`` is true with a random response each (FFT convolution).

    Simulates recording the same scene on another device (DIR augmentation, CP-JKU DCASE23):
    the output keeps the input length, taking the first samples of the full convolution.
    """
    if not bool(apply.any()):
        return waveform
    rows = apply.nonzero().squeeze(1)
    choice = torch.randint(len(responses), (len(rows),), device=waveform.device)
    convolved = torchaudio.functional.fftconvolve(waveform[rows], responses[choice])
    out = waveform.clone()
    out[rows] = convolved[:, : waveform.shape[1]]
    return out
