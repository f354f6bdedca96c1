"""Teacher-logits files: ensemble logits keyed by clip, with where they came from.

CP-JKU's recipes downloaded logits at run time and matched them to clips by row index, so a
different split order or dataset version silently paired clips with the wrong targets
(cpjku_dcase23#7, #8). Here a logits file is an ``.npz`` (no pickle) holding the keys (the
filename, or ``filename#k`` for the k-th segment of a longer clip), the float32 logits and a
JSON metadata record (teachers, classes, split, the clips' sampled fingerprint and, when they
came from the audio cache, their full content hash), and ``load_logits`` refuses a file whose
split or classes are not the ones asked for, naming both. Whether the clips are those the file
was made for is ``SceneDataModule``'s one check when it joins a file to its clips
(``SceneDataModule.data_change``: the content hash, else the sampled fingerprint).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asc_kd.core.io import atomic_write
from asc_kd.data.spec import DatasetError


class LogitsMismatchError(DatasetError):
    """A logits file was made for other clips than the ones it is used with."""


def save_logits(
    path: str | Path,
    filenames: Sequence[str],
    logits: torch.Tensor | np.ndarray,
    metadata: dict[str, Any],
) -> Path:
    """Write logits atomically (temporary file, then rename)."""
    path = Path(path)
    array = np.asarray(torch.as_tensor(logits, dtype=torch.float32).cpu().numpy())
    if array.ndim != 2 or array.shape[0] != len(filenames):
        raise ValueError(f"logits must be (clips, classes) for {len(filenames)} clips, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("logits contain NaN or inf; refusing to write them")
    with atomic_write(path, "wb") as handle:
        np.savez(
            handle,
            filenames=np.asarray(list(filenames), dtype=str),
            logits=array,
            metadata=np.asarray(json.dumps(metadata)),
        )
    return path


def logits_metadata(path: str | Path) -> dict[str, Any] | None:
    """The metadata record of a logits file without reading its logits; None for a file that is not
    an asc_kd logits file (any other ``.npz``)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            metadata = json.loads(str(data["metadata"]))
    except (ValueError, KeyError, OSError, AttributeError, TypeError):
        return None
    return metadata if isinstance(metadata, dict) else None


def load_logits(
    path: str | Path,
    split: str | None = None,
    classes: Sequence[str] | None = None,
) -> tuple[list[str], torch.Tensor, dict[str, Any]]:
    """Read a logits file, checking its shape and that it was made for ``split`` and ``classes``.

    Returns keys, logits (float32, clips x classes) and the metadata record.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"teacher logits file {path} not found; create it with `python -m asc_kd.logits`"
        )
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("a bare array, not an npz archive")
        with data:
            filenames = [str(name) for name in data["filenames"]]
            logits = torch.from_numpy(data["logits"].astype(np.float32))
            metadata = json.loads(str(data["metadata"]))
    except (ValueError, KeyError, OSError) as err:
        raise LogitsMismatchError(f"{path} is not an asc_kd logits file ({err})") from err
    if not isinstance(metadata, dict):
        raise LogitsMismatchError(f"{path}: metadata must be a JSON object, got {type(metadata).__name__}")
    if logits.ndim != 2 or logits.shape[0] != len(filenames):
        raise LogitsMismatchError(
            f"{path}: logits have shape {tuple(logits.shape)}; expected (clips, classes) with "
            f"{len(filenames)} clips"
        )
    if classes is not None and logits.shape[1] != len(classes):
        raise LogitsMismatchError(
            f"{path}: logits have {logits.shape[1]} classes, the dataset has {len(classes)} "
            f"({', '.join(classes[:4])}{', ...' if len(classes) > 4 else ''}); "
            "the file was made for other data"
        )
    recorded_classes = metadata.get("classes")
    if classes is not None and recorded_classes is not None and list(recorded_classes) != list(classes):
        raise LogitsMismatchError(
            f"{path}: made for classes {recorded_classes}, the dataset has {list(classes)}"
        )
    if not torch.isfinite(logits).all():
        raise LogitsMismatchError(f"{path}: logits contain NaN or inf")
    if split is not None and metadata.get("split") != split:
        raise LogitsMismatchError(
            f"{path} holds logits for split {metadata.get('split')!r}, expected {split!r}"
        )
    return filenames, logits, metadata
