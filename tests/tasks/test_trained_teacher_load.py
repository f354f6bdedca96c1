"""A trained teacher's checkpoint loads without the "random weights" warning (its weights are in
the checkpoint), and without reading the pretrained file it was fine-tuned from."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from tiny_checkpoints import eval_logits, fit_checkpoint

from asc_kd.models.timm_teachers import timm_model
from asc_kd.tasks import ClassificationTask
from asc_kd.tasks.restore import load_task

TIMM = {"name": "mobilenetv3_small_050"}  # the demo's cnn_tiny teacher


def _teacher(model_kwargs: dict) -> ClassificationTask:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # building it from scratch warns, as it should
        return ClassificationTask(model="timm", model_kwargs=model_kwargs, frontend="passt_mel")


def _load_quietly(path: Path) -> ClassificationTask:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = load_task(path)
    assert [str(w.message) for w in caught if "random weights" in str(w.message)] == []
    return task


def test_building_a_teacher_without_weights_still_warns() -> None:
    with pytest.warns(UserWarning, match="has random weights: no checkpoint was given"):
        ClassificationTask(model="timm", model_kwargs=TIMM, frontend="passt_mel")


def test_a_trained_teacher_loads_without_the_random_weights_warning(tmp_path: Path) -> None:
    teacher = _teacher(TIMM)
    path = fit_checkpoint(teacher, tmp_path / "teacher.ckpt")
    loaded = _load_quietly(path)
    torch.testing.assert_close(eval_logits(loaded), eval_logits(teacher))


def test_a_teacher_fine_tuned_from_a_pretrained_file_loads_without_that_file(tmp_path: Path) -> None:
    pretrained = tmp_path / "pretrained.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(timm_model(**TIMM).state_dict(), pretrained)
    teacher = _teacher({**TIMM, "checkpoint": str(pretrained)})
    path = fit_checkpoint(teacher, tmp_path / "teacher.ckpt")
    pretrained.unlink()  # moved or deleted after training: the checkpoint has all the weights
    loaded = _load_quietly(path)
    torch.testing.assert_close(eval_logits(loaded), eval_logits(teacher))
