"""When the learning rate changes over a real fit: after every optimiser step, by the fraction
of the epoch done, warm-up included (not once per epoch, not by batches when gradients are
accumulated).

8 clips in batches of 2 are 4 batches per epoch; 2 epochs; lr 0.1; 1 epoch of linear warm-up,
then cosine to 0 over the second epoch. ``lr_factor``'s warm-up is ``(epoch + 0.001) / 1``.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
from fit_helpers import fit_on_noise, make_cpu_trainer

from asc_kd.tasks import ClassificationTask

#: A small front-end: the schedule is the point here, not the features.
SMALL_FRONTEND = {"n_fft": 512, "win_length": 512, "hop_length": 1024, "n_mels": 32}


class _RecordLearningRate(L.Callback):
    def __init__(self) -> None:
        self.seen: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        self.seen.append(trainer.optimizers[0].param_groups[0]["lr"])


def _fit(tmp_path: Path, **trainer: object) -> list[float]:
    L.seed_everything(0, verbose=False)
    task = ClassificationTask(
        model="debug", lr=0.1, schedule="cosine", warmup_epochs=1.0, frontend_kwargs=SMALL_FRONTEND
    )
    record = _RecordLearningRate()
    fit_on_noise(task, make_cpu_trainer(tmp_path, max_epochs=2, callbacks=[record], **trainer), batch_size=2)
    return record.seen


def test_the_rate_moves_after_every_step_warm_up_included(tmp_path: Path) -> None:
    expected = [
        0.1 * 0.001,  # step 0: epoch 0
        0.1 * 0.251,  # step 1: epoch 0.25
        0.1 * 0.501,
        0.1 * 0.751,
        0.1,  # step 4: epoch 1, warm-up over, cosine at its start
        0.1 * 0.5 * (1 + math.cos(math.pi / 4)),  # 0.0853553
        0.1 * 0.5,
        0.1 * 0.5 * (1 + math.cos(3 * math.pi / 4)),  # 0.0146447
    ]
    assert _fit(tmp_path) == pytest.approx(expected, rel=1e-6)


def test_with_accumulated_gradients_the_rate_moves_per_optimiser_step(tmp_path: Path) -> None:
    # Two batches per optimiser step: 2 steps per epoch, each half an epoch; every rate is
    # seen by the two batches of one step.
    per_step = [0.1 * 0.001, 0.1 * 0.501, 0.1, 0.1 * 0.5]
    expected = [rate for rate in per_step for _ in range(2)]
    assert _fit(tmp_path, accumulate_grad_batches=2) == pytest.approx(expected, rel=1e-6)
