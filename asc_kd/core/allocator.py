"""Keep freed memory in the process, so PyTorch's CPU tensors stop paying for fresh pages.

PyTorch frees a CPU tensor with ``free``. glibc serves a block over its mmap threshold (128 KiB
at first, adapting up to 32 MiB) with new ``mmap`` pages and unmaps them on ``free``, and it
hands the top of its heap back to the system once more than 128 KiB of it is free. Every batch
then touches its activations as fresh zeroed pages, one page fault per 4 KiB: system1's eval
forward at batch 256 took about 800 faults per clip and ran at 0.54x the speed it runs with the
pages kept (``python -m asc_kd.bench eval`` measures both). Raising both thresholds to 1 GiB
keeps the memory for the next batch, as the tcmalloc/jemalloc setups recommended for PyTorch
on CPU do; the cost is that the process keeps its peak memory until it exits.

Only glibc (Linux) has these settings; elsewhere nothing changes. ``ASC_KD_KEEP_FREED_MEMORY=0``
leaves malloc as it is.
"""

from __future__ import annotations

import ctypes
import os
import platform

ENV = "ASC_KD_KEEP_FREED_MEMORY"
THRESHOLD = 1 << 30
"""Blocks up to this size come from (and go back to) the heap; the heap keeps this much free."""

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to ``THRESHOLD``, once per process.

    Called by every ``python -m asc_kd.*`` command and by ``asc_kd.training.fit.fit``. Returns whether
    the settings are in force (False off glibc, when ``ASC_KD_KEEP_FREED_MEMORY=0``, or when
    glibc refuses them). Forked DataLoader workers inherit them.
    """
    global _applied
    if _applied is None:
        _applied = False
        if os.environ.get(ENV, "1") != "0" and platform.libc_ver()[0] == "glibc":
            try:
                libc = ctypes.CDLL("libc.so.6")
            except OSError:
                return False
            _applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, THRESHOLD)) and bool(
                libc.mallopt(_M_TRIM_THRESHOLD, THRESHOLD)
            )
    return _applied
