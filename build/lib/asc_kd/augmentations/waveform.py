"""Waveform augmentations that run batched on the device (GPU when there is one).

Applied by the DataModule in ``on_after_batch_transfer``, before Mixup and the front-end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio

from asc_kd.data.audio import Resampler
from asc_kd.data.spec import DatasetError


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


def load_impulse_responses(folder: str | Path, sample_rate: int) -> torch.Tensor:
    """All wavs of ``folder`` as one (count, samples) tensor at ``sample_rate``, zero-padded.

    Each response is normalised to unit energy so convolving changes colour, not loudness.
    """
    folder = Path(folder)
    files = sorted(folder.glob("*.wav")) if folder.is_dir() else []
    if not files:
        raise DatasetError(f"device impulse response folder {folder} holds no .wav files")
    responses = []
    for path in files:
        try:
            audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError) as err:
            raise DatasetError(f"{path}: not a readable impulse response ({err})") from err
        response = Resampler(rate, sample_rate)(np.ascontiguousarray(audio[:, 0]))
        energy = response.pow(2).sum().sqrt()
        if energy == 0:
            raise DatasetError(f"{path}: impulse response is all zeros")
        responses.append(response / energy)
    length = max(r.shape[0] for r in responses)
    return torch.stack([torch.nn.functional.pad(r, (0, length - r.shape[0])) for r in responses])


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
