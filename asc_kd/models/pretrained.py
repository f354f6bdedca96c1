"""Pretrained weights from local files, adapted to our models (nothing is downloaded).

Models are always built with random weights; pretrained weights come only from a local file
passed as ``checkpoint``, through ``load_pretrained``, which adapts published checkpoints to
our configuration: a new classifier for our classes, a 3-channel stem summed to 1 channel,
positional embeddings fitted to our input length. State-dict keys stay those of the upstream
code (hear21passt's ``PaSST``, Yuan Gong's ``AST``, timm), so published checkpoints load
without renaming.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, TypeVar

import safetensors.torch
import torch
from torch import Tensor, nn

from asc_kd.core.errors import UserError
from asc_kd.core.io import PickledObjectsError, torch_load

logger = logging.getLogger(__name__)
RANDOM_WEIGHTS_WARNING = ".*has random weights: no checkpoint was given.*"

Anchor = Literal["start", "center"]
Model = TypeVar("Model", bound=nn.Module)


class WeightsError(UserError, ValueError):
    """A pretrained-weights file is missing, unreadable or does not fit the model."""


def require_file(checkpoint: str | Path, what: str = "", source: str | None = None) -> Path:
    """The weights file as a path, or one line saying where it is published and how to go without."""
    path = Path(checkpoint).expanduser()
    if path.is_file():
        return path
    kind = "is a directory" if path.is_dir() else "not found"
    message = f"{what + ' ' if what else ''}weights file {path} {kind}."
    if source:
        message += f" It is published at {source} (nothing is downloaded at run time)."
    message += (
        " Pass its local path as model_kwargs.checkpoint, or train from random weights with "
        "--model.init_args.model_kwargs.checkpoint null."
    )
    raise WeightsError(message)


def no_weights(checkpoint: object) -> bool:
    """Whether a ``checkpoint`` argument means "random weights" (``None``, or ``null`` from a CLI)."""
    return checkpoint is None or (
        isinstance(checkpoint, str) and checkpoint.strip().lower() in ("", "none", "null")
    )


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a ``.pt``/``.pth``/``.ckpt`` or ``.safetensors`` file, unwrapped from containers.

    ``torch.load`` runs with ``weights_only=True``, so a checkpoint cannot execute code. The
    ``state_dict`` (Lightning) and ``model`` (DeiT, many research repos) containers are
    unwrapped, as often as they nest.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            state: object = safetensors.torch.load_file(path)
        else:
            state = torch_load(path)
    except PickledObjectsError:
        raise WeightsError(
            f"{path} holds pickled objects or code besides tensors; asc_kd loads weights only "
            "(torch.load with weights_only=True) and never runs code from a file"
        ) from None
    except Exception as err:  # safetensors and torch raise many types for bytes they cannot parse
        kind = "safetensors" if path.suffix == ".safetensors" else "PyTorch"
        raise WeightsError(f"{path} is not a readable {kind} weights file ({type(err).__name__})") from None
    while isinstance(state, dict):
        inner = next((state[k] for k in ("state_dict", "model") if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict) or not any(isinstance(v, Tensor) for v in state.values()):
        found = sorted(state)[:10] if isinstance(state, dict) else type(state).__name__
        raise WeightsError(f"{path} holds no state dict of tensors; found {found}.")
    return {k: v for k, v in state.items() if isinstance(v, Tensor)}


def _classifier_names(model: nn.Module) -> tuple[str, ...]:
    """Parameter-name prefixes of the classifier: ours, or timm's ``pretrained_cfg``."""
    names = getattr(model, "classifier_names", None)
    if names is None:
        names = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or ()
    return (names,) if isinstance(names, str) else tuple(names)


def _is_under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _strip_wrapper_prefixes(state: dict[str, Tensor], model_keys: set[str]) -> dict[str, Tensor]:
    """Drop ``module.`` (DataParallel), ``model.`` (our tasks) and ``net.`` (hear21passt) key prefixes."""
    for prefix in ("module.", "model.", "net."):
        if all(k.startswith(prefix) for k in state) and not any(k.startswith(prefix) for k in model_keys):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def fit_grid(grid: Tensor, size: tuple[int, int], anchor: Anchor) -> Tensor:
    """Fit a ``(1, dim, rows, cols)`` positional-embedding grid to ``size``, axis by axis.

    A shorter axis is cropped and a longer one bilinearly interpolated, as the originals do:
    AST crops the middle of its AudioSet embeddings (``anchor="center"``), and PaSST's forward
    uses the first columns of its time embeddings for shorter inputs (``anchor="start"``), so a
    PaSST checkpoint cropped from the start computes exactly what it computed before.
    """
    dtype = grid.dtype
    grid = grid.float()
    for axis, new in ((2, size[0]), (3, size[1])):
        old = grid.shape[axis]
        if new < old:
            grid = grid.narrow(axis, old // 2 - new // 2 if anchor == "center" else 0, new)
        elif new > old:
            target = [grid.shape[2], grid.shape[3]]
            target[axis - 2] = new
            grid = nn.functional.interpolate(grid, size=tuple(target), mode="bilinear", align_corners=False)
    return grid.to(dtype)


def _source_grid(n_patches: int, rows: int) -> tuple[int, int] | None:
    """Grid of a flattened checkpoint embedding: square (ImageNet ViTs) or ``rows`` high (AST)."""
    side = math.isqrt(n_patches)
    if side * side == n_patches:
        return side, side
    if n_patches % rows == 0:
        return rows, n_patches // rows
    return None


def _fit_flat_pos_embed(value: Tensor, target: torch.Size, owner: nn.Module) -> Tensor | None:
    """Refit a timm ViT ``pos_embed`` of shape ``(1, prefix tokens + rows * cols, dim)``."""
    grid_size = getattr(getattr(owner, "patch_embed", None), "grid_size", None)
    if grid_size is None or value.dim() != 3 or value.shape[::2] != target[::2]:
        return None
    n_prefix = 0 if getattr(owner, "no_embed_class", False) else int(getattr(owner, "num_prefix_tokens", 0))
    rows, cols = grid_size
    source = _source_grid(value.shape[1] - n_prefix, rows)
    if source is None or target[1] != n_prefix + rows * cols:
        return None
    patches = value[:, n_prefix:].reshape(1, *source, -1).permute(0, 3, 1, 2)
    patches = fit_grid(patches, (rows, cols), "center").flatten(2).transpose(1, 2)
    return torch.cat([value[:, :n_prefix], patches], dim=1)


def _adapt(key: str, value: Tensor, target: torch.Size, model: nn.Module) -> Tensor | None:
    """The checkpoint tensor reshaped to the model's, or ``None`` when no rule applies."""
    leaf = key.rsplit(".", 1)[-1]
    if value.dim() == 4 and len(target) == 4 and value.shape[1] == 3 and target[1] == 1:
        # RGB stem of an ImageNet model: a grey image is R = G = B, so sum the filters.
        summed = value.float().sum(dim=1, keepdim=True).to(value.dtype)
        return summed if summed.shape == target else None
    if leaf == "pos_embed":
        owner = model.get_submodule(key.rpartition(".")[0])
        return _fit_flat_pos_embed(value, target, owner)
    if leaf.endswith("pos_embed") and value.dim() == 4 and len(target) == 4 and value.shape[:2] == target[:2]:
        # PaSST's factorised time (1, dim, 1, T) and frequency (1, dim, F, 1) embeddings.
        return fit_grid(value, (target[2], target[3]), "start")
    return None


def adapt_state_dict(
    state: dict[str, Tensor], model: nn.Module, name: str = "checkpoint", fine_tuned: bool = False
) -> dict[str, Tensor]:
    """Fit a checkpoint's tensors to ``model``; raise ``WeightsError`` on anything else.

    Classifier tensors of another shape (another number of classes) are dropped, so the model
    keeps its fresh head. 3-channel stems are summed to 1 channel and positional embeddings
    fitted to the model's patch grid (``fit_grid``). Checkpoint keys the model lacks are
    ignored with a warning (AST checkpoints carry DeiT's unused ImageNet heads); model tensors
    the checkpoint lacks, other than the classifier and BatchNorm step counters, are an error.

    Args:
        state: checkpoint tensors, e.g. from ``read_state_dict``.
        model: the model to load into.
        name: how errors refer to the checkpoint (its path).
        fine_tuned: the weights are a finished model for our classes (e.g. CP-JKU's released
            PaSST teachers), so the classifier must be in the file and fit as it is.
    """
    model_state = model.state_dict()
    classifier = () if fine_tuned else _classifier_names(model)
    state = _strip_wrapper_prefixes(state, set(model_state))
    adapted: dict[str, Tensor] = {}
    notes: list[str] = []
    for key, value in state.items():
        if key not in model_state:
            continue
        target = model_state[key].shape
        if value.shape == target:
            adapted[key] = value
        elif _is_under(key, classifier):
            notes.append(f"dropped classifier {key} {tuple(value.shape)}")
        elif (fitted := _adapt(key, value, target, model)) is not None and fitted.shape == target:
            adapted[key] = fitted
            notes.append(f"fitted {key} {tuple(value.shape)} -> {tuple(target)}")
        else:
            raise WeightsError(
                f"{name}: parameter {key!r} has shape {tuple(value.shape)} in the checkpoint but "
                f"{tuple(target)} in the {type(model).__name__}; the checkpoint was saved from a "
                "model of another size or input configuration."
            )
    missing = [
        k
        for k in model_state
        if k not in adapted and not _is_under(k, classifier) and not k.endswith("num_batches_tracked")
    ]
    if missing:
        raise WeightsError(
            f"{name} lacks {len(missing)} tensors of the {type(model).__name__}, e.g. "
            f"{', '.join(missing[:5])}; it was saved from another architecture."
        )
    unexpected = [k for k in state if k not in model_state]
    if unexpected:
        logger.warning(
            "%s: ignored %d tensors the %s lacks, e.g. %s",
            name,
            len(unexpected),
            type(model).__name__,
            ", ".join(unexpected[:5]),
        )
    for note in notes:
        logger.info("%s: %s", name, note)
    return adapted


def load_pretrained(
    model: Model, checkpoint: str | Path, source: str | None = None, fine_tuned: bool = False
) -> Model:
    """Load a local checkpoint into ``model`` (in place, and returned), adapting it as needed.

    Args:
        model: the model to load into.
        checkpoint: path of a ``.pt``/``.pth``/``.ckpt`` or ``.safetensors`` file.
        source: where the file is published, for the error message when it is missing.
        fine_tuned: the file holds a finished model including its classifier (see
            ``adapt_state_dict``).
    """
    path = require_file(checkpoint, source=source)
    adapted = adapt_state_dict(read_state_dict(path), model, str(path), fine_tuned)
    model.load_state_dict(adapted, strict=False)
    logger.info("loaded %s into %s", path, type(model).__name__)
    return model


@contextmanager
def trained_weights_follow() -> Iterator[None]:
    """Build teachers without the random-weights warning of ``load_or_warn``: a trained
    checkpoint's weights are loaded into them next."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=RANDOM_WEIGHTS_WARNING)
        yield


def load_or_warn(model: Model, checkpoint: str | Path | None, what: str, source: str) -> Model:
    """Load ``checkpoint`` into ``model``, or warn once that it keeps random weights."""
    if no_weights(checkpoint):
        warnings.warn(
            f"The {what} teacher has random weights: no checkpoint was given. Pretrained weights "
            f"are published at {source}; pass the local file as model_kwargs.checkpoint.",
            stacklevel=3,
        )
        return model
    return load_pretrained(model, checkpoint, source)
