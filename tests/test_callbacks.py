"""Mixup, Freq-MixStyle and the complexity callback: the pure functions and their wiring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import Logger
from torch.utils.data import DataLoader, Dataset

from asc_kd.callbacks import Complexity, FreqMixStyle, Mixup, freq_mixstyle, mixup
from asc_kd.complexity import MAX_MACS, ComplexityError, count_complexity
from asc_kd.models import get_model
from asc_kd.tasks import ClassificationTask

# -- Mixup --------------------------------------------------------------------------------------


def _batch(n: int = 6) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {
        "waveform": torch.randn(n, 100, generator=generator),
        "target": torch.tensor([0, 1, 2, 3, 9, 5])[:n],
        "device": torch.arange(n),
        "teacher_logits": torch.randn(n, 10, generator=generator),
    }


def _mixed(alpha: float = 0.3, seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    batch = _batch()
    torch.manual_seed(seed)
    return batch, mixup(batch, alpha, n_classes=10)


def test_mixup_mixes_waveform_with_returned_lambda_and_permutation() -> None:
    batch, out = _mixed()
    lam, perm = out["mix_lambda"], out["mix_permutation"]
    assert lam.shape == (6,) and ((lam >= 0) & (lam <= 1)).all()
    assert sorted(perm.tolist()) == list(range(6))
    x = batch["waveform"]
    expected = lam[:, None] * x + (1 - lam[:, None]) * x[perm]
    torch.testing.assert_close(out["waveform"], expected)
    assert not torch.equal(out["waveform"], x)


def test_mixup_soft_targets_and_teacher_logits() -> None:
    batch, out = _mixed()
    lam, perm = out["mix_lambda"][:, None], out["mix_permutation"]
    one_hot = F.one_hot(batch["target"], 10).float()
    torch.testing.assert_close(out["soft_target"], lam * one_hot + (1 - lam) * one_hot[perm])
    torch.testing.assert_close(out["soft_target"].sum(1), torch.ones(6))
    logits = batch["teacher_logits"]
    torch.testing.assert_close(out["teacher_logits"], lam * logits + (1 - lam) * logits[perm])
    assert torch.equal(out["device"], batch["device"])


def test_mixup_leaves_the_input_batch_alone() -> None:
    batch = _batch()
    original = {key: value.clone() for key, value in batch.items()}
    torch.manual_seed(0)
    mixup(batch, 0.3, n_classes=10)
    assert batch.keys() == original.keys()
    for key, value in original.items():
        assert torch.equal(batch[key], value), key


def test_mixup_is_reproducible_under_a_seed() -> None:
    _, first = _mixed(seed=3)
    _, second = _mixed(seed=3)
    for key in ("waveform", "soft_target", "mix_lambda", "mix_permutation", "teacher_logits"):
        assert torch.equal(first[key], second[key]), key


def test_mixup_of_a_batch_without_teacher_logits() -> None:
    batch = _batch()
    del batch["teacher_logits"]
    torch.manual_seed(0)
    out = mixup(batch, 0.3, n_classes=10)
    assert "teacher_logits" not in out
    assert out["soft_target"].shape == (6, 10)


def test_mixup_target_is_the_dominant_label() -> None:
    batch, out = _mixed(seed=0)
    lam, perm = out["mix_lambda"], out["mix_permutation"]
    assert ((lam < 0.5) & (batch["target"] != batch["target"][perm])).any()  # the case exists
    dominant = torch.where(lam >= 0.5, batch["target"], batch["target"][perm])
    assert torch.equal(out["target"], dominant)


def test_mixup_callback_respects_p() -> None:
    torch.manual_seed(0)
    batch = _batch()
    original = dict(batch)
    Mixup(alpha=0.3, p=0.0).on_train_batch_start(None, None, batch, 0)
    assert batch.keys() == original.keys()
    assert all(batch[key] is value for key, value in original.items())
    Mixup(alpha=0.3, p=1.0).on_train_batch_start(None, None, batch, 0)
    assert {"soft_target", "mix_lambda", "mix_permutation"} <= batch.keys()


def test_mixup_callback_refuses_bad_alpha() -> None:
    with pytest.raises(ValueError, match="alpha"):
        Mixup(alpha=0.0)


# -- Freq-MixStyle ------------------------------------------------------------------------------


def _spectrograms(n: int = 6) -> torch.Tensor:
    """(n, 2, 8, 50) float64 with a different mean and spread per example and frequency bin."""
    generator = torch.Generator().manual_seed(2)
    offset = 3 * torch.randn(n, 1, 8, 1, generator=generator, dtype=torch.float64)
    scale = torch.rand(n, 1, 8, 1, generator=generator, dtype=torch.float64) + 0.5
    return torch.randn(n, 2, 8, 50, generator=generator, dtype=torch.float64) * scale + offset


def _per_bin_normalised(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(dim=(1, 3), keepdim=True)) / x.std(dim=(1, 3), keepdim=True)


def test_freq_mixstyle_output_has_the_mixed_statistics() -> None:
    x, alpha, eps = _spectrograms(), 0.3, 1e-6
    torch.manual_seed(0)
    out = freq_mixstyle(x, alpha, eps)
    # Replay freq_mixstyle's draws (lambda first, then the permutation) from the same seed.
    torch.manual_seed(0)
    lam = torch.distributions.Beta(alpha, alpha).sample((6, 1, 1, 1)).double()
    perm = torch.randperm(6)
    assert not torch.equal(perm, torch.arange(6))
    mean = x.mean(dim=(1, 3), keepdim=True)
    std = (x.var(dim=(1, 3), keepdim=True) + eps).sqrt()
    expected_mean = lam * mean + (1 - lam) * mean[perm]
    expected_std = lam * std + (1 - lam) * std[perm]
    torch.testing.assert_close(out.mean(dim=(1, 3), keepdim=True), expected_mean, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out.std(dim=(1, 3), keepdim=True), expected_std, rtol=1e-5, atol=0)
    assert not torch.allclose(expected_mean, mean, atol=1e-2)  # the style did change


def test_freq_mixstyle_preserves_content() -> None:
    x = _spectrograms()
    torch.manual_seed(0)
    out = freq_mixstyle(x, 0.3)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(_per_bin_normalised(out), _per_bin_normalised(x), rtol=0, atol=1e-5)


def test_freq_mixstyle_of_a_single_clip_is_identity() -> None:
    x = _spectrograms(1)
    torch.manual_seed(0)
    torch.testing.assert_close(freq_mixstyle(x, 0.3), x, rtol=0, atol=1e-5)


def _task() -> ClassificationTask:
    torch.manual_seed(0)
    return ClassificationTask(model="debug")


def test_freq_mixstyle_hook_acts_only_in_training() -> None:
    task = _task()
    callback = FreqMixStyle(alpha=0.3, p=1.0)
    x = torch.randn(4, 1, 256, 44, generator=torch.Generator().manual_seed(4))
    task.model.eval()
    with torch.no_grad():
        clean = task.model(x)
    callback.on_fit_start(None, task)
    assert len(task.model._forward_pre_hooks) == 1
    seen: list[torch.Tensor] = []
    probe = task.model.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    with torch.no_grad():
        assert torch.equal(task.model(x), clean)  # eval: untouched
        assert seen[-1] is x
        task.model.train()
        task.model(x)
        assert not torch.allclose(seen[-1], x)  # training: restyled
    probe.remove()
    callback.on_fit_end(None, task)
    assert len(task.model._forward_pre_hooks) == 0


def test_freq_mixstyle_hook_respects_p() -> None:
    task = _task().train()
    callback = FreqMixStyle(alpha=0.3, p=0.0)
    callback.on_fit_start(None, task)
    x = torch.randn(4, 1, 256, 44)
    assert callback._hook(task.model, (x,)) is None
    callback.on_exception(None, task, RuntimeError("stop"))
    assert len(task.model._forward_pre_hooks) == 0


# -- in a real fit ------------------------------------------------------------------------------


class _Waveforms(Dataset):
    """Eight random 1-s clips with labels: enough for a one-step fit, no dataset on disk."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(5)
        self.waveform = 0.1 * torch.randn(8, 32_000, generator=generator)

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"waveform": self.waveform[i], "target": torch.tensor(i % 10), "device": torch.tensor(0)}


class _HyperparamLogger(Logger):
    """Keeps what ``log_hyperparams`` receives."""

    def __init__(self) -> None:
        super().__init__()
        self.hyperparams: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return "capture"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(params, dict):
            self.hyperparams.update(params)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass


class _HookProbe(L.Callback):
    def __init__(self) -> None:
        self.hooks_in_training: list[int] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self.hooks_in_training.append(len(pl_module.model._forward_pre_hooks))


def _fit(
    task: ClassificationTask, callbacks: list[L.Callback], tmp_path: Path, **trainer_kw: Any
) -> L.Trainer:
    trainer = L.Trainer(
        max_steps=1,
        limit_val_batches=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=tmp_path,
        callbacks=callbacks,
        **trainer_kw,
    )
    trainer.fit(task, train_dataloaders=DataLoader(_Waveforms(), batch_size=4))
    return trainer


def test_fit_attaches_and_removes_freq_mixstyle(tmp_path: Path) -> None:
    task, probe = _task(), _HookProbe()
    _fit(task, [FreqMixStyle(p=1.0), probe], tmp_path, logger=False)
    assert probe.hooks_in_training == [1]
    assert len(task.model._forward_pre_hooks) == 0


def test_complexity_callback_logs_to_the_logger(tmp_path: Path) -> None:
    task, logger, callback = _task(), _HyperparamLogger(), Complexity()
    _fit(task, [callback], tmp_path, logger=logger)
    expected = count_complexity(get_model("debug"), (1, 1, 256, 44)).summary()
    assert callback.result is not None and callback.result.summary() == expected
    assert {k: logger.hyperparams[f"complexity/{k}"] for k in expected} == expected
    assert logger.hyperparams["complexity/input_shape"] == [1, 1, 256, 44]


def test_complexity_callback_stops_a_model_over_the_limits(tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = ClassificationTask(model="debug", model_kwargs={"width": 64})  # 53.5 M MACs
    probe = _HookProbe()
    with pytest.raises(ComplexityError, match="MACs"):
        _fit(task, [FreqMixStyle(p=1.0), Complexity(), probe], tmp_path, logger=False)
    assert probe.hooks_in_training == []  # refused before the first step
    assert len(task.model._forward_pre_hooks) == 0  # and Freq-MixStyle cleaned up after itself


def test_complexity_callback_allows_over_limits_when_asked(tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = ClassificationTask(model="debug", model_kwargs={"width": 64})
    callback = Complexity(allow_over_limits=True)
    trainer = _fit(task, [callback], tmp_path, logger=False)
    assert trainer.global_step == 1
    assert callback.result is not None and callback.result.macs > MAX_MACS
