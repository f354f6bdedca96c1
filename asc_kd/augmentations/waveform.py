"""Waveform augmentations that run batched on the device (GPU when there is one).

Applied by the DataModule in ``on_after_batch_transfer``, before Mixup and the front-end.
"""

from __future__ import annotations

import torch
import torchaudio


def time_roll(waveform: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Circularly shift each clip of a (batch, samples) tensor by its own random offset.

    Scenes are stationary, so where a 1-s crop starts carries no label information; rolling
    teaches that without changing the clip's content or length.
    """
    if max_shift <= 0:
        return waveform
    batch, n = waveform.shape
    shift = torch.randint(-max_shift, max_shift + 1, (batch, 1), device=waveform.device)
    index = (torch.arange(n, device=waveform.device).unsqueeze(0) - shift) % n
    return torch.gather(waveform, 1, index)


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
