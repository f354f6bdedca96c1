"""``receptive_field`` against hand computations: per layer ``rf += (k - 1) * d * jump; jump *= s``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from asc_kd.deployment.complexity import receptive_field
from asc_kd.models import get_model


def _conv(
    kernel: int | tuple[int, int] = 3, stride: int | tuple[int, int] = 1, dilation: int = 1
) -> nn.Conv2d:
    return nn.Conv2d(1, 1, kernel, stride=stride, padding="same" if stride == 1 else 1, dilation=dilation)


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        # rf 1 + 2 = 3 on both axes.
        ([_conv()], (3, 3)),
        # 3, then + 2 * 1 = 5.
        ([_conv(), _conv()], (5, 5)),
        # 3 (jump becomes 2), then + 2 * 2 = 7.
        ([_conv(stride=2), _conv()], (7, 7)),
        # pool: freq 1 + 1 = 2 (jump_f 2), time 1; conv: freq 2 + 2 * 2 = 6, time 1 + 2 = 3.
        ([nn.MaxPool2d((2, 1)), _conv()], (6, 3)),
        # dilation 2: 1 + (3 - 1) * 2 = 5.
        ([_conv(dilation=2)], (5, 5)),
        # 3 (jump 2), then dilated: + 2 * 2 * 2 = 11.
        ([_conv(stride=2), _conv(dilation=2)], (11, 11)),
        # Non-square kernel: (1 + 4, 1 + 0).
        ([_conv(kernel=(5, 1))], (5, 1)),
        # AvgPool2d 2x2 (stride 2): 2 (jump 2), then + 2 * 2 = 6.
        ([nn.AvgPool2d(2), _conv()], (6, 6)),
        # Layers that do not see neighbours leave it alone: ReLU, BatchNorm, a 1x1 conv.
        ([_conv(), nn.BatchNorm2d(1), nn.ReLU(), _conv(kernel=1)], (3, 3)),
    ],
    ids=["k3", "k3-k3", "k3s2-k3", "pool21-k3", "k3d2", "k3s2-k3d2", "k5x1", "avgpool-k3", "k3-bn-relu-1x1"],
)
def test_tiny_models_against_hand_computation(layers: list[nn.Module], expected: tuple[int, int]) -> None:
    assert receptive_field(nn.Sequential(*layers), (1, 1, 32, 32)) == expected


def test_a_module_called_twice_counts_twice() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = _conv()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(self.conv(x))

    assert receptive_field(Twice(), (1, 1, 16, 16)) == (5, 5)


def test_system1_matches_the_hand_derivation() -> None:
    # in_c 5x5 s2: 5, jump 2. Stage 1 maxpool 2x2: 7, jump 4. Block 1 (3x3, 1x1): 15.
    # maxpool (2, 1): freq 19, jump_f 8. Block 2 (3x3, 3x3): freq 51, time 31.
    # maxpool (2, 1): freq 59, jump_f 16. Stage 2 (3x3, 3x3): freq 123, time 47.
    # Stage 3 (3x3, 1x1; 1x1 shortcut and head): freq 155, time 55.
    assert receptive_field(get_model("system1")) == (155, 55)


def test_system2_sees_less_than_system1() -> None:
    # Stage 3's 3x3 becomes 1x1: system1 minus (2 * 16, 2 * 4).
    rf2 = receptive_field(get_model("system2"))
    assert rf2 == (123, 47)
    rf1 = receptive_field(get_model("system1"))
    assert rf2[0] < rf1[0] and rf2[1] < rf1[1]


def test_receptive_field_does_not_depend_on_the_batch_size() -> None:
    model = get_model("system1")
    assert receptive_field(model, (8, 1, 256, 44)) == receptive_field(model, (1, 1, 256, 44))


@pytest.mark.parametrize("training", [True, False])
def test_the_model_is_left_as_it_was(training: bool) -> None:
    torch.manual_seed(0)
    model = get_model("system1").train(training)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    receptive_field(model)
    for module in model.modules():
        assert module.training == training
        assert not module._forward_hooks, module
        assert not module._forward_pre_hooks, module
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key  # BN statistics untouched in training mode


def test_hooks_are_removed_when_the_forward_fails() -> None:
    model = nn.Sequential(_conv(), nn.Flatten(), nn.Linear(7, 2))  # wrong width: forward raises
    with pytest.raises(RuntimeError):
        receptive_field(model, (1, 1, 8, 8))
    assert all(not module._forward_hooks for module in model.modules())
