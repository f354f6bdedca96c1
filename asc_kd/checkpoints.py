"""Rebuild a trained model from its checkpoint alone (no training YAML needed).

Lightning checkpoints of asc_kd tasks hold the model and front-end names and arguments as
plain hyperparameters, so ``load_task`` can rebuild a ``ClassificationTask`` (the student or
teacher, its front-end, no teachers or optimiser state) for predict, quantize and logits.
Checkpoints are read with ``weights_only=True``: nothing in them is executed.
"""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path
from typing import Any

import torch

from asc_kd.tasks.classification import ClassificationTask


class CheckpointError(ValueError):
    """A file is not a usable asc_kd checkpoint; the message says why."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True`` and errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):  # a class or function, not tensors and plain data
            raise CheckpointError(f"{path} holds objects that weights_only loading refuses ({err})") from err
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({err})") from err
    except Exception as err:  # torch raises KeyError, IndexError, ... depending on the bytes
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    return checkpoint


def load_task(path: str | Path) -> ClassificationTask:
    """The model and front-end of any asc_kd task checkpoint, as an eval-mode ``ClassificationTask``."""
    checkpoint = read_checkpoint(path)
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    if "model" not in hparams:
        raise CheckpointError(f"{path} holds no asc_kd hyperparameters (model name missing)")
    accepted = inspect.signature(ClassificationTask.__init__).parameters
    try:
        task = ClassificationTask(**{k: v for k, v in hparams.items() if k in accepted})
    except KeyError as err:  # a model or front-end name this version does not register
        raise CheckpointError(f"{path}: {err.args[0]}") from err
    state = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith(("model.", "frontend."))}
    try:
        task.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise CheckpointError(
            f"{path} does not fit the model it names ({hparams['model']!r}): {err}"
        ) from err
    missing = [k for k in task.state_dict() if k.startswith("model.") and k not in state]
    if missing:
        raise CheckpointError(f"{path}: no weights for {len(missing)} parameter(s), first {missing[0]!r}")
    return task.eval()
