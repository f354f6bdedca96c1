"""Real Lightning checkpoints of tiny tasks in about a second, without a dataset.

Two optimiser steps on fixed random waveforms change the weights and the batch-norm
statistics, so a checkpoint differs from a freshly built model of the same name. Every class
appears in the labels: a class never seen keeps the same zero-initialised head row as another
unseen one in CP-ResNet, and exactly tied logits make top-1 comparisons meaningless.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import torch
from fit_helpers import make_cpu_trainer
from torch.utils.data import DataLoader

from asc_kd.tasks import ClassificationTask


def fixed_waveforms(n: int = 3, seed: int = 7, samples: int = 32_000) -> torch.Tensor:
    """``n`` clips of quiet noise, the same on every call."""
    return 0.1 * torch.randn(n, samples, generator=torch.Generator().manual_seed(seed))


def fit_checkpoint(task: ClassificationTask, path: Path, steps: int = 2) -> Path:
    """Fit ``task`` for ``steps`` batches of labelled noise (with teacher logits) and save it."""
    generator = torch.Generator().manual_seed(0)
    samples = task.frontend.sample_rate
    clips = [
        {
            "waveform": 0.1 * torch.randn(samples, generator=generator),
            "target": torch.tensor(i % len(task.classes)),
            "teacher_logits": torch.randn(len(task.classes), generator=generator),
        }
        for i in range(5 * steps)
    ]
    L.seed_everything(0, verbose=False)
    trainer = make_cpu_trainer(path.parent, max_steps=steps, limit_val_batches=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "You defined a `validation_step` but have no `val_dataloader`")
        trainer.fit(task, train_dataloaders=DataLoader(clips, batch_size=5))
    trainer.save_checkpoint(path)
    return path


def eval_logits(task: ClassificationTask, waveform: torch.Tensor | None = None) -> torch.Tensor:
    """Logits of ``task`` in eval mode on ``waveform`` (default: ``fixed_waveforms()``)."""
    task.eval()
    with torch.no_grad():
        return task(fixed_waveforms() if waveform is None else waveform)
