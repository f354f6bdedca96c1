"""Waveform-to-log-mel front-ends for the student and the two teachers.

Each front-end turns a ``(batch, samples)`` waveform into a ``(batch, 1, mel bins, frames)``
log-mel batch on whatever device the module lives on, so feature extraction can run after the
batch is moved to the GPU. Filterbanks and windows are built once in ``__init__`` and kept as
non-persistent buffers: they follow ``.to()`` but stay out of ``state_dict()``, because
``config()`` already rebuilds them and pretrained teacher checkpoints do not contain them.

- ``StudentMel``: the CP-ResNet student's mel spectrogram, torchaudio-style or in CP-JKU's
  convention (pre-emphasis, Kaldi mel banks, symmetric window, optional band jitter and masks).
- ``PasstMel``: PaSST's ``AugmentMelSTFT`` (Kaldi mel banks, fmin/fmax jitter, masking).
- ``ASTFbank``: AST's Kaldi fbank at 16 kHz, with AudioSet normalisation.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torchaudio
from torch import Tensor, nn
from torchaudio.compliance.kaldi import get_mel_banks

from asc_kd.augmentations.spectrogram import mask_time_frequency
from asc_kd.core.errors import ConfigError

LOG_OFFSET = 1e-5
"""Added before the log in ``StudentMel`` and ``PasstMel``, as in CP-JKU's code."""

#: CP-JKU's ``AugmentMelSTFT`` (PaSST, their DCASE22/23 students) normalises log-mels as
#: ``(x + 4.5) / 5``: a fixed shift and scale, no dataset statistics, that centres them near zero.
LOG_MEL_SHIFT = 4.5
LOG_MEL_SCALE = 5.0

#: Bytes of windowed frames ``stft_power`` transforms at a time on a CPU (whole rows of the
#: leading dimension, clips for a batch and frames for one clip, at least one): a chunk's frames,
#: spectrum and power (about 2.5x this) stay in a core's L2 or L3 cache.
#: Chosen by timing the student's training front-end on a batch of 64 with 1, 2, 3, 4 and 8 MB
#: chunks and with the whole batch at once (``bench train``'s step is the measure of the effect).
STFT_CHUNK_BYTES = 2 << 20

#: Pre-emphasis coefficient, ``x[t] - 0.97 x[t-1]``: CP-JKU's ``AugmentMelSTFT`` and Kaldi's fbank
#: (AST's features) both use 0.97.
PREEMPHASIS = 0.97


def _prepare_waveform(x: Tensor, like: Tensor, owner: str) -> Tensor:
    if x.dim() != 2:
        raise ConfigError(
            f"{owner} expects a waveform batch of shape (batch, samples); got shape {tuple(x.shape)}."
        )
    return x.to(like.dtype)


def _kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: float, fmin: float, fmax: float) -> Tensor:
    """Kaldi triangular mel banks padded to the ``n_fft // 2 + 1`` rfft bins.

    ``get_mel_banks`` leaves out the Nyquist bin, so a zero column is appended.
    """
    banks, _ = get_mel_banks(n_mels, n_fft, sample_rate, fmin, fmax, 100.0, -500.0, 1.0)
    return nn.functional.pad(banks, (0, 1))


Span = tuple[int, int, int, int]


def band_spans(banks: Tensor, rows: int = 16) -> tuple[Span, ...]:
    """``(first row, end row, first bin, end bin)`` of each block of ``rows`` filters.

    Triangular mel filters are zero outside a narrow band of bins: 256 Kaldi filters over the
    1,025 bins of a 2048-point FFT have 13 % of their entries inside these blocks' spans. A
    filter block with no non-zero entry keeps a one-bin span (its output is then exactly 0).
    """
    n, bins = banks.shape
    blocks = -(-n // rows)
    used = banks.ne(0)
    if blocks * rows > n:  # the last block's missing rows as empty filters
        used = torch.cat([used, used.new_zeros(blocks * rows - n, bins)])
    used = used.view(blocks, rows, bins).any(1)  # (blocks, bins): a filter of the block uses the bin
    first = used.byte().argmax(1)  # argmax gives the first of equal maxima
    end = bins - used.flip(1).byte().argmax(1)
    empty = ~used.any(1)
    first, end = first.masked_fill(empty, 0), end.masked_fill(empty, 1)
    return tuple(
        (block * rows, min(block * rows + rows, n), c0, c1)
        for block, (c0, c1) in enumerate(torch.stack([first, end], 1).tolist())
    )


def apply_banks(banks: Tensor, spans: tuple[Span, ...], power: Tensor) -> Tensor:
    """``banks @ power`` over each block's span only (``band_spans``): equal to the dense
    product up to float rounding, at 4x less time for the student's filterbank on a CPU."""
    return torch.cat(
        [torch.matmul(banks[r0:r1, c0:c1], power[..., c0:c1, :]) for r0, r1, c0, c1 in spans], dim=-2
    )


def power_spectrum(spec: Tensor, out: Tensor | None = None) -> Tensor:
    """``|spec|^2`` as ``re^2 + im^2``: the same value as ``spec.abs().pow(2)`` up to rounding,
    without the square root (half the time on a CPU), in two passes (a square, then one fused
    multiply-add of the imaginary part into it), written into ``out`` when given."""
    return torch.mul(spec.real, spec.real, out=out).addcmul_(spec.imag, spec.imag)


def stft_power(x: Tensor, n_fft: int, hop_length: int, window: Tensor, preemphasis: float = 0.0) -> Tensor:
    """Power spectrogram ``(batch, n_fft // 2 + 1, frames)`` of a waveform batch: the centred,
    reflect-padded STFT with ``window`` (its length is the window length, centred in ``n_fft``
    when shorter), as CP-JKU's ``AugmentMelSTFT``; ``1 + samples // hop_length`` frames (for an
    even ``n_fft``; ``1 + (samples - 1) // hop_length`` for an odd one, as ``torch.stft``).
    ``preemphasis`` ``a`` first maps the waveform to ``x[t + 1] - a * x[t]`` (one sample fewer).

    The same values as ``torch.stft(..., center=True, pad_mode="reflect")`` (bit for bit on the
    CPUs tested, ``tests/models/test_frontends.py``), computed as torch.stft does it but in the
    order a CPU runs fastest: the pre-emphasis written straight into the padded buffer, the
    reflected edges copied from it, then the windowed frames, an ``rfft`` over their last,
    contiguous axis and the power, a cache-sized chunk of clips at a time (``STFT_CHUNK_BYTES``)
    on a CPU; the whole batch at once on other devices, under autograd, and in a trace or an
    export. (The chunks write through ``out=``, which forward-mode AD and ``vmap`` refuse; so
    did the pre-emphasis already.) ``torch.stft`` pads in a pass of its own, transforms the
    whole batch at once into a frequency-first layout, and its passes each go through memory,
    which takes longer on a CPU (``bench train``'s step is the measure).
    The result is a transposed view of the ``(batch, frames, bins)`` power (the mel product reads
    it as it is).
    """
    pad = n_fft // 2
    samples = x.shape[-1] - (1 if preemphasis else 0)
    if samples <= pad:
        least = pad + 1 + (1 if preemphasis else 0)
        raise ConfigError(
            f"a clip of {x.shape[-1]} samples is too short for an STFT of {n_fft} points: give at "
            f"least {least} samples"
        )
    if window.shape[-1] > n_fft:
        raise ConfigError(f"a window of {window.shape[-1]} samples is longer than the FFT's {n_fft} points")
    padded = x.new_empty(*x.shape[:-1], samples + 2 * pad)
    middle = padded[..., pad : pad + samples]
    if preemphasis and not (x.requires_grad and torch.is_grad_enabled()):
        torch.add(x[..., 1:], x[..., :-1], alpha=-preemphasis, out=middle)  # one pass
    elif preemphasis:  # autograd refuses out=: the same values through a copy
        middle.copy_(torch.add(x[..., 1:], x[..., :-1], alpha=-preemphasis))
    else:
        middle.copy_(x)
    padded[..., :pad] = padded[..., pad + 1 : 2 * pad + 1].flip(-1)  # reflect: the edge sample once
    padded[..., pad + samples :] = padded[..., samples - 1 : pad + samples - 1].flip(-1)
    if window.shape[-1] < n_fft:  # torch.stft centres a shorter window in the n_fft frame
        left = (n_fft - window.shape[-1]) // 2
        window = nn.functional.pad(window, (left, n_fft - window.shape[-1] - left))
    frames = padded.unfold(-1, n_fft, hop_length)
    whole_batch = (
        frames.device.type != "cpu"  # as before on other devices (not measured there)
        or torch.jit.is_tracing()  # a trace or an export would fix the number of chunks it saw,
        or torch.compiler.is_compiling()  # so the int8 artifact and the ONNX graph take any batch
        or (torch.is_grad_enabled() and (frames.requires_grad or window.requires_grad))  # no out=
    )
    if whole_batch:
        return power_spectrum(torch.fft.rfft(frames * window)).transpose(-1, -2)
    # On a CPU a chunk of clips at a time, so its windowed frames, their spectrum and its power
    # stay in a core's cache between those three passes instead of each pass going through memory.
    row_bytes = math.prod(frames.shape[1:]) * frames.element_size()
    rows = max(1, STFT_CHUNK_BYTES // max(row_bytes, 1))
    # the windowed frames' dtype, as the whole batch's result has it (a float64 window widens)
    dtype = torch.promote_types(frames.dtype, window.dtype)
    power = frames.new_empty(*frames.shape[:-1], n_fft // 2 + 1, dtype=dtype)
    for chunk, out in zip(frames.split(rows), power.split(rows), strict=True):
        power_spectrum(torch.fft.rfft(chunk * window), out=out)
    return power.transpose(-1, -2)


def normalize_log_mel(mel: Tensor) -> Tensor:
    """CP-JKU's fixed log-mel normalisation, ``(mel + LOG_MEL_SHIFT) / LOG_MEL_SCALE``."""
    return (mel + LOG_MEL_SHIFT) / LOG_MEL_SCALE


def centre_band(
    owner: str, sample_rate: int, fmax: float | None, fmin_aug_range: int, fmax_aug_range: int
) -> float:
    """The eval filterbank's top edge, checked so that no jittered band passes Nyquist.

    ``fmax=None`` means ``sample_rate / 2 - fmax_aug_range // 2``, CP-JKU's ``AugmentMelSTFT``
    rule: the eval band is the centre of the training jitter, so eval sees the average band
    the model trained on (15,500 Hz at 32 kHz with ``fmax_aug_range=1000``; Nyquist with 1).
    """
    for name, value in (("fmin_aug_range", fmin_aug_range), ("fmax_aug_range", fmax_aug_range)):
        if value < 1:
            raise ConfigError(f"{owner}: {name}={value} must be >= 1 (1 disables jitter).")
    nyquist = sample_rate / 2
    high = nyquist - fmax_aug_range // 2 if fmax is None else fmax
    if high + fmax_aug_range // 2 > nyquist:
        raise ConfigError(
            f"{owner}: fmax={fmax} plus fmax_aug_range // 2 = {fmax_aug_range // 2} "
            f"exceeds the Nyquist frequency {nyquist:g} Hz; lower fmax or pass fmax=None."
        )
    return high


def draw_mel_bands(
    fmin: float,
    fmax: float,
    fmin_aug_range: int,
    fmax_aug_range: int,
    n: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """``n`` jittered training bands ``(low, high)`` around the eval band ``(fmin, fmax)``.

    ``low = fmin + randint(fmin_aug_range)`` and ``high = fmax + fmax_aug_range // 2 -
    randint(fmax_aug_range)``, CP-JKU's mel-band jitter: low in ``[fmin, fmin + fmin_aug_range
    - 1]``, high in ``[fmax - (fmax_aug_range - 1) // 2, fmax + fmax_aug_range // 2]`` Hz, so
    the model cannot rely on the exact edges of its mel filters.
    """
    lows = fmin + torch.randint(fmin_aug_range, (n,), generator=generator)
    highs = fmax + fmax_aug_range // 2 - torch.randint(fmax_aug_range, (n,), generator=generator)
    return lows, highs


class FrontEnd(nn.Module):
    """Base of the front-ends: remembers its init arguments so a checkpoint can rebuild it."""

    def _remember(self, init_args: dict[str, Any]) -> None:
        self._init_args = {k: v for k, v in init_args.items() if k not in ("self", "__class__")}

    def config(self) -> dict[str, Any]:
        """Init arguments, so a checkpoint can rebuild the same front-end."""
        return dict(self._init_args)


class StudentMel(FrontEnd):
    """Log-mel spectrogram for the CP-ResNet student.

    With the defaults it equals ``log(torchaudio.transforms.MelSpectrogram(...)(x) + 1e-5)``
    followed by CP-JKU's fixed normalisation (``normalize_log_mel``).
    ``preemphasis=0.97, mel_scale="kaldi", periodic_window=False`` is CP-JKU's
    ``AugmentMelSTFT`` (their DCASE22/23 student front-end, which the Tencent systems follow):
    pre-emphasis ``x[t] - 0.97 x[t-1]`` (one sample shorter), a symmetric Hann window, Kaldi
    triangular mel banks, then the same log and normalisation. The two conventions differ by
    1.7-4 log-mel units on the same audio, so a model must be run with the one it was trained on.

    ``AugmentMelSTFT``'s training augmentations are off by default and each has its setting:
    a mel band jittered per batch (``draw_mel_bands``; a fresh filterbank per batch, as CP-JKU,
    about 3 ms on a CPU) and frequency/time masks drawn per example, filled with 0 before the
    normalisation. In eval mode the output is deterministic.

    Args:
        sample_rate: Rate of the input waveform in Hz.
        n_fft: FFT size.
        win_length: Hann window length in samples.
        hop_length: Frame shift in samples. 737 / 2048 is the reports' "36 %" hop.
        n_mels: Number of mel bins.
        fmin: Lowest filterbank frequency in Hz.
        fmax: Highest filterbank frequency in Hz in eval; ``None`` means ``sample_rate / 2 -
            fmax_aug_range // 2`` (``centre_band``): Nyquist without jitter, 15,500 Hz at
            32 kHz with CP-JKU's students' ``fmax_aug_range=1000``.
        normalize: Apply ``normalize_log_mel`` after the log.
        preemphasis: Pre-emphasis coefficient (CP-JKU: ``PREEMPHASIS``); 0 disables it.
        mel_scale: ``htk`` (torchaudio's mel filterbank) or ``kaldi`` (CP-JKU's).
        periodic_window: Periodic Hann window (torch's default) or symmetric (CP-JKU's).
        fmin_aug_range: Training fmin is ``fmin + randint(fmin_aug_range)``; 1 disables it.
        fmax_aug_range: Training fmax is ``fmax + fmax_aug_range // 2 -
            randint(fmax_aug_range)``; 1 disables it.
        freqm: Largest frequency mask in mel bins (training only); 0 disables it.
        timem: Largest time mask in frames (training only); 0 disables it.
    """

    def __init__(
        self,
        sample_rate: int = 32000,
        n_fft: int = 2048,
        win_length: int = 2048,
        hop_length: int = 737,
        n_mels: int = 256,
        fmin: float = 0.0,
        fmax: float | None = None,
        normalize: bool = True,
        preemphasis: float = 0.0,
        mel_scale: Literal["htk", "kaldi"] = "htk",
        periodic_window: bool = True,
        fmin_aug_range: int = 1,
        fmax_aug_range: int = 1,
        freqm: int = 0,
        timem: int = 0,
    ) -> None:
        super().__init__()
        self._remember(locals())
        if mel_scale not in ("htk", "kaldi"):
            raise ConfigError(f"StudentMel: mel_scale must be 'htk' or 'kaldi', got {mel_scale!r}")
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.fmin = fmin
        self.fmax = centre_band(type(self).__name__, sample_rate, fmax, fmin_aug_range, fmax_aug_range)
        self.normalize = normalize
        self.preemphasis = preemphasis
        self.mel_scale = mel_scale
        self.fmin_aug_range = fmin_aug_range
        self.fmax_aug_range = fmax_aug_range
        self.freqm = freqm
        self.timem = timem
        mel_fb = self.filterbank(fmin, self.fmax)
        window = torch.hann_window(win_length, periodic=periodic_window)
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("mel_fb", mel_fb, persistent=False)
        self.spans = band_spans(mel_fb)

    def filterbank(self, low: float, high: float) -> Tensor:
        """The ``(n_mels, n_fft // 2 + 1)`` mel filterbank from ``low`` to ``high`` Hz."""
        if self.mel_scale == "kaldi":
            return _kaldi_mel_banks(self.n_mels, self.n_fft, self.sample_rate, low, high)
        return torchaudio.functional.melscale_fbanks(
            n_freqs=self.n_fft // 2 + 1,
            f_min=low,
            f_max=high,
            n_mels=self.n_mels,
            sample_rate=self.sample_rate,
            mel_scale="htk",
        ).T.contiguous()

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(batch, samples)`` to ``(batch, 1, n_mels, frames)``.

        The centred STFT yields ``1 + samples // hop_length`` frames: a 1-s clip at 32 kHz
        gives 1 + 32000 // 737 = 1 + 43 = 44 frames (1 + 31999 // 737 = 44 with pre-emphasis).
        """
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = _prepare_waveform(x, self.window, type(self).__name__)
            power = stft_power(x, self.n_fft, self.hop_length, self.window, self.preemphasis)
            mel_fb, spans = self.mel_fb, self.spans
            if self.training and (self.fmin_aug_range > 1 or self.fmax_aug_range > 1):
                lows, highs = draw_mel_bands(self.fmin, self.fmax, self.fmin_aug_range, self.fmax_aug_range)
                mel_fb = self.filterbank(float(lows[0]), float(highs[0])).to(self.mel_fb)
                spans = band_spans(mel_fb)
            mel = torch.log(apply_banks(mel_fb, spans, power) + LOG_OFFSET).unsqueeze(1)
        if self.training:
            mel = mask_time_frequency(mel, self.freqm, self.timem)
        return normalize_log_mel(mel) if self.normalize else mel


class PasstMel(FrontEnd):
    """PaSST's log-mel front-end (``AugmentMelSTFT`` in hear21passt), with its augmentation.

    In training mode the filterbank's fmin/fmax are jittered and frequency and time masks are
    drawn per example; in eval mode the output is deterministic. The original rebuilds a
    jittered filterbank every batch; here ``n_jitter`` jittered filterbanks
    (``draw_mel_bands``) are drawn once, with a fixed seed so ``config()`` rebuilds the same
    ones, and one is picked per batch (``StudentMel`` draws a fresh band per batch instead, as
    CP-JKU's students did).

    Args:
        sample_rate: Rate of the input waveform in Hz.
        n_fft: FFT size.
        win_length: Hann window length in samples.
        hop_length: Frame shift in samples.
        n_mels: Number of Kaldi mel bins.
        fmin: Lowest filterbank frequency in Hz.
        fmax: Highest filterbank frequency in Hz. ``None`` means
            ``sample_rate / 2 - fmax_aug_range // 2`` (``centre_band``), as in PaSST, so the
            jittered fmax never passes Nyquist (15000 Hz with the defaults, which pretrained
            PaSST saw).
        fmin_aug_range: Training fmin is ``fmin + randint(fmin_aug_range)``; 1 disables it.
        fmax_aug_range: Training fmax is ``fmax + fmax_aug_range // 2 -
            randint(fmax_aug_range)``; 1 disables it.
        freqm: Largest frequency mask in mel bins; 0 disables it.
        timem: Largest time mask in frames; 0 disables it. PaSST's 192 was made for 10-s
            AudioSet clips of 1,000 frames.
        max_time_mask_fraction: A time mask never exceeds this share of the clip's frames, so
            ``timem`` fits any clip length: 192 frames on 10-s clips, 20 on 1-s clips
            (CP-JKU's DCASE22 teacher setting); about 10 % of a clip is masked on average.
        n_jitter: Number of jittered filterbanks precomputed for training.
    """

    def __init__(
        self,
        sample_rate: int = 32000,
        n_fft: int = 1024,
        win_length: int = 800,
        hop_length: int = 320,
        n_mels: int = 128,
        fmin: float = 0.0,
        fmax: float | None = None,
        fmin_aug_range: int = 10,
        fmax_aug_range: int = 2000,
        freqm: int = 48,
        timem: int = 192,
        max_time_mask_fraction: float = 0.2,
        n_jitter: int = 16,
    ) -> None:
        super().__init__()
        self._remember(locals())
        if n_jitter < 1:
            raise ConfigError(f"PasstMel: n_jitter={n_jitter} must be >= 1.")
        eval_fmax = centre_band(type(self).__name__, sample_rate, fmax, fmin_aug_range, fmax_aug_range)
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.fmin = fmin
        self.fmax = fmax
        self.fmin_aug_range = fmin_aug_range
        self.fmax_aug_range = fmax_aug_range
        self.freqm = freqm
        self.timem = timem
        if not 0.0 < max_time_mask_fraction <= 1.0:
            raise ConfigError(f"PasstMel: max_time_mask_fraction={max_time_mask_fraction} must lie in (0, 1]")
        self.max_time_mask_fraction = max_time_mask_fraction
        self.n_jitter = n_jitter

        generator = torch.Generator().manual_seed(0)
        fmins, fmaxs = draw_mel_bands(fmin, eval_fmax, fmin_aug_range, fmax_aug_range, n_jitter, generator)
        jittered = [
            _kaldi_mel_banks(n_mels, n_fft, sample_rate, float(low), float(high))
            for low, high in zip(fmins, fmaxs, strict=True)
        ]
        # PaSST uses a symmetric Hann window, unlike torch's periodic default.
        window = torch.hann_window(win_length, periodic=False)
        self.register_buffer("window", window, persistent=False)
        self.register_buffer(
            "mel_fb",
            _kaldi_mel_banks(n_mels, n_fft, sample_rate, fmin, eval_fmax),
            persistent=False,
        )
        self.register_buffer("jittered_mel_fb", torch.stack(jittered), persistent=False)
        self.spans = band_spans(self.mel_fb)
        self.jittered_spans = [band_spans(banks) for banks in jittered]

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(batch, samples)`` to ``(batch, 1, n_mels, frames)``.

        The pre-emphasis drops one sample, so a 1-s clip at 32 kHz gives
        1 + 31999 // 320 = 100 frames (1000 for 10 s), as in PaSST.
        """
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = _prepare_waveform(x, self.window, type(self).__name__)
            power = stft_power(x, self.n_fft, self.hop_length, self.window, PREEMPHASIS)
            if self.training:
                pick = int(torch.randint(self.n_jitter, ()))
                mel_fb, spans = self.jittered_mel_fb[pick], self.jittered_spans[pick]
            else:
                mel_fb, spans = self.mel_fb, self.spans
            mel = torch.log(apply_banks(mel_fb, spans, power) + LOG_OFFSET).unsqueeze(1)
        if self.training:
            # Masks fill with 0 before normalisation, so masked bins read 0.9 afterwards.
            mel = mask_time_frequency(mel, self.freqm, self.timem, self.max_time_mask_fraction)
        return normalize_log_mel(mel)


class ASTFbank(FrontEnd):
    """AST's input features: Kaldi fbank of 16 kHz audio with AudioSet normalisation.

    A batched version of ``torchaudio.compliance.kaldi.fbank(wave, htk_compat=True,
    sample_frequency=16000, use_energy=False, window_type="hanning", num_mel_bins=128,
    dither=0.0, frame_shift=10, frame_length=25)``, preceded by resampling because the data
    cache holds audio at ``sample_rate``. AST's loader also subtracts each clip's mean;
    the per-frame DC removal makes that a no-op, so it is not repeated. Normalisation is
    ``(fbank - mean) / (2 * std)``: AST divides by twice the AudioSet std.

    Args:
        sample_rate: Rate of the input waveform in Hz; resampled to 16 kHz inside.
        n_mels: Number of Kaldi mel bins.
        target_length: Pad (with zero fbank values, before normalisation, as AST does) or crop
            to this many frames; ``None`` keeps ``1 + (samples_16k - 400) // 160`` frames.
        mean: AudioSet fbank mean from AST.
        std: AudioSet fbank standard deviation from AST.
    """

    fbank_sample_rate = 16000
    frame_length = 400  # 25 ms at 16 kHz
    frame_shift = 160  # 10 ms at 16 kHz
    n_fft = 512  # frame length rounded up to a power of two, as Kaldi does

    def __init__(
        self,
        sample_rate: int = 32000,
        n_mels: int = 128,
        target_length: int | None = None,
        mean: float = -4.2677393,
        std: float = 4.5689974,
    ) -> None:
        super().__init__()
        self._remember(locals())
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.target_length = target_length
        self.mean = mean
        self.std = std
        self.resample = torchaudio.transforms.Resample(sample_rate, self.fbank_sample_rate)
        if hasattr(self.resample, "kernel"):  # absent when no resampling is needed
            # Re-register as non-persistent so state_dict() holds no derived tensors.
            self.resample.register_buffer("kernel", self.resample.kernel, persistent=False)
        window = torch.hann_window(self.frame_length, periodic=False)
        mel_fb = _kaldi_mel_banks(n_mels, self.n_fft, self.fbank_sample_rate, 20.0, 0.0)
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("mel_fb", mel_fb, persistent=False)
        self.spans = band_spans(mel_fb)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(batch, samples)`` at ``sample_rate`` to ``(batch, 1, n_mels, frames)``."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = self.resample(_prepare_waveform(x, self.window, type(self).__name__))
            if x.shape[-1] < self.frame_length:
                raise ConfigError(
                    f"ASTFbank needs at least {self.frame_length} samples at 16 kHz for one "
                    f"frame; got {x.shape[-1]} after resampling."
                )
            frames = x.unfold(-1, self.frame_length, self.frame_shift)
            frames = frames - frames.mean(dim=-1, keepdim=True)
            # Kaldi's pre-emphasis treats the sample before each frame's first as itself.
            previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
            frames = (frames - PREEMPHASIS * previous) * self.window
            spec = power_spectrum(torch.fft.rfft(frames, n=self.n_fft))
            fbank = apply_banks(self.mel_fb, self.spans, spec.transpose(-1, -2))
            fbank = fbank.clamp_min(torch.finfo(torch.float32).eps).log()
        if self.target_length is not None:
            n_frames = fbank.shape[-1]
            if n_frames < self.target_length:
                fbank = nn.functional.pad(fbank, (0, self.target_length - n_frames))
            else:
                fbank = fbank[..., : self.target_length]
        return ((fbank - self.mean) / (2 * self.std)).unsqueeze(1)


#: Front-ends by name, so a task's config (and checkpoint) names its front-end in plain data.
FRONTENDS: dict[str, type[nn.Module]] = {
    "student_mel": StudentMel,
    "passt_mel": PasstMel,
    "ast_fbank": ASTFbank,
}


def get_frontend(name: str, **kwargs: Any) -> nn.Module:
    """Build the front-end registered as ``name`` with keyword overrides."""
    if name not in FRONTENDS:
        raise ConfigError(f"unknown front-end {name!r}; choose one of {', '.join(sorted(FRONTENDS))}")
    return FRONTENDS[name](**kwargs)
