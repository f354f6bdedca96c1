"""``ComplexityCheck``: logs NeSsi numbers at fit start and stops students over the limits."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch
from fit_helpers import fit_on_noise
from lightning.pytorch.loggers import Logger

from asc_kd.augmentations import FreqMixStyle
from asc_kd.callbacks import ComplexityCheck
from asc_kd.deployment.complexity import MAX_MACS, ComplexityError, count_complexity
from asc_kd.models import get_model
from asc_kd.tasks import ClassificationTask


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


def _task(**kwargs: Any) -> ClassificationTask:
    torch.manual_seed(0)
    return ClassificationTask(model="debug", **kwargs)


def test_logs_to_the_logger(cpu_trainer) -> None:
    task, logger, callback = _task(), _HyperparamLogger(), ComplexityCheck()
    fit_on_noise(task, cpu_trainer(max_steps=1, limit_val_batches=0, callbacks=[callback], logger=logger))
    expected = count_complexity(get_model("debug"), (1, 1, 256, 44)).summary()
    assert callback.result is not None and callback.result.summary() == expected
    assert {k: logger.hyperparams[f"complexity/{k}"] for k in expected} == expected
    assert logger.hyperparams["complexity/input_shape"] == [1, 1, 256, 44]


def test_stops_a_model_over_the_limits(cpu_trainer) -> None:
    task = _task(model_kwargs={"width": 64})  # 53.5 M MACs
    trainer = cpu_trainer(
        max_steps=1, limit_val_batches=0, callbacks=[FreqMixStyle(p=1.0), ComplexityCheck()]
    )
    with pytest.raises(ComplexityError, match="MACs"):
        fit_on_noise(task, trainer)
    assert trainer.global_step == 0  # refused before the first step
    assert len(task.model._forward_pre_hooks) == 0  # and Freq-MixStyle cleaned up after itself


def test_allows_over_limits_when_asked(cpu_trainer) -> None:
    task = _task(model_kwargs={"width": 64})
    callback = ComplexityCheck(allow_over_limits=True)
    trainer = cpu_trainer(max_steps=1, limit_val_batches=0, callbacks=[callback])
    fit_on_noise(task, trainer)
    assert trainer.global_step == 1
    assert callback.result is not None and callback.result.macs > MAX_MACS


def test_the_line_names_the_model_not_a_role_it_may_not_have(caplog: pytest.LogCaptureFixture) -> None:
    teacher = _task()  # a plain classifier: a teacher as often as a student
    with caplog.at_level(logging.INFO, logger="asc_kd.callbacks.complexity_check"):
        ComplexityCheck().on_fit_start(type("T", (), {"loggers": []})(), teacher)
    expected = count_complexity(get_model("debug"), (1, 1, 256, 44)).summary()
    assert caplog.messages == [f"complexity of model 'debug': {expected}"]


def test_counts_the_window_the_model_sees() -> None:
    task = _task(segment_seconds=2.0)
    callback = ComplexityCheck()
    callback.on_fit_start(type("T", (), {"loggers": []})(), task)
    assert callback.result.input_shape == [1, 1, 256, 87]  # 2 s at hop 737: 1 + 64000 // 737
