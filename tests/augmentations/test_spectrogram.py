"""Spectrogram augmentations: Freq-MixStyle (function and hook) and the frequency/time masks."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
from fit_helpers import fit_on_noise
from torchaudio.functional import mask_along_axis_iid

from asc_kd.augmentations import FreqMixStyle, freq_mixstyle, mask_time_frequency
from asc_kd.augmentations.spectrogram import mask_along_axis
from asc_kd.tasks import ClassificationTask

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
    assert callback.transform(x) is x
    callback.on_exception(None, task, RuntimeError("stop"))
    assert len(task.model._forward_pre_hooks) == 0


class _HookProbe(L.Callback):
    def __init__(self) -> None:
        self.hooks_in_training: list[int] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self.hooks_in_training.append(len(pl_module.model._forward_pre_hooks))


def test_fit_attaches_and_removes_freq_mixstyle(cpu_trainer) -> None:
    task, probe = _task(), _HookProbe()
    fit_on_noise(task, cpu_trainer(max_steps=1, limit_val_batches=0, callbacks=[FreqMixStyle(p=1.0), probe]))
    assert probe.hooks_in_training == [1]
    assert len(task.model._forward_pre_hooks) == 0


# -- masks --------------------------------------------------------------------------------------


def _masked_columns(spec: torch.Tensor) -> torch.Tensor:
    """Share of time columns of each example that are entirely zero (time-masked)."""
    return (spec == 0).all(dim=-2).float().mean(-1).flatten()


def test_time_masks_never_exceed_their_share_of_the_clip() -> None:
    torch.manual_seed(0)
    spec = torch.randn(500, 1, 128, 100) + 5.0  # never exactly zero
    masked = mask_time_frequency(spec, freq_mask=0, time_mask=192, max_time_fraction=0.2)
    share = _masked_columns(masked)
    assert share.max() <= 0.2 and 0.07 < share.mean() < 0.12  # U(0, 20) frames of 100
    unbounded = mask_time_frequency(spec, 0, 192, max_time_fraction=1.0)
    assert _masked_columns(unbounded).mean() > 0.5  # PaSST's 192 frames on a 1-s clip


def test_frequency_masks_blank_rows() -> None:
    torch.manual_seed(1)
    spec = torch.randn(64, 1, 128, 100) + 5.0
    masked = mask_time_frequency(spec, freq_mask=48, time_mask=0)
    rows = (masked == 0).all(dim=-1).float().mean(-1).flatten()
    assert rows.max() <= 48 / 128 and rows.mean() > 0.1
    assert _masked_columns(masked).max() == 0


@pytest.mark.parametrize(
    ("shape", "axis", "width", "p", "dtype"),
    [
        ((64, 1, 256, 44), 2, 48, 1.0, torch.float32),  # the student's frequency masks
        ((8, 1, 128, 100), 3, 192, 0.2, torch.float32),  # PaSST's time masks on 1-s clips: at most 20 frames
        ((6, 1, 8, 44), 3, 192, 1.0, torch.float32),  # wider than the axis: torchaudio's rule, uncapped
        ((5, 7, 9), -1, 4, 0.5, torch.float64),
        ((5, 7, 9), 1, 4, 1.0, torch.bfloat16),
    ],
)
def test_masks_are_torchaudios_for_a_seed_in_the_inputs_layout(shape, axis, width, p, dtype) -> None:
    spec = torch.rand(shape, dtype=dtype) + 1.0  # never 0
    torch.manual_seed(3)
    expected = mask_along_axis_iid(spec, width, 0.0, axis % len(shape), p)
    after_torchaudio = torch.get_rng_state()
    torch.manual_seed(3)
    masked = mask_along_axis(spec, width, axis, p)
    assert masked.dtype == dtype and torch.equal(masked, expected) and (masked == 0).any()
    assert torch.equal(torch.get_rng_state(), after_torchaudio)  # the same draws: later ones hold
    assert masked.is_contiguous()  # torchaudio's comes back transposed in memory
    assert spec.min() > 0  # the input is left as it was


def test_masks_refuse_what_torchaudio_refuses() -> None:
    with pytest.raises(ValueError, match=r"axis 1 of shape \(2, 3, 4, 5\)"):
        mask_along_axis(torch.ones(2, 3, 4, 5), 2, 1)
    with pytest.raises(ValueError, match=r"axis 1 of shape \(4, 5\)"):
        mask_along_axis(torch.ones(4, 5), 2, 1)  # a batch of one spectrogram needs its batch axis
    with pytest.raises(ValueError, match="p=1.5"):
        mask_time_frequency(torch.ones(2, 1, 4, 5), 0, 3, max_time_fraction=1.5)
    spec = torch.ones(2, 3, 4)
    state = torch.get_rng_state()
    assert mask_along_axis(spec, 10, 2, p=0.1) is spec  # no frame to mask: nothing drawn
    assert torch.equal(torch.get_rng_state(), state)
