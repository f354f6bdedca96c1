"""Augmentations, in the order they run on a training batch.

1. Waveform, in ``SceneDataModule.on_after_batch_transfer`` on the device: time roll and
   device impulse responses (``waveform``).
2. Batch mixing, in the ``Mixup`` callback: waveforms and labels (``mixing``); precomputed
   teacher logits are mixed to match by the distillation task (``mix_teacher_logits``).
3. Spectrogram, after the task's front-end: frequency/time masks inside ``PasstMel`` and
   Freq-MixStyle on the model's input (``spectrogram``), attached by ``attach_to_input``.
"""

from asc_kd.augmentations.hooks import InputAugmentation, attach_to_input
from asc_kd.augmentations.mixing import Mixup, mix_teacher_logits, mixup
from asc_kd.augmentations.spectrogram import FreqMixStyle, freq_mixstyle, mask_time_frequency
from asc_kd.augmentations.waveform import convolve_impulse_responses, time_roll

__all__ = [
    "FreqMixStyle",
    "InputAugmentation",
    "Mixup",
    "attach_to_input",
    "convolve_impulse_responses",
    "freq_mixstyle",
    "mask_time_frequency",
    "mix_teacher_logits",
    "mixup",
    "time_roll",
]
