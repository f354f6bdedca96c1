"""``make demo`` timed stage by stage (``bench demo``): where its minutes go on this machine.

The demo runs as a user first runs it, in a fresh process from an empty working folder (so the
synthetic scenes, the audio cache and every run are made anew), and the stages are read from
the records it leaves (``driver.json`` and each run's ``run.json``, ``asc_kd.runs.records``):
the seconds from one stage's end to the next one's, so the rows add up to the wall time.
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
STAGES = {"teachers": "teacher", "logits": "logits", "students": "student", "int8": "int8"}


def _ends(folder: Path) -> dict[str, float]:
    """The last end time (POSIX seconds) of each kind of run the pipeline in ``folder`` recorded."""
    ends: dict[str, float] = {}
    for path in folder.rglob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("kind") not in STAGES.values():
            continue
        for attempt in record.get("attempts") or []:
            if attempt.get("ended"):
                end = datetime.fromisoformat(attempt["ended"]).timestamp()
                ends[record["kind"]] = max(ends.get(record["kind"], 0.0), end)
    return ends


def bench_demo(args: list[str] | None = None) -> dict[str, Any]:
    """Wall seconds of ``python -m asc_kd.pipeline`` (``make demo``'s command; ``args`` are added)
    from an empty folder, and the seconds of each stage: start-up and the synthetic scenes up
    to the first teacher (the audio cache is built by the first fit that reads it, inside the
    teachers), the teachers, the logits export, the students, their int8 copies, and the
    tables and shutdown after the last run. The records hold whole seconds, so a stage of
    under a second shows 0."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.time()
        completed = subprocess.run(
            [sys.executable, "-m", "asc_kd.pipeline", "--quiet", *(args or [])],
            cwd=work,
            env={**os.environ, "WANDB_MODE": "offline"},
            capture_output=True,
            text=True,
        )
        end = time.time()
        if completed.returncode != 0:
            raise RuntimeError(f"the demo failed (exit {completed.returncode}):\n{completed.stderr[-2000:]}")
        out = work / "outputs" / "pipeline"
        driver = json.loads((out / "driver.json").read_text())
        ends = _ends(out)
        first_teacher = min(
            datetime.fromisoformat(a["started"]).timestamp()
            for path in (out / "teachers").glob("*/run.json")
            for a in json.loads(path.read_text())["attempts"]
        )
    results: dict[str, Any] = {
        "wall_s": round(end - start, 1),
        "python_start_s": round(datetime.fromisoformat(driver["started"]).timestamp() - start, 1),
        "synthetic_and_setup_s": round(
            first_teacher - datetime.fromisoformat(driver["started"]).timestamp(), 1
        ),
    }
    previous = first_teacher
    for stage, kind in STAGES.items():
        if kind in ends:
            results[f"{stage}_s"] = round(ends[kind] - previous, 1)
            previous = ends[kind]
    results["tables_and_exit_s"] = round(end - previous, 1)
    return results
