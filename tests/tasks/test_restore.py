"""``load_task``: any asc_kd checkpoint back to an eval-mode task of its own class (yours too),
or an error naming the file. ``load_from_checkpoint``: Lightning's signature on the same path
(the class it is called on, keyword overrides, ``strict``, ``map_location``, training mode), and
what it refuses."""

from __future__ import annotations

import io
import pathlib
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from tiny_checkpoints import eval_logits, fit_checkpoint

from asc_kd.core.errors import ConfigError
from asc_kd.core.io import saved_device_or_cpu
from asc_kd.data.spec import DatasetSpec
from asc_kd.models.timm_teachers import timm_model
from asc_kd.tasks import ClassificationTask, DistillationTask, classification
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


@pytest.mark.parametrize(
    "load", [load_task, ClassificationTask.load_from_checkpoint], ids=["load_task", "load_from_checkpoint"]
)
def test_the_checkpoint_is_read_once_with_weights_only(
    classifier: tuple[ClassificationTask, Path], monkeypatch: pytest.MonkeyPatch, load: Any
) -> None:
    calls = []
    real_load = torch.load

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load(classifier[1])
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
    missing = (
        r"edited\.ckpt: 1 weight\(s\) of the task missing, first 'model\.classifier\.bias' \(strict=False"
    )
    with pytest.raises(CheckpointError, match=missing):
        load_task(path)
    with pytest.raises(CheckpointError, match=missing):
        ClassificationTask.load_from_checkpoint(path)


def test_weights_the_task_does_not_have_are_refused(
    classifier: tuple[ClassificationTask, Path], tmp_path: Path
) -> None:
    """Strict means both ways, as in Lightning: the checkpoint's keys are the task's keys."""
    checkpoint = read_checkpoint(classifier[1])
    checkpoint["state_dict"]["model.extra.weight"] = torch.zeros(2)
    path = _saved(tmp_path, checkpoint)
    unexpected = r"edited\.ckpt: 1 weight\(s\) the task does not have, first 'model\.extra\.weight'"
    with pytest.raises(CheckpointError, match=unexpected):
        load_task(path)
    with pytest.raises(CheckpointError, match=unexpected):
        ClassificationTask.load_from_checkpoint(path, strict=True)


@pytest.mark.parametrize(
    ("section", "key", "value", "refusal"),
    [
        ("hyper_parameters", "model", "system9", r"edited\.ckpt.*system9"),
        (
            "asc_kd",
            "task_class",
            "lightning.pytorch.demos.boring_classes:BoringModel",
            r"task class 'lightning\.pytorch\.demos\.boring_classes:BoringModel' is not a ClassificationTask",
        ),
    ],
    ids=["unknown model", "class not a task"],
)
def test_a_checkpoint_recording_what_this_version_cannot_build_is_refused(
    classifier: tuple[ClassificationTask, Path],
    tmp_path: Path,
    section: str,
    key: str,
    value: str,
    refusal: str,
) -> None:
    checkpoint = read_checkpoint(classifier[1])
    checkpoint[section][key] = value
    path = _saved(tmp_path, checkpoint)
    with pytest.raises(CheckpointError, match=refusal):
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


# -- load_from_checkpoint: Lightning's signature, load_task's path --------------------------------


def test_load_from_checkpoint_is_load_task_for_the_class_it_is_called_on(
    classifier: tuple[ClassificationTask, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def spy(*args: Any, **kwargs: Any) -> ClassificationTask:
        calls.append((args, kwargs))
        return load_task(*args, **kwargs)

    monkeypatch.setattr(classification, "load_task", spy)
    DistillationTask.load_from_checkpoint(classifier[1], lr=0.5)
    overrides = {"map_location": saved_device_or_cpu, "strict": None, "overrides": {"lr": 0.5}}
    assert calls == [((classifier[1], DistillationTask), overrides)]


def test_load_from_checkpoint_gives_a_task_in_training_mode(
    classifier: tuple[ClassificationTask, Path],
) -> None:
    """As Lightning's does (a freshly built module); ``load_task`` gives the commands eval mode."""
    task, path = classifier
    loaded = ClassificationTask.load_from_checkpoint(path)
    assert type(loaded) is ClassificationTask
    assert all(module.training for module in loaded.modules())
    assert torch.equal(eval_logits(loaded), eval_logits(task))


def test_a_student_loads_as_a_classifier_and_a_classifier_as_a_student(
    classifier: tuple[ClassificationTask, Path], student: tuple[DistillationTask, Path]
) -> None:
    """The class called on is the class built, with the recorded hyperparameters it takes."""
    as_classifier = ClassificationTask.load_from_checkpoint(student[1])
    assert type(as_classifier) is ClassificationTask and "temperature" not in as_classifier.hparams
    assert torch.equal(eval_logits(as_classifier), eval_logits(student[0]))
    as_student = DistillationTask.load_from_checkpoint(classifier[1])
    assert type(as_student) is DistillationTask and len(as_student.teachers) == 0
    assert as_student.hparams.temperature == 3.0 and as_student.hparams.label_weight == 0.5  # defaults
    assert as_student.frontend.hop_length == 500  # the recorded front-end
    assert torch.equal(eval_logits(as_student), eval_logits(classifier[0]))
    assert type(load_task(student[1], ClassificationTask)) is ClassificationTask


@pytest.mark.parametrize("task_class", [None, "gone_module:MyTask"], ids=["none", "unimportable"])
def test_the_class_called_on_needs_no_recorded_class(
    classifier: tuple[ClassificationTask, Path], tmp_path: Path, task_class: str | None
) -> None:
    """``load_task`` imports the recorded class; ``load_from_checkpoint`` neither needs nor
    imports it."""
    checkpoint = read_checkpoint(classifier[1])
    checkpoint["asc_kd"]["task_class"] = task_class
    path = _saved(tmp_path, checkpoint)
    loaded = ClassificationTask.load_from_checkpoint(path)
    assert torch.equal(eval_logits(loaded), eval_logits(classifier[0]))
    if task_class is None:
        refused = r"edited\.ckpt records no task class \(asc_kd\.task_class\); load it with the class's own"
        with pytest.raises(CheckpointError, match=refused):
            load_task(path)


def test_keyword_arguments_replace_recorded_hyperparameters(
    classifier: tuple[ClassificationTask, Path], student: tuple[DistillationTask, Path]
) -> None:
    task, path = classifier
    loaded = ClassificationTask.load_from_checkpoint(path, lr=0.5, frontend_kwargs={"hop_length": 250})
    assert loaded.hparams.lr == 0.5 and loaded.hparams.model_kwargs == {"width": 4}  # the rest recorded
    assert loaded.input_shape() == (1, 1, 256, 1 + 32_000 // 250)  # 129 frames: the new hop built
    for key, value in task.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    hot = DistillationTask.load_from_checkpoint(student[1], temperature=5.0)
    assert hot.hparams.temperature == 5.0 and hot.hparams.label_weight == 0.3
    assert load_task(path, overrides={"lr": 0.25}).hparams.lr == 0.25
    with pytest.raises(TypeError, match="temperature"):  # a classifier takes no KD settings
        ClassificationTask.load_from_checkpoint(path, temperature=5.0)


def test_a_keyword_argument_the_task_refuses_is_named_not_blamed_on_the_file(
    classifier: tuple[ClassificationTask, Path],
) -> None:
    path = classifier[1]
    with pytest.raises(ConfigError, match=r"classifier\.ckpt with model='nope': .*nope") as info:
        ClassificationTask.load_from_checkpoint(path, model="nope")
    assert not isinstance(info.value, CheckpointError)


class RenamingTask(ClassificationTask):
    """A task whose ``on_load_checkpoint`` renames the weights of an older layout (``net.``)."""

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("net.")]:
            state["model." + key.removeprefix("net.")] = state.pop(key)


def test_the_tasks_on_load_checkpoint_sees_the_checkpoint_before_its_weights_load(
    classifier: tuple[ClassificationTask, Path], tmp_path: Path
) -> None:
    task, path = classifier
    checkpoint = read_checkpoint(path)
    checkpoint["state_dict"] = {
        ("net." + k.removeprefix("model.") if k.startswith("model.") else k): v
        for k, v in checkpoint["state_dict"].items()
    }
    renamed = _saved(tmp_path, checkpoint)
    with pytest.raises(CheckpointError, match="weight"):  # the plain task finds no model weights
        ClassificationTask.load_from_checkpoint(renamed)
    loaded = RenamingTask.load_from_checkpoint(renamed).eval()
    assert torch.equal(eval_logits(loaded), eval_logits(task))


class LenientTask(ClassificationTask):
    """A task that loads what fits by default, as ``strict_loading = False`` says to Lightning."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.strict_loading = False


def test_strict_false_loads_the_weights_both_hold_and_names_the_others(
    classifier: tuple[ClassificationTask, Path], tmp_path: Path
) -> None:
    task, path = classifier
    checkpoint = read_checkpoint(path)
    del checkpoint["state_dict"]["model.classifier.bias"]
    checkpoint["state_dict"]["model.extra.weight"] = torch.zeros(2)
    edited = _saved(tmp_path, checkpoint)
    named = r"1 weight\(s\) of the task missing, first 'model\.classifier\.bias'; 1 weight\(s\) the task"
    torch.manual_seed(5)
    with pytest.warns(UserWarning, match=named):
        loaded = ClassificationTask.load_from_checkpoint(edited, strict=False)
    torch.manual_seed(5)
    fresh = ClassificationTask(model="debug", model_kwargs={"width": 4}, frontend_kwargs={"hop_length": 500})
    assert torch.equal(loaded.model.classifier.bias, fresh.model.classifier.bias)  # its own, as built
    assert not torch.equal(loaded.model.classifier.bias, task.model.classifier.bias)
    assert torch.equal(loaded.model.classifier.weight, task.model.classifier.weight)  # the checkpoint's
    with pytest.warns(UserWarning, match=named):
        LenientTask.load_from_checkpoint(edited)  # the class's strict_loading
    with pytest.raises(CheckpointError, match=named):
        LenientTask.load_from_checkpoint(edited, strict=True)  # the argument over the class


@pytest.mark.parametrize("place", ["meta", {"cpu": "meta"}], ids=["device", "dict"])
def test_map_location_places_the_weights_and_the_task(
    classifier: tuple[ClassificationTask, Path], place: Any
) -> None:
    """The meta device stands for a GPU here: every tensor ends where ``map_location`` says."""
    for loaded in (
        ClassificationTask.load_from_checkpoint(classifier[1], place),
        load_task(classifier[1], map_location=place),
    ):
        assert {t.device.type for t in [*loaded.parameters(), *loaded.buffers()]} == {"meta"}


def test_map_location_may_be_a_function_and_defaults_to_the_cpu_for_load_task(
    classifier: tuple[ClassificationTask, Path],
) -> None:
    seen = []

    def keep(storage: Any, location: str) -> Any:
        seen.append(location)
        return storage

    loaded = ClassificationTask.load_from_checkpoint(classifier[1], map_location=keep)
    assert seen and set(seen) == {"cpu"}
    assert torch.equal(eval_logits(loaded), eval_logits(classifier[0]))
    assert {t.device.type for t in load_task(classifier[1]).parameters()} == {"cpu"}
    with pytest.raises(ConfigError, match=r"^map_location='gpu' cannot place .*classifier\.ckpt's tensors"):
        load_task(classifier[1], map_location="gpu")


def test_load_from_checkpoint_refuses_what_asc_kd_does_not_read(
    classifier: tuple[ClassificationTask, Path], tmp_path: Path
) -> None:
    path = classifier[1]
    hparams = tmp_path / "hparams.yaml"
    hparams.write_text("lr: 0.5\n")
    refusals = [
        (
            {"hparams_file": hparams},
            ValueError,
            r"ClassificationTask\.load_from_checkpoint\(hparams_file=\.\.\.\): asc_kd checkpoints carry "
            r"their hyperparameters; give the ones to change as keyword arguments, "
            r"e\.g\. load_from_checkpoint\(path, lr=1e-4\)",
        ),
        (
            {"weights_only": False},
            ValueError,
            r"ClassificationTask\.load_from_checkpoint\(weights_only=False\): asc_kd checkpoints hold "
            r"plain data and are read with weights_only=True only; leave weights_only out",
        ),
    ]
    for kwargs, error, message in refusals:
        with pytest.raises(error, match=f"^{message}$"):
            ClassificationTask.load_from_checkpoint(path, **kwargs)
    stream = io.BytesIO(path.read_bytes())
    with pytest.raises(
        TypeError,
        match=r"^ClassificationTask\.load_from_checkpoint: give the checkpoint's file path, not a BytesIO$",
    ):
        ClassificationTask.load_from_checkpoint(stream)


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
