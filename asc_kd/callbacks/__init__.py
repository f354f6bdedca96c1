"""Callbacks: waveform Mixup, Freq-MixStyle, complexity logging."""

from asc_kd.callbacks.complexity import Complexity
from asc_kd.callbacks.mixstyle import FreqMixStyle, freq_mixstyle
from asc_kd.callbacks.mixup import Mixup, mixup

__all__ = ["Complexity", "FreqMixStyle", "Mixup", "freq_mixstyle", "mixup"]
