"""The pipeline's driver: one per ``--out``, stoppable by a signal without a traceback, and
detachable from the terminal that started it.

The driver holds the writer lock of ``<out>/driver.json`` (its record: owner, state, log), so a
second driver on the same folder is refused while the first lives, and takes over when it dies
(a killed driver's lock is released by the kernel). Its runs' state lives in their records
(``asc_kd.runs.record``), so whichever driver comes next adopts the jobs that still run.

SIGTERM (what a driver running as a job gets when cancelled, preempted or timed out) and SIGINT
(Ctrl-C) end it with one line: its jobs are cancelled and recorded so, or, for a detached
driver, left running and recorded as left, for the next driver to adopt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from asc_kd.core.errors import error_line
from asc_kd.runs.executors import JobCall, Stopped, owner_alive
from asc_kd.runs.pipeline import Pipeline, PipelineConfig
from asc_kd.runs.record import RunBusy, now, owner_text, read_record, update_record, writer_lock
from asc_kd.runs.resources import Resources

log = logging.getLogger(__name__)

DRIVER = "driver.json"


def driver_record(out: Path) -> Path:
    return Path(out) / DRIVER


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise ``Stopped`` in the main thread while the block runs."""

    def stop(signum: int, frame: Any) -> None:
        raise Stopped(signum)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def drive(config: PipelineConfig, show: Callable[[str], None] = log.info) -> int:
    """Run the pipeline as the only driver of its ``--out``, and ``show`` its tables (the command
    prints them); 128 + the signal when stopped by one."""
    out = Path(config.out)
    record = driver_record(out)
    pipeline = Pipeline(config)  # every refusal (options, resources, changed configs) before any write
    try:
        with writer_lock(record):
            me = {"pid": os.getpid(), "host": socket.gethostname(), "job_id": os.environ.get("SLURM_JOB_ID")}
            update_record(record, lambda r: r.update(state="running", started=now(), reason=None, **me))
            try:
                with _stop_on_signals():
                    tables = pipeline.run()
            except Stopped as stopped:
                left = config.executor.leave_jobs
                what = "left its jobs running" if left else "cancelled its running jobs"
                why = f"{stopped.name}: {what}"
                update_record(record, lambda r: r.update(state="stopped", reason=why))
                log.warning(
                    "pipeline stopped by %s: %s; the runs' records are in %s; `asc-kd status %s` "
                    "shows them, the same command resumes",
                    stopped.name,
                    what,
                    out,
                    out,
                )
                return int(stopped.code)
            except BaseException as error:
                why = error_line(error).splitlines()[0] if str(error) else type(error).__name__
                update_record(record, lambda r: r.update(state="failed", reason=why))
                raise
            update_record(record, lambda r: r.update(state="done", reason=None, ended=now()))
        if tables is not None:
            show(tables)
    except RunBusy:
        holder = owner_text(driver_owner(read_record(record) or {}))
        raise RunBusy(
            f"another driver runs the pipeline in {out} ({holder}): one driver "
            f"at a time; follow it with `asc-kd status {out}`, or stop it with "
            f"`asc-kd pipeline --cancel --out {out}`"
        ) from None
    return 0


#: Set in a detached local driver's environment: on SIGTERM it leaves its jobs running.
LEAVE_JOBS = "ASC_KD_LEAVE_JOBS"


def detach(config: PipelineConfig, argv: list[str]) -> int:
    """Start the driver away from this terminal and return: as a SLURM job under ``--executor
    slurm`` (requeued by submitit at its time limit; a requeued driver adopts the running jobs),
    else as a process in its own session, its output in ``<out>/driver.log``."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(
        config, detach=False, executor=dataclasses.replace(config.executor, leave_jobs=True)
    )
    record = driver_record(out)
    existing = read_record(record)
    if existing and existing.get("state") == "running" and _driver_alive(existing):
        log.info(
            "a driver already runs this pipeline (%s); `asc-kd status %s` follows it",
            owner_text(driver_owner(existing)),
            out,
        )
        return 0
    if config.executor.executor == "slurm":
        import submitit

        executor = submitit.SlurmExecutor(folder=out / "jobs")
        teacher = config.executor.resources.get("teacher", Resources())
        driver = Resources(
            time_min=teacher.time_min,
            cpus=1,
            partition=teacher.partition,
            account=teacher.account,
            qos=teacher.qos,
        )
        executor.update_parameters(job_name="asc_kd-driver", **driver.slurm_parameters())
        job = executor.submit(JobCall(partial(drive_in_job, config)))
        update_record(
            record,
            lambda r: r.update(
                state="submitted", job_id=str(job.job_id), log=str(job.paths.stdout), submitted=now()
            ),
        )
        log.info(
            "driver submitted as slurm job %s (log %s); `asc-kd status %s` follows it",
            job.job_id,
            job.paths.stdout,
            out,
        )
        return 0
    log_path = out / "driver.log"
    with open(log_path, "ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "asc_kd", "pipeline", *[arg for arg in argv if arg != "--detach"]],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a closed terminal's SIGHUP does not reach it
            env={**os.environ, LEAVE_JOBS: "1"},
        )
    update_record(
        record,
        lambda r: r.update(
            state="submitted", pid=process.pid, job_id=None, log=str(log_path), submitted=now()
        ),
    )
    log.info("driver started as pid %s (log %s); `asc-kd status %s` follows it", process.pid, log_path, out)
    return 0


def drive_in_job(config: PipelineConfig) -> int:
    """A detached driver's job: ``drive`` with its stage and decision lines in the job's log."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return drive(config)


def driver_owner(record: dict[str, Any]) -> dict[str, Any]:
    """The owner (``asc_kd.runs.executors.owner_alive``) that a driver record names: its SLURM
    job when it runs as one, else its process."""
    if record.get("job_id"):
        return {"executor": "slurm", "job_id": record["job_id"]}
    return {"pid": record.get("pid"), "host": record.get("host")}


def _driver_alive(record: dict[str, Any]) -> bool:
    return owner_alive(driver_owner(record)) is not False
