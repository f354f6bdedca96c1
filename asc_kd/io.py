"""Files: writing outputs so that a crash never leaves a half-written file behind, and reading
PyTorch files without ever running code from them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary sibling of ``path``; rename it over ``path`` only if the block succeeds.

    A non-writable folder fails before anything is written, with the folder named.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot create output folder {path.parent}: {err.strerror}") from err
    if not os.access(path.parent, os.W_OK):
        raise PermissionError(f"output folder {path.parent} is not writable")
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with partial.open(mode) as handle:
            yield handle
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


class PickledObjectsError(ValueError):
    """A PyTorch file holds pickled objects or code, which ``weights_only`` loading refuses."""


def torch_load(path: str | Path, mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain data only.

    ``mmap`` maps the tensors instead of reading them: reading a 1 GB checkpoint's record costs
    no I/O for its weights.

    A file holding classes or functions raises ``PickledObjectsError`` (asc_kd never runs code
    from a file, so torch's hint to retry with ``weights_only=False`` does not apply); bytes
    torch cannot parse raise ``ValueError`` with the kind of failure.
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        if "global" in str(err).lower():
            raise PickledObjectsError(f"{path} holds pickled objects or code besides tensors") from None
        raise ValueError(f"{path} is not a PyTorch file (unpickling failed)") from None
    except Exception as err:  # torch raises KeyError, IndexError, RuntimeError ... for odd bytes
        raise ValueError(f"{path} is not a PyTorch file ({type(err).__name__})") from None
