"""The rerun rules without a cluster: a driver sent SIGTERM under ``--executor inline`` (its run
stops at the next batch, recorded as stopped, and the same command resumes it), and
``--executor local --detach`` followed by ``asc-kd status`` until it is done."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from pipeline_processes import (
    run_pipeline,
    start_until_a_checkpoint,
    status_when_done,
    stop_with_sigterm,
    teacher_argv,
)

from asc_kd.runs.record import read_record

pytestmark = pytest.mark.slow


def _inline(argv: list[str], executor: str) -> list[str]:
    argv = list(argv)
    argv[argv.index("--executor") + 1] = executor
    return argv


def test_an_inline_driver_sent_sigterm_stops_its_run_and_the_same_command_resumes_it(
    tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = _inline(teacher_argv(tiny_root, cache_dir, out, epochs=200), "inline")
    pipeline, run = start_until_a_checkpoint(argv, out)
    output = stop_with_sigterm(pipeline)
    assert "Traceback" not in output and "pipeline stopped by SIGTERM" in output
    assert re.search(r"^stopped  teacher teacher seed 0  \d+ (s|min \d+ s)  stopped by SIGTERM", output, re.M)
    record = read_record(run / "run.json")
    assert record["state"] == "submitted" and record["reason"].startswith("stopped by SIGTERM")
    done = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["epoch"] + 1
    argv[argv.index("--max-epochs") + 1] = "200"
    rerun = run_pipeline(argv, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert "resuming teachers/teacher-seed0 from its last checkpoint: its owner" in rerun.stdout
    assert re.search(r"^done  teacher teacher seed 0  .*  test accuracy [01]\.\d{3}$", rerun.stdout, re.M)
    final = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["epoch"] + 1
    assert final == 200 and done < 200
    assert read_record(run / "run.json")["state"] == "done"


def test_a_detached_local_driver_finishes_on_its_own_and_status_follows_it(
    tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = _inline(teacher_argv(tiny_root, cache_dir, out, epochs=2), "local")
    detached = run_pipeline([*argv[: argv.index("--")], "--detach", *argv[argv.index("--") :]], timeout=120)
    assert detached.returncode == 0 and "driver started as pid" in detached.stdout, detached.stdout
    shown = status_when_done(out, timeout=400)
    assert shown.returncode == 0, shown.stdout + shown.stderr + (out / "driver.log").read_text()
    assert shown.stdout.splitlines()[0].startswith("driver: done (pid ")
    assert shown.stdout.splitlines()[-1] == "1 of 1 run(s) done"
    # the driver's own log says when the local job ended, how long it took and its accuracy
    said = (out / "driver.log").read_text()
    assert re.search(
        r"^done  teacher teacher seed 0  \d+ (s|min \d+ s)  test accuracy [01]\.\d{3}$", said, re.M
    )
