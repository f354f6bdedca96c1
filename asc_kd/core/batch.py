"""What a batch holds, for every DataModule, augmentation and task of asc_kd.

A batch is a ``dict[str, Tensor]``:

- ``waveform`` (B, samples) float32 at the DataModule's ``sample_rate``;
- ``target`` (B,) int64 class index, -1 where unknown (unlabelled files);
- ``device`` (B,) int64 device index in the spec's ``devices``, -1 where unknown;
- ``index`` (B,) int64 position of the example in its dataset;
- ``teacher_logits`` (B, classes) when a teacher-logits file is given;

and, after ``Mixup``, ``soft_target`` (B, classes) mixed one-hot labels, ``mix_lambda`` (B,)
and ``mix_permutation`` (B,) (the partner of each example).
"""

from __future__ import annotations

import torch

Batch = dict[str, torch.Tensor]
