"""``load_task``: any asc_kd checkpoint back to an eval-mode task of its own class (yours too),
or an error naming the file."""

from __future__ import annotations

import pathlib
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from tiny_checkpoints import eval_logits, fit_checkpoint

from asc_kd.data.spec import DatasetSpec
from asc_kd.models.timm_teachers import timm_model
from asc_kd.tasks import ClassificationTask, DistillationTask
from asc_kd.tasks.restore import CheckpointError, fit_data_options, load_task, read_checkpoint


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


def _assert_eval_classifier(task: ClassificationTask, cls: type = ClassificationTask) -> None:
    assert type(task) is cls
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
    _assert_eval_classifier(loaded, DistillationTask)  # the class the checkpoint records
    assert len(loaded.teachers) == 0  # teachers are loaded for fitting only
    assert loaded.hparams.temperature == 2.0 and loaded.hparams.label_weight == 0.3
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


# -- the data the fit read ----------------------------------------------------------------------
#: A fit's DataModule arguments as Lightning keeps them (a subset: loader and training inputs too).
FIT_DATA = {
    "root": "scenes",
    "layout": "folders",
    "clip_seconds": 2.0,
    "recording_pattern": "none",
    "validation": "holdout",
    "holdout_file": None,
    "cache_dir": "cache",
    "sample_rate": 32000,
    "segment_seconds": 1.0,
    "batch_size": 16,
    "teacher_logits": "ensemble.npz",
}


def _run_folder(classifier: tuple[ClassificationTask, Path], run: Path, datamodule: bool) -> Path:
    """The classifier's checkpoint in ``run/checkpoints/``, as a fit leaves it (``datamodule``:
    with Lightning's record of the DataModule's arguments), and the run's ``config.yaml``."""
    stored = read_checkpoint(classifier[1])
    if datamodule:
        stored["datamodule_hyper_parameters"] = {**FIT_DATA, "_instantiator": "lightning"}
    (run / "checkpoints").mkdir(parents=True)
    config = {"data": {**FIT_DATA, "clip_seconds": 3.0}, "trainer": {"default_root_dir": str(run)}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return _saved(run / "checkpoints", stored, "last.ckpt")


@pytest.mark.parametrize("datamodule", [True, False], ids=["recorded", "config.yaml"])
def test_the_checkpoint_gives_the_data_options_its_fit_read(
    classifier: tuple[ClassificationTask, Path], tmp_path: Path, datamodule: bool
) -> None:
    """The checkpoint's record first, else its run's ``config.yaml`` (here with another length);
    the options that choose the clips, the held-out split's file and the cache, not the loader's
    or the training inputs; the rate and window of the model."""
    path = _run_folder(classifier, tmp_path / "run", datamodule)
    expected = {key: value for key, value in FIT_DATA.items() if key not in ("batch_size", "teacher_logits")}
    assert fit_data_options(path) == {**expected, "clip_seconds": 2.0 if datamodule else 3.0}
    (tmp_path / "run" / "holdout_split.csv").write_text("filename\n")  # the split the fit held out
    assert fit_data_options(path)["holdout_file"] == str(tmp_path / "run" / "holdout_split.csv")


def test_a_checkpoint_without_a_record_gives_its_models_rate_and_window(
    classifier: tuple[ClassificationTask, Path],
) -> None:
    assert fit_data_options(classifier[1]) == {"sample_rate": 32000, "segment_seconds": 1.0}


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
    with pytest.raises(CheckpointError, match=r"edited\.ckpt holds pickled objects or code") as info:
        load_task(path)
    assert "weights_only=False" not in str(info.value)  # torch's hint is not passed on
    assert info.value.__cause__ is None and info.value.__suppress_context__


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


def test_a_directory_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="is a directory"):
        load_task(tmp_path)


# -- your own task and model --------------------------------------------------------------------

OWN_MODULE = """
import torch
from asc_kd.models import register_model
from asc_kd.tasks import ClassificationTask


@register_model("tiny_cnn")
class TinyCNN(torch.nn.Module):
    def __init__(self, n_classes=10, width=3):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, width, 3)
        self.head = torch.nn.Linear(width, n_classes)

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3)))


class DoubledLoss(ClassificationTask):
    def __init__(self, factor: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.save_hyperparameters(logger=False)

    def training_loss(self, logits, batch):
        loss = super().training_loss(logits, batch)["loss"]
        return {"loss": self.hparams.factor * loss, "plain": loss.detach()}
"""


def test_your_own_task_and_model_load_from_their_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "mine"
    package.mkdir()
    (package / "mywork.py").write_text(OWN_MODULE)
    monkeypatch.syspath_prepend(str(package))
    import importlib

    # Start and end without the module and its short name (teardown restores what was there).
    monkeypatch.delitem(__import__("sys").modules, "mywork", raising=False)
    monkeypatch.delitem(__import__("asc_kd.models").models.MODELS, "tiny_cnn", raising=False)
    mywork = importlib.import_module("mywork")
    task = mywork.DoubledLoss(model="tiny_cnn", factor=3.0, spec=DatasetSpec("xyz", ("x", "y", "z")))
    path = fit_checkpoint(task, tmp_path / "own.ckpt")
    record = read_checkpoint(path)["asc_kd"]
    assert record["task_class"] == "mywork:DoubledLoss"
    assert record["model_import_path"] == "mywork:TinyCNN"
    # A fresh process knows neither the module nor the short name "tiny_cnn".
    monkeypatch.delitem(__import__("sys").modules, "mywork")
    monkeypatch.delitem(__import__("asc_kd.models").models.MODELS, "tiny_cnn")
    loaded = load_task(path)
    assert type(loaded).__name__ == "DoubledLoss" and loaded.hparams.factor == 3.0
    assert loaded.classes == ("x", "y", "z")
    assert torch.equal(eval_logits(loaded), eval_logits(task))


def test_a_missing_module_is_named(tmp_path: Path, classifier: tuple[ClassificationTask, Path]) -> None:
    checkpoint = read_checkpoint(classifier[1])
    checkpoint["asc_kd"]["task_class"] = "gone_module:MyTask"
    path = _saved(tmp_path, checkpoint)
    with pytest.raises(CheckpointError, match="cannot import module 'gone_module'.*PYTHONPATH") as info:
        load_task(path)
    assert str(path) in str(info.value)


# -- trained teachers load quietly -------------------------------------------------------
# A trained teacher's checkpoint loads without the "random weights" warning (its weights are in
# the checkpoint), and without reading the pretrained file it was fine-tuned from.


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
