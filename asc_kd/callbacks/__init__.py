"""Callbacks: checkpoint selection, complexity check, learning-rate log, int8 export; Mixup and
Freq-MixStyle (which live with the other augmentations in ``asc_kd.augmentations``)."""

from asc_kd.augmentations.mixing import Mixup
from asc_kd.augmentations.spectrogram import FreqMixStyle
from asc_kd.callbacks.checkpoint_selection import CheckpointSelection
from asc_kd.callbacks.complexity_check import ComplexityCheck
from asc_kd.callbacks.int8_export import QuantizationExport
from asc_kd.callbacks.learning_rate import LearningRateLog

__all__ = [
    "CheckpointSelection",
    "ComplexityCheck",
    "FreqMixStyle",
    "LearningRateLog",
    "Mixup",
    "QuantizationExport",
]
