"""Callbacks: waveform Mixup, Freq-MixStyle, complexity logging, int8 export, checkpoints."""

from asc_kd.callbacks.checkpoint import Checkpoint
from asc_kd.callbacks.complexity import Complexity
from asc_kd.callbacks.mixstyle import FreqMixStyle, freq_mixstyle
from asc_kd.callbacks.mixup import Mixup, mixup
from asc_kd.callbacks.quantization import QuantizationExport

__all__ = [
    "Checkpoint",
    "Complexity",
    "FreqMixStyle",
    "Mixup",
    "QuantizationExport",
    "freq_mixstyle",
    "mixup",
]
