"""``make demo`` timed stage by stage (``bench demo``): where its minutes go on this machine.

The demo runs as a user first runs it, in a fresh process from an empty working folder with an
empty audio cache (``$ASC_KD_CACHE`` in it), so the synthetic scenes, the cache and every run
are made anew. The stages are read from what it leaves: the records (``driver.json`` and each
run's ``run.json``, ``asc_kd.runs.records``) and the newest file of the scenes and of the
cache; each stage is the seconds from the previous one's end to its own, so the rows add up to
the wall time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

#: The stages of ``make demo`` in the order they run: the record kinds behind each.
_RECORD_KINDS = {"teachers": "teacher", "logits": "logits", "students": "student", "int8": "int8"}


def _ends(folder: Path) -> dict[str, float]:
    """The last end time (POSIX seconds) of each kind of run the pipeline in ``folder`` recorded."""
    ends: dict[str, float] = {}
    for path in folder.rglob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("kind") not in _RECORD_KINDS.values():
            continue
        for attempt in record.get("attempts") or []:
            if attempt.get("ended"):
                end = datetime.fromisoformat(attempt["ended"]).timestamp()
                ends[record["kind"]] = max(ends.get(record["kind"], 0.0), end)
    return ends


def _newest(folder: Path) -> float | None:
    """The newest modification time of a file under ``folder`` (None when it has none)."""
    times = [path.stat().st_mtime for path in folder.rglob("*") if path.is_file()]
    return max(times) if times else None


def bench_demo(args: list[str] | None = None) -> dict[str, Any]:
    """Wall seconds of ``asc-kd pipeline`` (``make demo``'s command; ``args`` are added)
    from an empty folder, and the seconds of each stage: Python's start-up and imports up to the
    driver's record, the synthetic scenes (the driver makes them before any fit), the rest of
    the driver's setup up to the first teacher, the audio cache (the first teacher's fit fills
    it before it trains), the teachers, the logits export, the students, their int8 copies, and
    the tables and shutdown after the last run. The records hold whole seconds, so a stage of
    under a second shows 0."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.time()
        completed = subprocess.run(
            # `asc-kd pipeline`, as a user types it: the command's process, not an import of it
            [sys.executable, "-m", "asc_kd", "pipeline", "--quiet", *(args or [])],
            cwd=work,
            env={**os.environ, "WANDB_MODE": "offline", "ASC_KD_CACHE": str(work / "cache")},
            capture_output=True,
            text=True,
        )
        end = time.time()
        if completed.returncode != 0:
            raise RuntimeError(f"the demo failed (exit {completed.returncode}):\n{completed.stderr[-2000:]}")
        out = work / "outputs" / "pipeline"
        driver = json.loads((out / "driver.json").read_text())
        ends = _ends(out)
        scenes_end = _newest(work / "data")
        cache_end = _newest(work / "cache")
        first_teacher = min(
            datetime.fromisoformat(a["started"]).timestamp()
            for path in (out / "teachers").glob("*/run.json")
            for a in json.loads(path.read_text())["attempts"]
        )
    driver_start = datetime.fromisoformat(driver["started"]).timestamp()
    return _stages(start, end, driver_start, first_teacher, scenes_end, cache_end, ends)


def _stages(
    start: float,
    end: float,
    driver_start: float,
    first_teacher: float,
    scenes_end: float | None,
    cache_end: float | None,
    ends: dict[str, float],
) -> dict[str, Any]:
    """``bench_demo``'s stages from the times it read, each from the previous one's end."""
    results: dict[str, Any] = {
        "wall_s": round(end - start, 1),
        "python_start_s": round(driver_start - start, 1),
    }
    previous = driver_start
    # the driver made them before the first fit, whose start the record holds in whole seconds
    if scenes_end is not None and previous < scenes_end < first_teacher + 1:
        scenes_done = min(scenes_end, first_teacher)
        results["synthetic_scenes_s"] = round(scenes_done - previous, 1)
        previous = scenes_done
    results["driver_setup_s"] = round(first_teacher - previous, 1)
    previous = first_teacher
    # the first fit fills the cache before it trains; a later stage may add to it (another split)
    if cache_end is not None and previous < cache_end < ends.get("teacher", end):
        results["audio_cache_s"] = round(cache_end - previous, 1)
        previous = cache_end
    for stage, kind in _RECORD_KINDS.items():
        if kind in ends:
            results[f"{stage}_s"] = round(ends[kind] - previous, 1)
            previous = ends[kind]
    results["tables_and_exit_s"] = round(end - previous, 1)
    return results
