"""``keep_freed_memory``: a freed tensor's pages are reused instead of faulted in again."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from asc_kd.core.allocator import ENV

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# Page faults per clip of system1's eval forward at batch 64, after three batches (the heap
# grows over the first few, as posix_memalign asks slightly more than a freed block's size).
CHILD = """
import json, resource, torch
from asc_kd.core.allocator import keep_freed_memory
from asc_kd.models import get_model
kept = keep_freed_memory()
torch.set_num_threads(1)
model, x = get_model("system1").eval(), torch.randn(64, 1, 256, 44)
with torch.inference_mode():
    for _ in range(3):
        model(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        model(x)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"kept": kept, "faults": faults / 192}))
"""


# glibc's thresholds start at 128 KiB and adapt to the blocks freed, in the order they are freed:
# under load that order once let the baseline keep its blocks (0.005 faults per clip). Both
# children start from the thresholds pinned at those 128 KiB, which disables the adaptation, so
# the baseline maps every large block afresh on every machine, however busy; keep_freed_memory's
# mallopt must then override them. One thread: no pool frees blocks in its own order.
PINNED = {
    "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold=131072",
    "OMP_NUM_THREADS": "1",
}


def _faults_per_clip(setting: str) -> dict:
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        env={**os.environ, **PINNED, ENV: setting},
        capture_output=True,
        text=True,
    )
    assert child.returncode == 0, child.stderr
    return json.loads(child.stdout.strip().splitlines()[-1])


@glibc
def test_freed_pages_are_reused_instead_of_faulted_in_again() -> None:
    default, kept = _faults_per_clip("0"), _faults_per_clip("1")
    assert (default["kept"], kept["kept"]) == (False, True)
    # The first conv's output alone is 32 x 127 x 21 floats = 83 pages of 4 KiB per clip.
    assert default["faults"] > 80  # every large activation mmap'd afresh
    assert kept["faults"] < 1  # the heap kept the blocks


@glibc
def test_commands_keep_freed_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import asc_kd.core.allocator as allocator
    from asc_kd.core.command_line import run_command

    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.delenv(ENV, raising=False)
    assert run_command(lambda argv: 0, []) == 0
    assert allocator._applied is True
