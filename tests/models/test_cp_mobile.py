from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from asc_kd.deployment.complexity import count_complexity
from asc_kd.models.cp_mobile import (
    CPMobile,
    CPMobileConfig,
    GlobalResponseNorm,
    cp_mobile,
    dcase24_baseline,
)

BUILDERS = [cp_mobile, dcase24_baseline]


@pytest.mark.parametrize(
    ("builder", "input_shape", "params", "macs"),
    [
        (cp_mobile, (1, 1, 256, 64), 126_952, 28_893_268),
        (dcase24_baseline, (1, 1, 256, 65), 61_148, 29_419_156),
    ],
)
def test_complexity_matches_published_counts(
    builder: Callable[..., CPMobile], input_shape: tuple[int, ...], params: int, macs: int
) -> None:
    model = builder()
    assert model.input_shape == input_shape
    complexity = count_complexity(model, model.input_shape)
    assert (complexity.params, complexity.macs) == (params, macs)


@pytest.mark.parametrize("builder", BUILDERS)
def test_forward_returns_logits(builder: Callable[..., CPMobile]) -> None:
    model = builder(n_classes=7).eval()
    x = torch.randn(2, *model.input_shape[1:])
    with torch.no_grad():
        assert model(x).shape == (2, 7)


def test_grn_only_in_cp_mobile() -> None:
    def grn_count(model: nn.Module) -> int:
        return sum(isinstance(m, GlobalResponseNorm) for m in model.modules())

    assert grn_count(cp_mobile()) == 6
    assert grn_count(dcase24_baseline()) == 0


@pytest.mark.parametrize("builder", BUILDERS)
def test_backward_reaches_every_parameter(builder: Callable[..., CPMobile]) -> None:
    torch.manual_seed(0)
    model = builder().train()
    model(torch.randn(2, *model.input_shape[1:])).logsumexp(dim=1).sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_config_rejects_wrong_stride_count() -> None:
    with pytest.raises(ValueError, match="strides"):
        CPMobileConfig(strides=((1, 1),))
