"""Keep off the console what third-party libraries print that a user cannot act on, or has read.

Called by every command (``asc_kd.core.command_line.run_command``) and by
``asc_kd.training.fit.fit``: Lightning's
tip to install litlogger, its ``LeafSpec`` deprecation notice (raised inside Lightning), its
``srun`` hint on a machine with SLURM, and
what the ONNX exporter's optimiser narrates (``quiet_onnx``); ``quiet_console`` is the
pipeline's ``--quiet``. Warnings about the user's own
setup are left alone, but each is shown once per process (``show_once``), and so is each of
Lightning's notes (``LIGHTNING_NOTES``): a pipeline's fits would otherwise repeat Lightning's
logging-interval warning and which accelerators it found for every fit.
W&B runs start quiet (``wandb_quiet``): no end-of-run history and summary blocks on the console.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any


def _not_a_litlogger_tip(record: logging.LogRecord) -> bool:
    return "litlogger" not in record.getMessage()


#: What this process has shown once: (kind, text with its numbers masked).
_shown: set[tuple[Any, str]] = set()
#: Where Lightning says its hints and notes (``rank_zero_info``): which accelerators exist, how
#: many batches a ``limit_*`` gives, why a fit stopped; every fit says them again.
LIGHTNING_NOTES = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


def _first_time(kind: Any, text: str) -> bool:
    """Whether ``text`` of ``kind`` is new to this process, numbers aside: ``The number of
    training batches (2) ...`` and ``(5)`` are one hint, but a number inside a name or path
    (``seed0``, ``seed1``) is not masked; remembered as shown from now on."""
    key = (kind, re.sub(r"(?<![\w/.-])\d+(?![\w/-])", "N", text))
    if key in _shown:
        return False
    _shown.add(key)
    return True


def show_once(show: Callable[..., None]) -> Callable[..., None]:
    """``warnings.showwarning`` that passes a warning to ``show`` only the first time its text is
    shown in this process (``_first_time``).

    Python's own ``once`` action cannot do this: it matches the exact text, and its per-location
    memory is forgotten whenever any filter is added, which every fit does. What filters hold back
    (``--quiet``) is never shown, so it is not counted. A local or SLURM job is a process of its
    own: its hints go, once, to its own log, not to the driver's console.
    """

    def show_warning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        if _first_time(category, str(message)):
            show(message, category, filename, lineno, file, line)

    show_warning.shows_once = True  # type: ignore[attr-defined]
    return show_warning


def _a_note_not_said_yet(record: logging.LogRecord) -> bool:
    return _first_time(record.levelno, record.getMessage())


def silence() -> None:
    """Install the filters (idempotent)."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # On a login node with SLURM, every fit run outside a job would say that srun exists: asc_kd
    # submits its own SLURM jobs (the pipeline's --executor slurm), and the hint's command line
    # ("srun python python -m ...") is not one to copy.
    warnings.filterwarnings(
        "ignore", message=r"(?s).*The `srun` command is available on your system but is not used"
    )
    # A fit inside a command (the pipeline's, a benchmark's) is handed its arguments while the
    # command's own are in sys.argv: LightningCLI's warning of both is about a mistake not made.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    if not getattr(warnings.showwarning, "shows_once", False):
        warnings.showwarning = show_once(warnings.showwarning)
    for name in LIGHTNING_NOTES:
        notes = logging.getLogger(name)
        for note_filter in (_not_a_litlogger_tip, _a_note_not_said_yet):
            if note_filter not in notes.filters:
                notes.addFilter(note_filter)


def wandb_quiet() -> bool:
    """Whether a W&B run keeps its end-of-run history and summary blocks (and its other
    narration) off the console: yes, unless ``WANDB_QUIET`` says otherwise
    (``WANDB_QUIET=false`` brings them back). They stay in the run's data either way (online:
    ``files/wandb-summary.json``; offline: the run's ``.wandb`` log, which ``wandb sync`` uploads)."""
    value = os.environ.get("WANDB_QUIET", "true").strip().lower()
    return value not in ("0", "false", "no", "off", "n", "f")


@contextlib.contextmanager
def quiet_console(*keep: str) -> Iterator[None]:
    """``--quiet``: only the records of the loggers ``keep`` (and their children) and errors
    reach the console.

    W&B is silenced through its own setting (``WANDB_SILENT``), Lightning's loggers and Python
    warnings are held back and what is printed to stdout is dropped (Lightning's test table,
    each fit's list of files). Everything is restored on exit.
    """
    silent = os.environ.get("WANDB_SILENT")
    lightning = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in lightning]
    handlers = list(logging.getLogger().handlers)

    def wanted(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or any(
            record.name == name or record.name.startswith(f"{name}.") for name in keep
        )

    os.environ["WANDB_SILENT"] = "true"
    for logger in lightning:
        logger.setLevel(logging.ERROR)
    for handler in handlers:
        handler.addFilter(wanted)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for handler in handlers:
            handler.removeFilter(wanted)
        for logger, level in zip(lightning, levels, strict=True):
            logger.setLevel(level)
        if silent is None:
            os.environ.pop("WANDB_SILENT", None)
        else:
            os.environ["WANDB_SILENT"] = silent


@contextlib.contextmanager
def quiet_onnx() -> Iterator[None]:
    """The ONNX exporter's optimiser prints a dozen lines per export ("Removed 114 unused nodes")."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
