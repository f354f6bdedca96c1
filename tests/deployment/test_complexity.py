"""NeSsi-style complexity counting, the DCASE limit check and the CLI, against hand counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fit_helpers import CONF
from tiny_checkpoints import fit_checkpoint
from torch import nn

from asc_kd.complexity import main
from asc_kd.data.spec import DatasetSpec
from asc_kd.deployment.complexity import (
    MAX_MACS,
    MAX_PARAM_BYTES,
    ComplexityError,
    check_limits,
    count_complexity,
)
from asc_kd.tasks import ClassificationTask


def _conv() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 2, 3, bias=False))


def test_conv_against_hand_count() -> None:
    # 2 filters x 3x3 weights = 18 params; each of the 2x3x3 outputs costs 9 MACs -> 162.
    complexity = count_complexity(_conv(), (1, 1, 5, 5))
    assert complexity.params == 18
    assert complexity.macs == 18 * 9
    assert complexity.input_shape == [1, 1, 5, 5]
    assert len(complexity.layers) == 1
    row = complexity.layers[0]
    assert (row.input_shape, row.output_shape) == ([1, 1, 5, 5], [1, 2, 3, 3])
    assert (row.params, row.macs) == (18, 162)


def test_conv_with_bias_and_linear_against_hand_count() -> None:
    # torchinfo counts one MAC per bias and output element: 162 + 18 for the conv;
    # a Linear costs its weights plus its bias once per example: 18*4 + 4.
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(18, 4))
    complexity = count_complexity(model, (1, 1, 5, 5))
    assert complexity.params == 20 + 76
    assert complexity.macs == 162 + 18 + 76
    assert [row.macs for row in complexity.layers] == [180, 0, 76]


def test_batch_dimension_is_forced_to_one() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.ReLU())
    at_one = count_complexity(model, (1, 1, 256, 44))
    at_eight = count_complexity(model, (8, 1, 256, 44))
    assert at_eight.macs == at_one.macs == 4 * 9 * 256 * 44
    assert at_eight.params == at_one.params
    assert at_eight.input_shape == [1, 1, 256, 44]


@pytest.mark.parametrize(
    ("precision", "bytes_per_param"), [("int8", 1), ("fp16", 2), ("bf16", 2), ("fp32", 4)]
)
def test_mem_bytes_per_precision(precision: str, bytes_per_param: int) -> None:
    complexity = count_complexity(_conv(), (1, 1, 5, 5), precision)
    assert complexity.mem_bytes == bytes_per_param * complexity.params
    assert complexity.precision == precision


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision"):
        count_complexity(_conv(), (1, 1, 5, 5), "int4")


def _linear_over_memory() -> nn.Module:
    # 200,000 weights + 1,000 biases: over 128 KB even at int8, a handful of MACs.
    return nn.Sequential(nn.Flatten(), nn.Linear(200, 1000))


def _conv_over_macs() -> nn.Module:
    # 16*9 + 32*16*9 = 4,752 params, but 16*9*11,264 + 32*16*9*11,264 = 53.5 M MACs.
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.Conv2d(16, 32, 3, padding=1, bias=False)
    )


def test_check_limits_names_parameter_memory() -> None:
    complexity = count_complexity(_linear_over_memory(), (1, 1, 10, 20))
    assert complexity.mem_bytes > MAX_PARAM_BYTES and complexity.macs <= MAX_MACS
    assert not complexity.within_limits
    with pytest.raises(ComplexityError, match="parameter memory") as excinfo:
        check_limits(complexity, name="wide")
    assert "MACs" not in str(excinfo.value)
    assert "wide" in str(excinfo.value)


def test_check_limits_names_macs() -> None:
    complexity = count_complexity(_conv_over_macs(), (1, 1, 256, 44))
    assert complexity.macs == (16 * 9 + 32 * 16 * 9) * 256 * 44
    assert complexity.mem_bytes <= MAX_PARAM_BYTES and complexity.macs > MAX_MACS
    with pytest.raises(ComplexityError, match="MACs") as excinfo:
        check_limits(complexity)
    assert "parameter memory" not in str(excinfo.value)


def test_check_limits_names_both_and_passes_within() -> None:
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5000))
    both = count_complexity(nn.Sequential(_conv_over_macs(), head))
    with pytest.raises(ComplexityError, match="parameter memory.*MACs"):
        check_limits(both)
    check_limits(count_complexity(_conv(), (1, 1, 5, 5)))
    assert issubclass(ComplexityError, ValueError)


@pytest.mark.parametrize("training", [True, False])
def test_counting_leaves_the_model_alone(training: bool) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU()).train(training)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_complexity(model, (1, 1, 16, 16))
    assert all(module.training == training for module in model.modules())
    assert all(p.device.type == "cpu" for p in model.parameters())
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key  # BN statistics untouched in training mode


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["system1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "params": 127_684,
        "params_fused": 127_046,
        "macs": 28_840_396,
        "mem_bytes": 127_684,
        "receptive_field": [155, 55],
    }


def test_cli_json_precision_and_shape(capsys: pytest.CaptureFixture[str]) -> None:
    main(["system1", "--json", "--precision", "fp16", "--input-shape", "8", "1", "256", "44"])
    assert json.loads(capsys.readouterr().out) == {
        "params": 127_684,
        "params_fused": 127_046,
        "macs": 28_840_396,
        "mem_bytes": 2 * 127_684,
        "receptive_field": [155, 55],
    }


def test_cli_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["system1"]) == 0
    out = capsys.readouterr().out
    assert "within" in out
    assert "| **total** |" in out
    assert "127,684" in out and "28,840,396" in out
    assert "parameters with BatchNorm folded into the convs: 127,046" in out


def test_cli_unknown_model_exits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["no_such_model"])
    assert excinfo.value.code != 0
    err = capsys.readouterr().err
    assert "no_such_model" in err and "system1" in err


def test_cli_counts_the_class_count_given(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["system1", "--json", "--classes", "4"]) == 0
    # The head is a 1x1 conv from 92 channels plus a batch norm per class: 6 classes fewer.
    assert json.loads(capsys.readouterr().out)["params"] == 127_684 - 6 * (92 + 2)


def test_cli_counts_a_recipe_and_a_checkpoint_with_their_front_end_and_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    classes = ["a", "b", "c", "d"]
    spec = DatasetSpec(name="folders", classes=tuple(classes))
    task = ClassificationTask(model="debug", frontend="passt_mel", spec=spec)  # tests/conf/teacher.yaml
    checkpoint = fit_checkpoint(task, tmp_path / "four.ckpt")
    counted = {}
    for source in (
        [str(checkpoint)],
        [str(CONF / "teacher.yaml"), "--classes", "4"],
        ["debug", "--classes", "4"],
    ):
        assert main([source[0], "--json", *source[1:]]) == 0
        counted[source[0]] = json.loads(capsys.readouterr().out)
    recipe, model = counted[str(CONF / "teacher.yaml")], counted["debug"]
    assert counted[str(checkpoint)] == recipe
    assert recipe["params"] == model["params"]
    # The recipe's PaSST front-end gives the model another input than its own default.
    assert recipe["macs"] != model["macs"]
    full = count_complexity(task.model, task.input_shape())
    assert recipe["macs"] == full.macs and recipe["params"] == full.params
