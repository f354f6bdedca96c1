"""Reading and checking one TAU22 clip: the only place that decodes audio files.

Every decode goes through ``read_clip`` so that a wrong rate, a stereo file, a short clip or
a corrupt header fails the same way everywhere (cache build, on-the-fly loading, data check),
with the file named and the expected value stated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio

from asc_kd.data.tau22 import OFFICIAL_ARCHIVE, DatasetError


class AudioFileError(DatasetError):
    """One audio file is missing or not what the dataset promises.

    ``field`` names what is wrong (``exists``, ``format``, ``samplerate``, ``channels``,
    ``length``) so a data check can summarise problems by kind.
    """

    def __init__(self, message: str, field: str = "format") -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self):  # keep ``field`` when raised in a worker process
        return (type(self), (str(self), self.field))


def check_clip_header(path: Path, sample_rate: int, n_samples: int | None) -> soundfile._SoundFileInfo:
    """Check a wav's header (no audio read) against the expected rate, channels and length."""
    if not path.is_file():
        raise AudioFileError(f"audio file {path} not found; it is part of the {OFFICIAL_ARCHIVE}", "exists")
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise AudioFileError(f"{path}: not a readable audio file ({err})") from err
    if info.samplerate != sample_rate:
        raise AudioFileError(
            f"{path}: sample rate {info.samplerate} Hz, expected {sample_rate} Hz", "samplerate"
        )
    if info.channels != 1:
        raise AudioFileError(f"{path}: {info.channels} channels, expected mono", "channels")
    if n_samples is not None and info.frames != n_samples:
        raise AudioFileError(
            f"{path}: {info.frames} samples ({info.frames / sample_rate:.3f} s), "
            f"expected {n_samples} ({n_samples / sample_rate:.3f} s)",
            "length",
        )
    return info


def read_clip(path: str | Path, sample_rate: int, n_samples: int | None) -> np.ndarray:
    """Decode a mono clip to float32 in [-1, 1] after checking its header."""
    path = Path(path)
    check_clip_header(path, sample_rate, n_samples)
    try:
        audio, _ = soundfile.read(str(path), dtype="float32", always_2d=False)
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise AudioFileError(f"{path}: audio data is truncated or corrupt ({err})") from err
    if n_samples is not None and audio.shape[0] != n_samples:
        raise AudioFileError(
            f"{path}: decoded {audio.shape[0]} samples, header promised {n_samples}; the file is truncated"
        )
    return audio


class Resampler:
    """Batched resampling with the sinc kernel computed once (torchaudio's Hann-windowed sinc)."""

    def __init__(self, source_rate: int, target_rate: int) -> None:
        self.source_rate = source_rate
        self.target_rate = target_rate
        self._transform = (
            torchaudio.transforms.Resample(source_rate, target_rate) if source_rate != target_rate else None
        )

    def __call__(self, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
        waveform = torch.as_tensor(audio, dtype=torch.float32)
        if self._transform is None:
            return waveform
        with torch.no_grad():
            return self._transform(waveform)


def to_int16(waveform: torch.Tensor) -> np.ndarray:
    """Quantise [-1, 1] float audio to int16 (scale 32767, rounded, clipped)."""
    scaled = torch.round(waveform * 32767.0).clamp_(-32768, 32767)
    return scaled.to(torch.int16).numpy()


def from_int16(samples: np.ndarray) -> torch.Tensor:
    """Inverse of ``to_int16``: int16 samples back to float32."""
    return torch.from_numpy(np.asarray(samples, dtype=np.float32)) / 32767.0
