"""What happens to a pipeline on the real one-node SLURM (``tests/cluster/start.sh``) when things go
wrong: ``scontrol requeue`` (SIGTERM, how preemption arrives), a driver killed and its command
rerun at once, a driver sent SIGTERM, a controller that stops answering, a time limit reached
on every attempt, and a detached driver followed with ``asc-kd status``. Each ends in a finished
run that lost no epoch, with exactly one writer, and a record that says what happened. A job
killed for its memory ends its run failed, with the option that gives it more."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from pipeline_processes import (
    EPOCHS,
    TEACHER_RUN,
    run_pipeline,
    start_pipeline,
    start_until_a_checkpoint,
    status_when_done,
    stop_with_sigterm,
    teacher_argv,
)

from asc_kd.runs.record import read_record

pytestmark = pytest.mark.slow  # every wait below has its own time limit


def _squeue_state(job_id: str) -> str:
    listed = subprocess.run(
        ["squeue", "--noheader", "--states=all", "-o", "%T", "-j", job_id], capture_output=True, text=True
    )
    return listed.stdout.strip() or "gone"


#: The time-out test's signal delay (submitit's default is 90 s, longer than its 2-min limit).
SIGNAL_DELAY_S = 70


#: Epochs of the tiny teacher whose driver is killed: its job must still run when the rerun,
#: a new Python process importing torch and Lightning, reads the record. An epoch takes about
#: 0.1 s on a quiet 2-core machine (the test took 20 s with 80 epochs, 37 s with 250); with 80
#: the job once ended first, while the suite's other worker was busy.
EPOCHS_WHILE_A_RERUN_STARTS = 250


def _started(record: dict) -> list[dict]:
    return [attempt for attempt in record["attempts"] if attempt.get("started")]


def _epochs_done(run: Path) -> int:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["epoch"] + 1


def test_scontrol_requeue_resumes_from_the_last_checkpoint_in_the_same_wandb_run(
    slurm: None, tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    pipeline, run = start_until_a_checkpoint(teacher_argv(tiny_root, cache_dir, out), out)
    job_id = read_record(run / "run.json")["job"]["job_id"]
    subprocess.run(["scontrol", "requeue", job_id], check=True)  # SIGTERM to the job, then a restart
    output = pipeline.communicate(timeout=500)[0]
    assert pipeline.returncode == 0, output[-3000:]
    record = read_record(run / "run.json")
    assert record["state"] == "done" and record["job"]["state"] == "COMPLETED"
    attempts = _started(record)
    assert len(attempts) == 2 and {a["job_id"] for a in attempts} == {job_id}
    stderr = Path(record["job"]["logs"][1]).read_text()
    assert f"Restoring states from the checkpoint path at {run / 'checkpoints' / 'last.ckpt'}" in stderr
    assert _epochs_done(run) == EPOCHS  # every epoch once across the two attempts
    wandb_runs = sorted((run / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 2 and len({folder.name.rsplit("-", 1)[1] for folder in wandb_runs}) == 1


def test_a_job_killed_for_memory_fails_its_run_with_out_of_memory_and_the_option_to_raise(
    slurm: None, tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    # start.sh's cluster enforces --mem (jobacct_gather/linux with OverMemoryKill, polled every
    # second): a fit asking 100 MB is killed while it imports torch. SLURM says FAILED there
    # (OUT_OF_MEMORY under cgroups); slurmstepd's line in the job's stderr says why.
    out = tmp_path / "out"
    done = run_pipeline(
        teacher_argv(tiny_root, cache_dir, out, "--mem-per-run", "100M", epochs=1), timeout=300
    )
    assert done.returncode == 1, done.stdout[-3000:]
    record = read_record(out / TEACHER_RUN / "run.json")
    assert record["job"]["state"] in ("FAILED", "OUT_OF_MEMORY"), record["job"]
    assert "Exceeded job memory limit" in Path(record["job"]["logs"][1]).read_text()
    assert record["state"] == "failed"
    assert record["reason"] == "out of memory: give it more with --mem-per-run"
    (error,) = [line for line in done.stdout.splitlines() if line.startswith("error: ")]
    assert "fitting teacher, seed 0" in error and "out of memory: give it more with --mem-per-run" in error
    assert not (out / TEACHER_RUN / "checkpoints" / "last.ckpt").exists()


def test_a_killed_drivers_rerun_adopts_its_running_job_one_writer(
    slurm: None, tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = teacher_argv(tiny_root, cache_dir, out, epochs=EPOCHS_WHILE_A_RERUN_STARTS)
    pipeline, run = start_until_a_checkpoint(argv, out)
    pipeline.kill()
    pipeline.wait()
    job_id = read_record(run / "run.json")["job"]["job_id"]
    rerun = run_pipeline(argv)  # at once, while the orphan job runs
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert f"adopting teachers/teacher-seed0: running slurm job {job_id}; waiting for it" in rerun.stdout
    record = read_record(run / "run.json")
    assert record["state"] == "done" and [a["job_id"] for a in _started(record)] == [job_id]
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1  # one writer: one W&B run, one CSV
    assert len(list((run / "csv").glob("version_*"))) == 1
    assert _epochs_done(run) == EPOCHS_WHILE_A_RERUN_STARTS


def test_a_driver_sent_sigterm_cancels_its_jobs_records_them_and_the_rerun_resumes(
    slurm: None, tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = teacher_argv(tiny_root, cache_dir, out)
    pipeline, run = start_until_a_checkpoint(argv, out)
    output = stop_with_sigterm(pipeline)
    assert "Traceback" not in output
    assert (
        f"pipeline stopped by SIGTERM: cancelled its running jobs; the runs' records are in {out}" in output
    )
    record = read_record(run / "run.json")
    assert record["state"] == "cancelled" and record["reason"] == "cancelled with its driver"
    assert re.search(r"^cancelled  teacher teacher seed 0  .+  cancelled with its driver$", output, re.M)
    assert _squeue_state(record["job"]["job_id"]) in ("CANCELLED", "COMPLETING", "gone")
    assert read_record(out / "driver.json")["state"] == "stopped"
    rerun = run_pipeline(argv)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert "resuming teachers/teacher-seed0 from its last checkpoint: it was cancelled" in rerun.stdout
    assert read_record(run / "run.json")["state"] == "done" and _epochs_done(run) == EPOCHS


@pytest.mark.cluster_exclusive
def test_a_controller_that_stops_answering_is_waited_for_not_judged(
    slurm: None, tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """slurmctld stopped for longer than several polls while the job runs on: the driver waits
    with a line on the console and ends with the finished run."""
    out = tmp_path / "out"
    argv = teacher_argv(tiny_root, cache_dir, out, epochs=250)  # on through the outage
    pipeline, run = start_until_a_checkpoint(argv, out)
    pid_file = Path(os.environ.get("ASC_KD_SLURM_DIR", "/tmp/asc_kd-slurm")) / "slurmctld.pid"
    os.kill(int(pid_file.read_text()), signal.SIGTERM)
    try:
        time.sleep(30)  # longer than squeue's own retries (~18 s) and many polls of 2 s
    finally:
        subprocess.run(["slurmctld"], check=True)
    output = pipeline.communicate(timeout=500)[0]
    assert pipeline.returncode == 0, output[-3000:]
    assert "the SLURM controller does not answer (squeue failed); waiting for it, jobs keep running" in output
    assert read_record(run / "run.json")["state"] == "done" and _epochs_done(run) == 250


@pytest.mark.cluster_exclusive  # its 2-min limits would stretch on a loaded machine
def test_a_run_timed_out_on_every_attempt_says_time_limit_and_a_rerun_resumes_it(
    slurm: None, tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """Every attempt of a run that cannot finish in its limit is signalled (USR2) and requeued,
    until submitit gives up. The run ends ``timeout``, named as a time limit, and the rerun (with
    a limit that fits) resumes from the last checkpoint.

    SLURM sends the signal at its first time-limit check (every 30 s) that finds fewer than the
    delay plus 30 s left: with a 2-minute limit and a 70-s delay, between 20 s and 50 s into an
    attempt. That is after the job's Python has installed submitit's handler (a signal before it
    kills the job: ``failed``) and, on a quiet machine, after an epoch's checkpoint."""
    out = tmp_path / "out"
    limit = ("--time-per-run", "2", "--slurm-param", f"signal=USR2@{SIGNAL_DELAY_S}")
    argv = teacher_argv(tiny_root, cache_dir, out, *limit, epochs=100_000)  # never in time
    done = run_pipeline(argv, timeout=600)
    assert done.returncode == 1
    run = out / TEACHER_RUN
    record = read_record(run / "run.json")
    assert record["state"] == "timeout", done.stdout[-3000:]
    assert "time limit reached" in done.stdout  # on every attempt (submitit), or by SLURM at the limit
    assert re.search(r"^timeout  teacher teacher seed 0  .+  time limit reached", done.stdout, re.M)
    assert len(_started(record)) >= 2  # requeued at least once (submitit allows 3)
    assert _epochs_done(run) > 0
    argv[argv.index("--time-per-run") + 1] = "60"  # resources are not the run's configuration
    rerun = start_pipeline(argv)
    line = rerun.stdout.readline()
    assert line.startswith(
        "resuming teachers/teacher-seed0 from its last checkpoint: it timed out (time limit"
    )
    deadline = time.monotonic() + 300
    restored = "Restoring states from the checkpoint path at"
    while time.monotonic() < deadline:
        logs = (read_record(run / "run.json").get("job") or {}).get("logs") or []
        if len(logs) == 2 and Path(logs[1]).is_file() and restored in Path(logs[1]).read_text():
            break
        time.sleep(1)
    rerun.send_signal(signal.SIGTERM)  # it resumed: enough (it would fit 100,000 epochs)
    rerun.communicate(timeout=120)
    assert restored in Path(read_record(run / "run.json")["job"]["logs"][1]).read_text()


def test_detach_returns_at_once_and_the_pipeline_finishes_without_a_driver_in_the_terminal(
    slurm: None, tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = teacher_argv(tiny_root, cache_dir, out, epochs=2)
    started = time.monotonic()
    detached = run_pipeline([*argv[: argv.index("--")], "--detach", *argv[argv.index("--") :]], timeout=120)
    assert detached.returncode == 0, detached.stdout[-3000:]
    assert time.monotonic() - started < 60
    assert "driver submitted as slurm job" in detached.stdout
    shown = status_when_done(out, timeout=500)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("driver: done (slurm job ")
    assert lines[1].split() == [
        "kind",
        "recipe",
        "seed",
        "state",
        "attempt",
        "job",
        "epoch",
        "metric",
        "elapsed",
        "log",
    ]
    row = lines[2].split()
    assert row[:5] == ["teacher", "teacher", "0", "done", "1"] and row[6] == "2/2"
    assert lines[-1] == "1 of 1 run(s) done"
