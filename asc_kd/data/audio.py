"""Reading and checking audio files: the only place that decodes them.

Every decode goes through ``read_clip`` so that a wrong rate, a stereo file, a short clip, a
corrupt header or NaN samples fail the same way everywhere (cache build, on-the-fly loading,
data check, predict), with the file named and the expected value stated.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio

from asc_kd.data.spec import DatasetError

#: File extensions read as audio (any case): the formats libsndfile decodes.
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".caf", ".w64"}
)


class AudioFileError(DatasetError):
    """One audio file is missing or not what the dataset promises.

    ``field`` names what is wrong (``exists``, ``format``, ``samplerate``, ``channels``,
    ``length``, ``samples``) so a data check can summarise problems by kind.
    """

    def __init__(
        self, message: str, field: str = "format", affected: Sequence[str] = (), option: str | None = None
    ) -> None:
        super().__init__(message, field, affected, option)


def is_audio_file(path: Path) -> bool:
    """Whether ``path`` has an audio extension, whatever its case (``.WAV`` too)."""
    return path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")


def _reason(error: Exception, path: Path) -> str:
    """libsndfile's reason without the path it repeats (``Error opening '...': ``)."""
    text = str(error)
    for prefix in (f"Error opening {str(path)!r}: ", f"Error opening {path!r}: "):
        text = text.replace(prefix, "")
    return text.replace(str(path), "the file").strip()


#: First bytes of the formats libsndfile reads, and of what else turns up under an audio name
#: (an archive, a web page saved by a failed download, a Git LFS pointer never pulled).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"RIFF", "a WAV (RIFF) header"),
    (b"RF64", "a WAV (RF64) header"),
    (b"fLaC", "a FLAC header"),
    (b"OggS", "an Ogg header"),
    (b"ID3", "an mp3's ID3 tag"),
    (b"FORM", "an AIFF header"),
    (b".snd", "an AU header"),
    (b"caff", "a CAF header"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x1f\x8b", "gzip data"),
    (b"%PDF", "a PDF document"),
)
_TEXT_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"version https://git-lfs", "it is a Git LFS pointer, not the audio: `git lfs pull` fetches it"),
    (b"<!doctype html", "it holds an HTML page"),
    (b"<html", "it holds an HTML page"),
    (b"<?xml", "it holds an XML document"),
)


def _what_it_holds(path: Path) -> str:
    """What a file libsndfile cannot open holds, from its size and first bytes."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as err:
        return f"it cannot be read: {err.strerror}"
    if size == 0:
        return "it is empty, 0 bytes"
    text = head.lstrip().lower()
    for signature, found in _TEXT_SIGNATURES:
        if text.startswith(signature):
            return found
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return f"it starts with {name}"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "it starts with an MPEG audio frame header"
    return f"its {size} bytes start {head[:8].hex(' ')}, the header of no audio format"


def _undecodable(path: Path, error: Exception) -> AudioFileError:
    """Why libsndfile cannot open a file that exists, said from what the file holds.

    libsndfile's own text can mislead: an mp3 it cannot decode gets "File does not exist or is
    not a regular file (possibly a pipe?)", though the file is there. That text is dropped; a
    specific one ("No 'data' chunk marker") is kept after what was found.
    """
    kind = path.suffix.lower().lstrip(".") if is_audio_file(path) else "audio file"
    reason = _reason(error, path)
    said = f"; libsndfile: {reason}" if reason and "does not exist" not in reason else ""
    return AudioFileError(f"not a decodable {kind}: {path} ({_what_it_holds(path)}{said})")


def check_clip_header(
    path: Path,
    sample_rate: int | None,
    n_samples: int | None,
    mono: bool = True,
    archive: str | None = None,
) -> soundfile._SoundFileInfo:
    """Check an audio file's header (no audio read) against the expected rate, channels and length.

    ``None`` for ``sample_rate`` or ``n_samples`` accepts any; ``mono=False`` accepts any
    channel count (they are mixed down when read). ``archive`` names where missing files come from.
    """
    if path.is_dir():
        raise AudioFileError(f"{path} is a directory, not an audio file", "exists")
    if not path.is_file():
        where = f"; it is part of the {archive}" if archive else ""
        raise AudioFileError(f"audio file {path} not found{where}", "exists")
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise _undecodable(path, err) from err
    if info.frames == 0:
        raise AudioFileError(f"{path}: holds no samples (zero-length audio)", "length")
    if sample_rate is not None and info.samplerate != sample_rate:
        raise AudioFileError(
            f"{path}: sample rate {info.samplerate} Hz, expected {sample_rate} Hz", "samplerate"
        )
    if mono and info.channels != 1:
        raise AudioFileError(f"{path}: {info.channels} channels, expected mono", "channels")
    if n_samples is not None and info.frames != n_samples:
        rate = info.samplerate
        raise AudioFileError(
            f"{path}: {info.frames} samples ({info.frames / rate:.3f} s), "
            f"expected {n_samples} ({n_samples / rate:.3f} s)",
            "length",
        )
    return info


def length_disagreement(seconds: Mapping[str, float], listed: int = 10) -> str | None:
    """Which clips differ in length from most, with the counts; None when all agree.

    ``seconds`` maps each file to its length. The files named are those off the common length,
    at most ``listed`` of them: one odd clip among thousands must be found without reading a
    line per good clip.
    """
    lengths = Counter(round(value, 3) for value in seconds.values())
    if len(lengths) < 2:
        return None
    common, n_common = lengths.most_common(1)[0]
    odd = [(name, round(seconds[name], 3)) for name in off_the_common_length(seconds)]
    total, k = len(seconds), len(odd)
    more = f", ... ({k - listed} more)" if k > listed else ""
    if len(lengths) == 2:
        names = ", ".join(name for name, _ in odd[:listed])
        return (
            f"{k} of {total} clips {_are(k)} {odd[0][1]:.3f} s, the other {n_common} {_are(n_common)} "
            f"{common:.3f} s: {names}{more}"
        )
    names = ", ".join(f"{name} ({value:.3f} s)" for name, value in odd[:listed])
    return f"{k} of {total} clips differ from the other {n_common}, which are {common:.3f} s: {names}{more}"


def off_the_common_length(seconds: Mapping[str, float]) -> list[str]:
    """The files of ``seconds`` whose length (to the ms) differs from the one most files have."""
    lengths = Counter(round(value, 3) for value in seconds.values())
    if len(lengths) < 2:
        return []
    common = lengths.most_common(1)[0][0]
    return [name for name, value in seconds.items() if round(value, 3) != common]


def _are(n: int) -> str:
    return "is" if n == 1 else "are"


def read_clip(
    path: str | Path,
    sample_rate: int | None = None,
    n_samples: int | None = None,
    mono: bool = True,
    archive: str | None = None,
) -> tuple[np.ndarray, int]:
    """Decode a clip to mono float32 in [-1, 1] after checking its header; returns (audio, rate).

    Multi-channel files (allowed with ``mono=False``) are averaged to mono. A clip with NaN or
    infinite samples is refused: training on it would poison every weight it touches.
    """
    path = Path(path)
    info = check_clip_header(path, sample_rate, n_samples, mono, archive)
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise AudioFileError(f"{path}: audio data is truncated or corrupt ({_reason(err, path)})") from err
    if audio.shape[0] != info.frames:
        raise AudioFileError(
            f"{path}: decoded {audio.shape[0]} samples, header promised {info.frames}; the file is truncated"
        )
    finite = np.isfinite(audio)
    if not finite.all():
        bad = int((~finite).sum())
        raise AudioFileError(
            f"{path}: {bad} sample(s) are NaN or infinite (first at {np.argwhere(~finite)[0][0]}); "
            "replace or remove the file",
            "samples",
        )
    mixed = audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1)
    return np.ascontiguousarray(mixed), rate


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


def fit_length(waveform: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Crop the end off, or zero-pad the end of, the last axis to ``n_samples``."""
    n = waveform.shape[-1]
    if n >= n_samples:
        return waveform[..., :n_samples]
    return torch.nn.functional.pad(waveform, (0, n_samples - n))


def window_starts(n_samples: int, size: int, hop: int) -> list[int]:
    """Start samples of ``size``-sample windows every ``hop`` samples over ``n_samples``.

    A recording shorter than a window gives one window (zero-padded when read); a tail that a
    hop would miss gets one more window aligned to the end, so no sample goes unscored.
    """
    if n_samples <= size:
        return [0]
    starts = list(range(0, n_samples - size + 1, hop))
    if starts[-1] + size < n_samples:
        starts.append(n_samples - size)
    return starts


def split_windows(waveform: torch.Tensor, size: int, hop: int | None = None) -> torch.Tensor:
    """(batch, samples) -> (batch, windows, size) with ``window_starts``; short input is padded."""
    hop = size if hop is None else hop
    if waveform.shape[-1] < size:
        waveform = fit_length(waveform, size)
    starts = window_starts(waveform.shape[-1], size, hop)
    if len(starts) == 1:
        return waveform[..., None, :size]
    return torch.stack([waveform[..., s : s + size] for s in starts], dim=-2)


def to_int16(waveform: torch.Tensor) -> np.ndarray:
    """Quantise [-1, 1] float audio to int16 (scale 32767, rounded, clipped)."""
    scaled = torch.round(waveform * 32767.0).clamp_(-32768, 32767)
    return scaled.to(torch.int16).numpy()


def from_int16(samples: np.ndarray) -> torch.Tensor:
    """Inverse of ``to_int16``: int16 samples back to float32."""
    # torch's conversion and an in-place division: one new array instead of two, on every core
    return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.int16)).to(torch.float32).div_(32767.0)


def list_audio_files(folder: str | Path, recursive: bool = True) -> tuple[list[Path], list[Path]]:
    """Audio files under ``folder`` (any extension case), sorted, and the other files skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        kind = "a file" if folder.exists() else "not found"
        raise DatasetError(f"{folder} is {kind}; expected a folder of audio files")
    candidates: Iterable[Path] = folder.rglob("*") if recursive else folder.iterdir()
    audio, skipped = [], []
    for path in sorted(candidates):
        if any(part.startswith(".") for part in path.relative_to(folder).parts) or not path.is_file():
            continue
        (audio if is_audio_file(path) else skipped).append(path)
    return audio, skipped


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
            raise DatasetError(f"not a readable impulse response: {_undecodable(path, err)}") from err
        response = Resampler(rate, sample_rate)(np.ascontiguousarray(audio[:, 0]))
        energy = response.pow(2).sum().sqrt()
        if energy == 0:
            raise DatasetError(f"{path}: impulse response is all zeros")
        responses.append(response / energy)
    length = max(r.shape[0] for r in responses)
    return torch.stack([torch.nn.functional.pad(r, (0, length - r.shape[0])) for r in responses])
