"""Rebuild a trained task from its checkpoint alone (no training YAML needed): asc_kd's one
restore path.

Lightning checkpoints of asc_kd tasks hold the model and front-end names and arguments, the
dataset's spec as plain data (``DatasetSpec.as_dict``), and the task's class as an import path.
``load_task`` is the one place that rebuilds a task from such a file: it reads it with
``weights_only=True`` (nothing in it is executed), checks it (the task class, the spec, the
weights) and builds the student or teacher with its front-end (no online teachers, no optimiser
state). Predict, quantize, export, logits and online teachers call it for the class the
checkpoint records (a task or model defined in your own module is imported from the working
directory or ``PYTHONPATH``);
``ClassificationTask.load_from_checkpoint`` calls it for the class it is called on. Resuming a
fit (``--ckpt_path``) is Lightning's trainer restoring its own state, not a restore of a task.

``fit_data_options`` reads what the fit's data was (Lightning keeps the DataModule's init
arguments beside the task's), so that the commands on a model read their clips as its fit did.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import lightning as L
import torch
import yaml

from asc_kd.core.errors import ConfigError, UserError
from asc_kd.core.imports import ImportPathError, import_object
from asc_kd.core.io import PickledObjectsError, torch_load
from asc_kd.data.datamodule import HOLDOUT_FILE
from asc_kd.data.options import recorded_options
from asc_kd.data.spec import DatasetError, DatasetSpec
from asc_kd.models import MODELS
from asc_kd.models.pretrained import trained_weights_follow

Task = TypeVar("Task", bound=L.LightningModule)


class CheckpointError(UserError, ValueError):
    """A file is not a usable asc_kd checkpoint; the message says why."""


def recorded_spec(checkpoint: Mapping[str, Any], source: str) -> Mapping[str, Any]:
    """The dataset spec (plain data) among a checkpoint's hyperparameters.

    Without it a task would be built on ``DEFAULT_SPEC``'s classes, so a checkpoint that has none
    (asc_kd kept classes, devices and device groups as hyperparameters of their own before tasks
    took a ``DatasetSpec``) is refused with a ``CheckpointError`` naming ``source``.
    """
    spec = (checkpoint.get("hyper_parameters") or {}).get("spec")
    if spec is None:
        raise CheckpointError(
            f"{source} holds no dataset spec (hyper_parameters.spec): an earlier asc_kd wrote it, "
            "with classes and devices of their own; fit it again with this one"
        )
    return spec


def read_checkpoint(path: str | Path, mmap: bool = False, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True`` and errors that name the file (``mmap``: the
    weights mapped, not read, for a look at the record; ``map_location`` as ``torch.load``'s)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory; give the .ckpt file inside it")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        checkpoint = torch_load(path, mmap=mmap, map_location=map_location)
    except PickledObjectsError:
        raise CheckpointError(
            f"{path} holds pickled objects or code besides tensors and plain data; asc_kd never "
            "loads such files (they can run code when opened)"
        ) from None
    except ConfigError:  # a readable file, a map_location that fits no device here
        raise
    except ValueError as err:
        raise CheckpointError(f"{err}; not a checkpoint") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    return checkpoint


def fit_data_options(path: str | Path) -> dict[str, Any]:
    """The data options the fit that wrote checkpoint ``path`` read its clips with, as
    ``asc_kd.data.options.recorded_options`` keeps them (root, ``FIT_OPTIONS``).

    They are the DataModule's init arguments that Lightning saves in the checkpoint; for a
    checkpoint saved without a DataModule, the ``data:`` section of its run folder's
    ``config.yaml`` (the fit's resolved configuration). The model's rate and window are its own
    (the task's hyperparameters, which the fit links from the data's), so a checkpoint with no
    record at all still gives them. A held-out split (``validation: holdout``) the fit wrote in
    its run folder, as it does by default, is that run's ``holdout_split.csv``.
    """
    path = Path(path)
    checkpoint = read_checkpoint(path, mmap=True)
    run = _run_folder(path)
    data = checkpoint.get("datamodule_hyper_parameters")
    if data is None and run is not None:
        data = _config_data(run / "config.yaml")
    options = recorded_options(data or {})
    task = checkpoint.get("hyper_parameters") or {}
    options.update({key: task[key] for key in ("sample_rate", "segment_seconds") if key in task})
    if options.get("validation") == "holdout" and not options.get("holdout_file") and run is not None:
        if (run / HOLDOUT_FILE).is_file():
            options["holdout_file"] = str(run / HOLDOUT_FILE)
    return options


def _run_folder(path: Path) -> Path | None:
    """The run folder of checkpoint ``path``, known by its ``config.yaml`` (a fit writes its
    checkpoints to ``<run>/checkpoints/``); None for a checkpoint kept elsewhere."""
    folder = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return folder if (folder / "config.yaml").is_file() else None


def _config_data(file: Path) -> dict[str, Any]:
    """The ``data:`` section of a fit's ``config.yaml`` (its init arguments, however given)."""
    try:
        config = yaml.safe_load(file.read_text())
    except yaml.YAMLError as err:
        raise CheckpointError(f"{file} is not YAML: {' '.join(str(err).split())}") from err
    section = config.get("data") if isinstance(config, dict) else None
    if not isinstance(section, dict):
        return {}
    return section.get("init_args", section)


def _task_class(path: Path, record: dict[str, Any]) -> type[L.LightningModule]:
    """The task class the checkpoint records (``asc_kd.task_class``), imported."""
    recorded = record.get("task_class")
    if not recorded:
        raise CheckpointError(
            f"{path} records no task class (asc_kd.task_class); load it with the class's own "
            "load_from_checkpoint, e.g. ClassificationTask.load_from_checkpoint(path)"
        )
    try:
        cls = import_object(recorded, "task class")
    except ImportPathError as err:
        raise CheckpointError(f"{path}: {err}") from err
    if not (isinstance(cls, type) and any(_named(klass) == _TASK for klass in cls.__mro__)):
        raise CheckpointError(f"{path}: task class {recorded!r} is not a ClassificationTask")
    return cls


#: The base of every task the commands rebuild, known by its module and name: the task module
#: imports this one (its ``load_from_checkpoint`` is ``load_task``), so it is not imported here.
_TASK = (f"{__package__}.classification", "ClassificationTask")


def _named(cls: type) -> tuple[str, str]:
    return cls.__module__, cls.__qualname__


def load_task(
    path: str | Path,
    cls: type[Task] | None = None,
    *,
    map_location: Any = "cpu",
    strict: bool | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Task:
    """The task checkpoint ``path`` holds, rebuilt from it alone, in eval mode.

    Args:
        path: the checkpoint file.
        cls: the class to build; ``None``, the class the checkpoint records. Any task class builds
            from any asc_kd checkpoint with the recorded hyperparameters its ``__init__`` takes
            (a student's checkpoint as a ``ClassificationTask``, for inference without the KD
            settings), as in Lightning; the state dict says whether the weights fit.
        map_location: where the weights go, as ``torch.load``'s (a device, a dict of locations
            or a function); the task moves to the device of the first tensor, as in Lightning.
        strict: whether the checkpoint's state dict must hold exactly the keys of the task's
            (``task.state_dict()``; a ``DistillationTask``'s leaves its online teachers out, which
            load only to fit). ``False`` loads the keys both hold and warns naming the others;
            ``None`` is the class's ``strict_loading``: ``True`` unless it says otherwise.
        overrides: hyperparameters that replace the recorded ones (``lr``, ``precision``...);
            one the class does not take is a ``TypeError``.
    """
    path = Path(path)
    checkpoint = read_checkpoint(path, map_location=map_location)
    record = checkpoint.get("asc_kd") or {}
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    if "model" not in hparams:
        raise CheckpointError(f"{path} holds no asc_kd hyperparameters (model name missing)")
    try:
        hparams["spec"] = DatasetSpec.from_dict(recorded_spec(checkpoint, str(path)))
    except DatasetError as err:
        raise CheckpointError(f"{path}: {err}") from err
    model = hparams["model"]
    if model not in MODELS and record.get("model_import_path"):
        hparams["model"] = record["model_import_path"]  # registered in a module not imported here
    if "checkpoint" in (hparams.get("model_kwargs") or {}):  # a teacher's pretrained file is not read:
        hparams["model_kwargs"] = {**hparams["model_kwargs"], "checkpoint": None}  # the state dict follows
    cls = cls or _task_class(path, record)
    accepted = _init_arguments(cls)
    arguments = {k: v for k, v in hparams.items() if accepted is None or k in accepted}
    try:
        with trained_weights_follow():
            task = cls(**{**arguments, **(overrides or {})})
    except (ImportPathError, KeyError, ValueError) as err:  # a name this version does not know
        if overrides:  # the keyword arguments may be at fault, not the file
            given = ", ".join(f"{key}={value!r}" for key, value in overrides.items())
            raise ConfigError(f"{path} with {given}: {err.args[0] if err.args else err}") from err
        raise CheckpointError(f"{path}: {err.args[0] if err.args else err}") from err
    task.on_load_checkpoint(checkpoint)  # as Lightning does before loading: a task's migration
    state = checkpoint["state_dict"]
    device = next((value.device for value in state.values() if isinstance(value, torch.Tensor)), None)
    if device is not None:
        task.to(device)
    try:
        keys = task.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not fit the model it names ({model!r}): {err}") from err
    strict = task.strict_loading if strict is None else strict
    _check_keys(path, keys.missing_keys, keys.unexpected_keys, strict)
    task.run_info = dict(record.get("run") or {})  # the recipe and seed of the fit that wrote it
    return task.eval()


def _check_keys(path: Path, missing: list[str], unexpected: list[str], strict: bool) -> None:
    """Refuse (``strict``) or name in a warning the task's keys the checkpoint lacks and the
    checkpoint's keys the task lacks."""
    problems = []
    if missing:
        problems.append(f"{len(missing)} weight(s) of the task missing, first {missing[0]!r}")
    if unexpected:
        problems.append(f"{len(unexpected)} weight(s) the task does not have, first {unexpected[0]!r}")
    if not problems:
        return
    if strict:
        raise CheckpointError(f"{path}: {'; '.join(problems)} (strict=False loads the weights both hold)")
    warnings.warn(f"{path}: {'; '.join(problems)}; loaded the weights both hold", stacklevel=3)


def _init_arguments(cls: type) -> set[str] | None:
    """Names ``cls.__init__`` accepts along its ``**kwargs`` chain; ``None`` when open-ended."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters
        names.update(k for k, p in parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return names
    return None
