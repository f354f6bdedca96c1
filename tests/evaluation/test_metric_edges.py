"""SceneMetrics where probabilities reach 0 and 1: the log loss clips them at 1e-15, as
scikit-learn's ``log_loss`` (the DCASE metric) did, and accuracy follows the top logit.
``compute`` returns float32, hence relative tolerances of 1e-6."""

from __future__ import annotations

import math

import pytest
import torch

from asc_kd.data.spec import DatasetSpec
from asc_kd.evaluation.metrics import LOG_LOSS_EPS, SceneMetrics, scene_metrics

SPEC = DatasetSpec("edges", tuple(f"c{i}" for i in range(10)))
#: −ln(1e-15) = 15·ln(10): the most a single example can add to the log loss.
CEILING = 15 * math.log(10)
INF = float("inf")


def _one_hot_row(top: int, value: float, rest: float = 0.0) -> list[float]:
    row = [rest] * 10
    row[top] = value
    return row


def _metrics(rows: list[list[float]], targets: list[int]) -> dict[str, float]:
    metric = SceneMetrics(SPEC)
    metric.update(torch.tensor(rows), torch.tensor(targets), torch.full((len(rows),), -1))
    return {k: float(v) for k, v in metric.compute().items()}


def test_the_floor_is_the_dcase_one() -> None:
    assert LOG_LOSS_EPS == 1e-15
    assert CEILING == pytest.approx(34.538776394910684, abs=1e-12)


def test_a_true_class_of_probability_zero_costs_the_ceiling_not_infinity() -> None:
    # Class 1 has logit −inf: p = 0 exactly; the prediction (class 0) is wrong.
    out = _metrics([[0.0, -INF, *[0.0] * 8]], [1])
    assert out["log_loss"] == pytest.approx(CEILING, rel=1e-6)
    assert out["acc"] == 0.0


def test_a_true_class_of_probability_one_costs_nothing() -> None:
    out = _metrics([_one_hot_row(0, 0.0, rest=-INF)], [0])
    assert out["log_loss"] == 0.0
    assert out["acc"] == 1.0


def test_confident_mistakes_below_and_above_the_floor() -> None:
    rows = [
        [0.0, -INF, *[0.0] * 8],  # p(true) = 0 -> ceiling, wrong
        _one_hot_row(3, 0.0, rest=-INF),  # p(true) = 1 -> 0, right
        _one_hot_row(0, 100.0),  # p(true) = e^-100 / (1 + 9 e^-100) < 1e-15 -> ceiling, wrong
        _one_hot_row(0, 30.0),  # p(true) = 1 / (e^30 + 9) ~ 9.4e-14 > 1e-15 -> 30 + ln(1 + 9e^-30), wrong
    ]
    out = _metrics(rows, [1, 3, 1, 1])
    expected = (CEILING + 0.0 + CEILING + 30.0 + math.log1p(9 * math.exp(-30))) / 4
    assert out["log_loss"] == pytest.approx(expected, rel=1e-6)
    assert out["acc"] == pytest.approx(1 / 4)
    assert out["macro_acc"] == pytest.approx((0 / 3 + 1 / 1) / 2)  # class 1: 0 of 3, class 3: 1 of 1
    assert out["acc_class_c1"] == 0.0 and out["acc_class_c3"] == 1.0


def test_uniform_logits_cost_ln_of_the_class_count() -> None:
    out = _metrics([[5.0] * 10, [-2.0] * 10], [4, 9])
    assert out["log_loss"] == pytest.approx(math.log(10), rel=1e-6)


def test_a_window_of_probability_zero_floors_the_file_too() -> None:
    # One clip, two windows: the file's logits are the windows' mean, so a −inf window logit
    # for the true class makes the file's probability 0 as well; each costs the ceiling.
    logits = torch.tensor([[[0.0, -INF, *[0.0] * 8], _one_hot_row(1, 2.0)]])
    out = scene_metrics(logits, torch.tensor([1]), torch.tensor([-1]), SPEC)
    second = -math.log(math.exp(2) / (math.exp(2) + 9))
    assert out["log_loss"] == pytest.approx((CEILING + second) / 2, rel=1e-6)
    assert out["acc"] == pytest.approx(0.5)
    assert out["file/log_loss"] == pytest.approx(CEILING, rel=1e-6)
    assert out["file/acc"] == 0.0
