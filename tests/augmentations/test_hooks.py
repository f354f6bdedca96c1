"""``attach_to_input``: the one way augmentations are put in front of a model."""

from __future__ import annotations

import torch
from torch import nn

from asc_kd.augmentations import attach_to_input


def test_transform_runs_in_training_only_and_detaches() -> None:
    model = nn.Identity()
    handle = attach_to_input(model, lambda x: x + 1)
    x = torch.zeros(2, 3)
    assert torch.equal(model.train()(x), x + 1)
    assert torch.equal(model.eval()(x), x)
    handle.remove()
    assert torch.equal(model.train()(x), x)


def test_transform_can_run_in_eval_too() -> None:
    model = nn.Identity().eval()
    attach_to_input(model, lambda x: 2 * x, training_only=False)
    assert torch.equal(model(torch.ones(1)), torch.full((1,), 2.0))
