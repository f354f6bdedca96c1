"""Writing outputs so that a crash never leaves a half-written file behind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


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
