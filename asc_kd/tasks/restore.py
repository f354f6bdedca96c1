"""Rebuild a trained task from its checkpoint alone (no training YAML needed).

Lightning checkpoints of asc_kd tasks hold the model and front-end names and arguments, the
dataset's spec as plain data (``DatasetSpec.as_dict``), and the task's class as an import path, so
``load_task`` rebuilds the task (the student or teacher with its front-end; no online
teachers, no optimiser state) for predict, quantize, export and logits. A task or model
defined in your own module is imported from the working directory or ``PYTHONPATH``.
Checkpoints are read with ``weights_only=True``: nothing in them is executed.

``fit_data_options`` reads what the fit's data was (Lightning keeps the DataModule's init
arguments beside the task's), so that the commands on a model read their clips as its fit did.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import yaml

from asc_kd.core.imports import ImportPathError, import_object
from asc_kd.core.io import PickledObjectsError, torch_load
from asc_kd.data.datamodule import HOLDOUT_FILE
from asc_kd.data.options import recorded_options
from asc_kd.data.spec import DatasetError, DatasetSpec
from asc_kd.models import MODELS
from asc_kd.models.pretrained import trained_weights_follow
from asc_kd.tasks.classification import CheckpointError, ClassificationTask, recorded_spec


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True`` and errors that name the file (``mmap``: the
    weights mapped, not read, for a look at the record)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory; give the .ckpt file inside it")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        checkpoint = torch_load(path, mmap=mmap)
    except PickledObjectsError:
        raise CheckpointError(
            f"{path} holds pickled objects or code besides tensors and plain data; asc_kd never "
            "loads such files (they can run code when opened)"
        ) from None
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


def _task_class(path: Path, record: dict[str, Any]) -> type[ClassificationTask]:
    """The task class the checkpoint records, imported; ``ClassificationTask`` when absent."""
    recorded = record.get("task_class")
    if not recorded:
        return ClassificationTask
    try:
        cls = import_object(recorded, "task class")
    except ImportPathError as err:
        raise CheckpointError(f"{path}: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, ClassificationTask)):
        raise CheckpointError(f"{path}: task class {recorded!r} is not a ClassificationTask")
    return cls


def load_task(path: str | Path) -> ClassificationTask:
    """The model and front-end of any asc_kd task checkpoint, as an eval-mode task of its class."""
    path = Path(path)
    checkpoint = read_checkpoint(path)
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
    cls = _task_class(path, record)
    accepted = _init_arguments(cls)
    try:
        with trained_weights_follow():
            task = cls(**{k: v for k, v in hparams.items() if accepted is None or k in accepted})
    except ImportPathError as err:
        raise CheckpointError(f"{path}: {err}") from err
    except (KeyError, ValueError) as err:  # a model or front-end name this version does not know
        raise CheckpointError(f"{path}: {err.args[0] if err.args else err}") from err
    state = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith(("model.", "frontend."))}
    try:
        task.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not fit the model it names ({model!r}): {err}") from err
    missing = [k for k in task.state_dict() if k.startswith("model.") and k not in state]
    if missing:
        raise CheckpointError(f"{path}: no weights for {len(missing)} parameter(s), first {missing[0]!r}")
    task.run_info = dict(record.get("run") or {})  # the recipe and seed of the fit that wrote it
    return task.eval()


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
        if klass is ClassificationTask:
            return names
    return None
