"""Silence what third-party libraries print that a user cannot act on.

Called by every command (``asc_kd.core.command_line.run_command``) and by
``asc_kd.training.fit.fit``: Lightning's
tip to install litlogger, its ``LeafSpec`` deprecation notice (raised inside Lightning), and
what the ONNX exporter's optimiser narrates (``quiet_onnx``); ``quiet_console`` is the
pipeline's ``--quiet``. Warnings about the user's own
setup are left alone.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator


def _not_a_litlogger_tip(record: logging.LogRecord) -> bool:
    return "litlogger" not in record.getMessage()


def silence() -> None:
    """Install the filters (idempotent)."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _not_a_litlogger_tip not in rank_zero.filters:
        rank_zero.addFilter(_not_a_litlogger_tip)


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
