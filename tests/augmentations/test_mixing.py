"""Mixup on waveforms and labels, and the teacher targets of mixed clips."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from asc_kd.augmentations import Mixup, mix_teacher_logits, mixup

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


def test_mixup_waveform_is_bit_equal_to_the_lerp_of_each_clip_and_its_partner() -> None:
    # The mixed rows are written in place into a copy of the partners': the values must stay
    # those of torch.lerp(x[perm], x, λ), so a seeded recipe's results do not move.
    batch, out = _mixed(seed=5)
    lam, perm = out["mix_lambda"], out["mix_permutation"]
    x = batch["waveform"]
    for row in range(len(x)):
        assert torch.equal(out["waveform"][row], torch.lerp(x[perm[row]], x[row], lam[row]))


def test_mixup_soft_targets_and_teacher_logits() -> None:
    batch, out = _mixed()
    lam, perm = out["mix_lambda"][:, None], out["mix_permutation"]
    one_hot = F.one_hot(batch["target"], 10).float()
    torch.testing.assert_close(out["soft_target"], lam * one_hot + (1 - lam) * one_hot[perm])
    torch.testing.assert_close(out["soft_target"].sum(1), torch.ones(6))
    # Teacher logits are left for the distillation task to mix (mix_teacher_logits).
    assert out["teacher_logits"] is batch["teacher_logits"]
    assert torch.equal(out["device"], batch["device"])


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_probability_mixing_gives_the_mix_of_the_softened_teacher_distributions(temperature: float) -> None:
    batch, out = _mixed()
    lam, perm, logits = out["mix_lambda"], out["mix_permutation"], batch["teacher_logits"]
    mixed = mix_teacher_logits(logits, lam, perm, temperature, "probabilities")
    p = (logits / temperature).softmax(-1)
    expected = lam[:, None] * p + (1 - lam[:, None]) * p[perm]
    torch.testing.assert_close((mixed / temperature).softmax(-1), expected, rtol=0, atol=1e-6)


def test_logit_mixing_is_linear_and_differs_from_probability_mixing() -> None:
    batch, out = _mixed()
    lam, perm, logits = out["mix_lambda"], out["mix_permutation"], batch["teacher_logits"]
    linear = mix_teacher_logits(logits, lam, perm, 3.0, "logits")
    torch.testing.assert_close(linear, lam[:, None] * logits + (1 - lam[:, None]) * logits[perm])
    # Two confident teachers half and half. At T = 3 each puts 0.858 on its class, so the mix of
    # distributions is [0.437, 0.437, 0.0157 x 8]; the mixed logits [6, 6, 0, ...] / 3 soften to
    # [0.324, 0.324, 0.0439 x 8]. KL = 0.874 ln(0.437/0.324) + 0.126 ln(0.0157/0.0439) = 0.1315.
    confident = torch.zeros(2, 10)
    confident[0, 0] = confident[1, 1] = 12.0
    half, swap = torch.full((2,), 0.5), torch.tensor([1, 0])
    by_probability = mix_teacher_logits(confident, half, swap, 3.0, "probabilities")
    by_logit = mix_teacher_logits(confident, half, swap, 3.0, "logits")
    p = (confident / 3).softmax(-1)
    torch.testing.assert_close((by_probability / 3).softmax(-1), 0.5 * p + 0.5 * p[swap])
    kl = F.kl_div(
        (by_logit / 3).log_softmax(-1),
        (by_probability / 3).log_softmax(-1),
        reduction="none",
        log_target=True,
    )
    assert float(kl.sum(-1)[0]) == pytest.approx(0.1315, abs=2e-3)
    unmixed = mix_teacher_logits(logits, torch.ones(6), perm, 3.0, "probabilities")
    torch.testing.assert_close((unmixed / 3).softmax(-1), (logits / 3).softmax(-1))
    with pytest.raises(ValueError, match="teacher_mix"):
        mix_teacher_logits(logits, lam, perm, 3.0, "average")


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
    for key in ("waveform", "soft_target", "mix_lambda", "mix_permutation"):
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
    task = SimpleNamespace(classes=tuple("abcdefghij"))  # the class count comes from the task
    Mixup(alpha=0.3, p=0.0).on_train_batch_start(None, task, batch, 0)
    assert batch.keys() == original.keys()
    assert all(batch[key] is value for key, value in original.items())
    Mixup(alpha=0.3, p=1.0).on_train_batch_start(None, task, batch, 0)
    assert {"soft_target", "mix_lambda", "mix_permutation"} <= batch.keys()
    assert batch["soft_target"].shape == (6, 10)


def test_mixup_callback_refuses_bad_alpha() -> None:
    with pytest.raises(ValueError, match="alpha"):
        Mixup(alpha=0.0)
