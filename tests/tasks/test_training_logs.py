"""What a training step logs, and when: each loss term's epoch mean weighted by clips, and the
step values only on the steps the loggers write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from fit_helpers import fit_on_noise, make_cpu_trainer

from asc_kd.augmentations.spectrogram import freq_mixstyle, unbiased_var
from asc_kd.data.tau import TAU22
from asc_kd.tasks import ClassificationTask


class StepRecorder(L.Callback):
    """Each step's loss and batch size."""

    def __init__(self) -> None:
        self.losses: list[tuple[float, int]] = []

    def on_train_batch_end(
        self, trainer: L.Trainer, module: Any, outputs: Any, batch: Any, *args: Any
    ) -> None:
        self.losses.append((float(outputs["loss"]), len(batch["waveform"])))


class RecordingTask(ClassificationTask):
    """Notes the step of every ``log_dict`` call of step values."""

    def log_dict(self, dictionary: Any, *args: Any, **kwargs: Any) -> None:
        if any(key.endswith("_step") for key in dictionary):
            self.step_logs.append(self.global_step)
        super().log_dict(dictionary, *args, **kwargs)


def test_the_epoch_mean_weighs_each_step_by_its_clips_and_step_values_follow_the_loggers(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    task = RecordingTask(model="debug", spec=TAU22, lr=1e-3)
    task.step_logs = []
    recorder = StepRecorder()
    trainer = make_cpu_trainer(tmp_path, max_epochs=1, log_every_n_steps=2, callbacks=[recorder])
    fit_on_noise(task, trainer, clips=11, batch_size=4)  # batches of 4, 4 and 3 clips
    assert [size for _, size in recorder.losses] == [4, 4, 3]
    expected = sum(loss * size for loss, size in recorder.losses) / 11
    assert float(trainer.callback_metrics["train/loss"]) == pytest.approx(expected, rel=1e-6)
    assert task.step_logs == [1]  # the 2nd step of 3, the one the loggers write


def test_unbiased_var_is_torchs_var() -> None:
    x = torch.randn(6, 2, 16, 9, generator=torch.Generator().manual_seed(0))
    mean = x.mean(dim=(1, 3), keepdim=True)
    torch.testing.assert_close(unbiased_var(x, mean, (1, 3)), x.var(dim=(1, 3), keepdim=True))


def test_freq_mixstyle_equals_its_definition_written_out() -> None:
    x = 3 * torch.randn(5, 1, 8, 7, generator=torch.Generator().manual_seed(1)) + 1
    torch.manual_seed(2)
    out = freq_mixstyle(x, 0.4)
    torch.manual_seed(2)
    lam = torch.distributions.Beta(0.4, 0.4).sample((5, 1, 1, 1))
    perm = torch.randperm(5)
    mean, std = x.mean(dim=(1, 3), keepdim=True), (x.var(dim=(1, 3), keepdim=True) + 1e-6).sqrt()
    expected = (x - mean) / std * (lam * std + (1 - lam) * std[perm]) + lam * mean + (1 - lam) * mean[perm]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
