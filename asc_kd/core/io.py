"""Files: writing outputs so that a crash never leaves a half-written file or folder behind, and
reading PyTorch files without ever running code from them."""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from asc_kd.core.errors import ConfigError

log = logging.getLogger(__name__)
#: The suffix of a file being written (``last.ckpt.partial-<pid>``, ``.summary.json.partial-<pid>``).
PARTIAL_SUFFIX = re.compile(r"\.partial-(?P<pid>\d+)$")


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


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A temporary sibling folder of ``path`` to fill; renamed to ``path`` only if the block succeeds.

    ``path`` must not exist yet, or be an empty folder. A killed writer leaves
    ``<name>.partial-<pid>`` (``remove_stale_partials`` clears it), never a half-written ``path``
    that looks complete; when another process completed ``path`` first, its folder stays and this
    one is discarded.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path} already exists and is not empty; choose a new folder or delete it")
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
        try:
            os.replace(partial, path)
        except OSError:
            if not (path.is_dir() and any(path.iterdir())):
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def check_writable(path: str | Path) -> None:
    """Refuse an output whose folder cannot be made or written, creating nothing: a command
    with several outputs asks this of each before it starts, so that the last one's folder
    cannot refuse it after the first was written (``atomic_write`` would, at the end).
    """
    folder = Path(path).absolute().parent
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"cannot create output folder {folder}: {existing} is not a folder")
    if not os.access(existing, os.W_OK):
        if existing == folder:
            raise PermissionError(f"output folder {folder} is not writable")
        raise PermissionError(f"cannot create output folder {folder}: {existing} is not writable")


def abandoned(pid: int) -> bool:
    """Whether a partial file of process ``pid`` is abandoned: that process no longer runs on
    this machine, or is this one (which is not writing it while it looks)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process, running
        return False
    return False


def remove_stale_partials(folder: str | Path, prefix: str = "") -> list[Path]:
    """Delete the abandoned partial files and folders in ``folder`` (``<prefix>*.partial-<pid>``)
    and return them.

    A process killed while writing (SIGKILL, a node lost) cannot remove its own partial
    output; the next one to write in the folder does, so a killed fit leaves no 1 GB
    ``last.ckpt.partial-<pid>`` behind for good. Outputs of processes that still run are kept.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.glob(f"{glob.escape(prefix)}*.partial-*")):
        match = PARTIAL_SUFFIX.search(path.name)
        if match and abandoned(int(match["pid"])):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("removed %d partial output(s) of stopped processes from %s", len(removed), folder)
    return removed


class PickledObjectsError(ValueError):
    """A PyTorch file holds pickled objects or code, which ``weights_only`` loading refuses."""


def torch_load(path: str | Path, mmap: bool = False, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain data only, on the CPU unless
    ``map_location`` (``torch.load``'s: a device, a dict of locations or a function) says otherwise.

    ``mmap`` maps the tensors instead of reading them: reading a 1 GB checkpoint's record costs
    no I/O for its weights.

    A file holding classes or functions raises ``PickledObjectsError`` (asc_kd never runs code
    from a file, so torch's hint to retry with ``weights_only=False`` does not apply); bytes
    torch cannot parse raise ``ValueError`` with the kind of failure; a file read onto the CPU
    but not onto ``map_location`` (a GPU this host lacks) raises ``ConfigError`` with torch's reason.
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        if "global" in str(err).lower():
            raise PickledObjectsError(f"{path} holds pickled objects or code besides tensors") from None
        raise ValueError(f"{path} is not a PyTorch file (unpickling failed)") from None
    except Exception as err:  # torch raises KeyError, IndexError, RuntimeError ... for odd bytes
        if map_location != "cpu" and _readable(path):  # the file is fine, the place is not
            raise ConfigError(f"map_location={map_location!r} cannot place {path}'s tensors: {err}") from None
        raise ValueError(f"{path} is not a PyTorch file ({type(err).__name__})") from None


def _readable(path: str | Path) -> bool:
    """Whether ``torch_load`` reads ``path`` onto the CPU (its tensors mapped, not read)."""
    try:
        torch_load(path, mmap=True)
    except ValueError:
        return False
    return True


def saved_device_or_cpu(storage: Any, location: str) -> Any:
    """A ``map_location`` that leaves each tensor on the device it was saved from (``torch.load``'s
    own default) unless it was saved on a CUDA or MPS device this host lacks, which puts it on the
    CPU: what Lightning's ``load_from_checkpoint`` does without a ``map_location``, so a
    checkpoint written on a GPU opens on a GPU host as on a laptop."""
    import torch

    kind = location.split(":")[0]
    missing = {"cuda": not torch.cuda.is_available(), "mps": not torch.backends.mps.is_available()}
    return storage.cpu() if missing.get(kind, False) else None  # other kinds: torch.load's way
