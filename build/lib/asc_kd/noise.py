"""Silence what third-party libraries print that a user cannot act on.

Called by every command (``asc_kd.errors.run_command``) and by ``asc_kd.cli.fit``: Lightning's
tip to install litlogger, its ``LeafSpec`` deprecation notice (raised inside Lightning), and
what the ONNX exporter's optimiser narrates (``quiet_onnx``). Warnings about the user's own
setup are left alone.
"""

from __future__ import annotations

import contextlib
import io
import logging
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
