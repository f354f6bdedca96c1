"""``load_task``: any asc_kd checkpoint back to an eval-mode classifier, or an error naming the file."""

from __future__ import annotations

import pathlib
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_checkpoints import eval_logits, fit_checkpoint

from asc_kd.checkpoints import CheckpointError, load_task, read_checkpoint
from asc_kd.tasks import ClassificationTask, DistillationTask


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[ClassificationTask, Path]:
    """A debug classifier with a non-default front-end and width, fitted and saved."""
    task = ClassificationTask(model="debug", model_kwargs={"width": 4}, frontend_kwargs={"hop_length": 500})
    path = fit_checkpoint(task, tmp_path_factory.mktemp("classifier") / "classifier.ckpt")
    return task, path


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> tuple[DistillationTask, Path]:
    task = DistillationTask(model="debug", temperature=2.0, label_weight=0.3)
    path = fit_checkpoint(task, tmp_path_factory.mktemp("student") / "student.ckpt")
    return task, path


def _saved(tmp_path: Path, checkpoint: Any, name: str = "edited.ckpt") -> Path:
    path = tmp_path / name
    torch.save(checkpoint, path)
    return path


def _assert_eval_classifier(task: ClassificationTask) -> None:
    assert type(task) is ClassificationTask
    assert not task.training
    assert all(not module.training for module in task.modules())


# -- what comes back ----------------------------------------------------------------------------


def test_classification_checkpoint_gives_the_same_logits(classifier: tuple[ClassificationTask, Path]) -> None:
    task, path = classifier
    loaded = load_task(path)
    _assert_eval_classifier(loaded)
    assert torch.equal(eval_logits(loaded), eval_logits(task))
    # Fitting moved the weights away from a fresh build of the same name.
    fresh = ClassificationTask(model="debug", model_kwargs={"width": 4}, frontend_kwargs={"hop_length": 500})
    assert not torch.equal(eval_logits(fresh), eval_logits(task))


def test_distillation_checkpoint_gives_a_classifier_with_the_same_logits(
    student: tuple[DistillationTask, Path],
) -> None:
    task, path = student
    loaded = load_task(path)
    _assert_eval_classifier(loaded)
    assert not hasattr(loaded, "teachers")
    assert "temperature" not in loaded.hparams
    assert torch.equal(eval_logits(loaded), eval_logits(task))


def test_model_and_front_end_are_rebuilt_from_the_checkpoint_alone(
    classifier: tuple[ClassificationTask, Path],
) -> None:
    task, path = classifier
    loaded = load_task(path)
    assert loaded.hparams.model == "debug"
    assert loaded.frontend.config() == task.frontend.config()
    assert loaded.frontend.hop_length == 500
    assert loaded.input_shape() == (1, 1, 256, 1 + 32_000 // 500)  # 65 frames, not 44
    assert loaded.model.classifier.in_features == 8  # width 4: the model's kwargs came back too
    for key, value in task.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key


def test_the_checkpoint_is_read_with_weights_only(
    classifier: tuple[ClassificationTask, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_load = torch.load

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_task(classifier[1])
    assert calls == [True]


# -- what is refused ----------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.ckpt"):
        load_task(tmp_path / "nowhere.ckpt")


@pytest.mark.parametrize(
    "text",
    [
        "not a checkpoint\n",
        "model: debug\nfrontend: student_mel\n",
        '{"model": "debug"}\n',
        "",
        "hello, I am a text file\n",
        "trainer:\n  max_epochs: 1\n",
    ],
    ids=["not-a", "yaml-model", "json", "empty", "hello", "yaml-trainer"],
)
def test_a_text_file_is_a_checkpoint_error_naming_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "notes.ckpt"
    path.write_text(text)
    with pytest.raises(CheckpointError, match="notes.ckpt"):
        load_task(path)


@pytest.mark.parametrize(
    "content",
    [{"epoch": 3, "weights": torch.zeros(2)}, [torch.zeros(2)], torch.zeros(2)],
    ids=["dict", "list", "tensor"],
)
def test_a_torch_file_without_state_dict_is_refused(tmp_path: Path, content: Any) -> None:
    path = _saved(tmp_path, content, "weights.pt")
    with pytest.raises(CheckpointError, match=r"weights\.pt.*no 'state_dict'"):
        load_task(path)


def test_a_checkpoint_without_asc_kd_hyperparameters_is_refused(
    classifier: tuple[ClassificationTask, Path], tmp_path: Path
) -> None:
    checkpoint = read_checkpoint(classifier[1])
    del checkpoint["hyper_parameters"]
    path = _saved(tmp_path, checkpoint)
    with pytest.raises(CheckpointError, match=r"edited\.ckpt.*model name missing"):
        load_task(path)


def test_shapes_that_do_not_fit_name_the_parameter_and_both_shapes(
    classifier: tuple[ClassificationTask, Path], tmp_path: Path
) -> None:
    checkpoint = read_checkpoint(classifier[1])
    checkpoint["state_dict"]["model.classifier.weight"] = torch.zeros(10, 9)
    path = _saved(tmp_path, checkpoint)
    with pytest.raises(CheckpointError) as excinfo:
        load_task(path)
    message = str(excinfo.value)
    assert str(path) in message and "'debug'" in message
    assert "model.classifier.weight" in message
    assert "[10, 9]" in message and "[10, 8]" in message


def test_missing_weights_are_refused(classifier: tuple[ClassificationTask, Path], tmp_path: Path) -> None:
    checkpoint = read_checkpoint(classifier[1])
    del checkpoint["state_dict"]["model.classifier.bias"]
    path = _saved(tmp_path, checkpoint)
    with pytest.raises(CheckpointError, match=r"edited\.ckpt.*'model\.classifier\.bias'"):
        load_task(path)


def test_a_checkpoint_naming_an_unknown_model_is_refused(
    classifier: tuple[ClassificationTask, Path], tmp_path: Path
) -> None:
    checkpoint = read_checkpoint(classifier[1])
    checkpoint["hyper_parameters"]["model"] = "system9"
    path = _saved(tmp_path, checkpoint)
    with pytest.raises(CheckpointError, match=r"edited\.ckpt.*system9"):
        load_task(path)


class Settings:
    """An arbitrary class: ``weights_only`` loading must refuse to rebuild it."""

    def __init__(self) -> None:
        self.lr = 0.1


class Trap:
    """Unpickling this with full pickle would create a file; weights-only loading must not."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (pathlib.Path.touch, (self.marker,))


def test_arbitrary_pickled_objects_are_refused(
    classifier: tuple[ClassificationTask, Path], tmp_path: Path
) -> None:
    checkpoint = read_checkpoint(classifier[1])
    checkpoint["hyper_parameters"]["settings"] = Settings()
    path = _saved(tmp_path, checkpoint)
    with pytest.raises(
        CheckpointError,
        match=r"edited\.ckpt holds objects that weights_only loading refuses.*Weights only load failed",
    ):
        load_task(path)


def test_nothing_in_a_checkpoint_is_executed(
    classifier: tuple[ClassificationTask, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "executed"
    checkpoint = read_checkpoint(classifier[1])
    checkpoint["hyper_parameters"]["model_kwargs"] = Trap(marker)
    path = _saved(tmp_path, checkpoint)
    with pytest.raises(CheckpointError, match=r"edited\.ckpt"):
        load_task(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the trap is armed: full unpickling springs it
    assert marker.exists()
