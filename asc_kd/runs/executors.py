"""Where the pipeline's runs execute: in the pipeline's own process (``inline``), as processes on
this machine (``local``), or as SLURM jobs (``slurm``); the last two through submitit, which
writes the sbatch scripts, pickles each run and brings its result (or traceback) back.

The pipeline hands a stage's runs to ``run_jobs`` and gets each run's outcome as it finishes,
read from the run's record (``asc_kd.runs.record``, which the job writes), submitit's result
file or the scheduler. A run that SLURM signals with USR2 before its time limit is requeued by
submitit (its ``Checkpointable`` protocol; Lightning's own SLURM auto-requeue is switched off in
the jobs); one that SLURM stops with SIGTERM (``scontrol requeue``, preemption, cancel) ends its
attempt without an error and resumes from its ``last.ckpt`` in the same W&B run when it starts
again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import submitit
import torch
from submitit.helpers import Checkpointable, DelayedSubmission

from asc_kd.core.errors import ConfigError, UserError, error_line
from asc_kd.core.io import abandoned
from asc_kd.runs.record import (
    ENDED_STATES,
    HEARTBEAT_DEAD,
    HEARTBEAT_S,
    artifacts_of,
    heartbeat,
    now,
    read_record,
    this_process,
    update_record,
    writer_lock,
)
from asc_kd.runs.resources import ExecutorConfig, sbatch_refusals

log = logging.getLogger(__name__)

#: SLURM states after which a job neither runs nor comes back.
ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "TIMEOUT"}


class RunFailed(UserError):
    """One or more runs of a stage failed; the message names each with its job id and log."""


class Stopped(SystemExit):
    """This process was asked to stop (SIGTERM or SIGINT) and is ending without a result.

    A ``SystemExit``, so that neither Lightning nor submitit records it as the run's error:
    submitit writes no result for it, and the job's record says it was stopped, not failed.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


class JobCall(Checkpointable):
    """One run as a job: calls ``function`` and returns its result with the job's start and end.

    Every start resumes when ``resume_from`` (the run's ``last.ckpt``) exists: a job that SLURM
    requeues by itself (``scontrol requeue``, preemption) starts its first call again, and
    must not refit from epoch 0. With a ``record`` (``asc_kd.runs.record``), the call is the
    folder's only writer (a second one is refused), marks the record running with its owner
    and a heartbeat, and leaves it done (result, artifacts), failed (why), or stopped by
    SIGTERM, which is how SLURM delivers a requeue, a preemption, a time limit and a cancel
    alike: Lightning stops at the next batch, the record keeps the attempt, and no error is
    reported, so the requeued job (or a rerun) resumes from ``last.ckpt`` in the same W&B run.
    At a time limit signalled by USR2, submitit calls ``checkpoint`` and requeues ``resume``.
    """

    def __init__(
        self,
        function: Callable[[], dict[str, Any]],
        resume: Callable[[], dict[str, Any]] | None = None,
        record: Path | None = None,
        resume_from: Path | None = None,
    ):
        self.function = function
        self.resume = resume
        self.record = record
        self.resume_from = resume_from
        self.requeued = False
        self.stopped_by: int | None = None
        #: CPUs of a job process (set by the executor); None: the caller's process (inline).
        self.threads: int | None = None

    def _use_given_cpus(self) -> None:
        """torch's threads = the CPUs this job was given, not every core of the machine: SLURM's
        allocation, else the executor's share (``--cpus-per-run``, or the cores divided among the
        ``--max-parallel`` local jobs). Jobs that each take every core slow each other down."""
        if self.threads is None:
            return
        allocated = re.match(
            r"\d+", os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("SLURM_JOB_CPUS_PER_NODE") or ""
        )
        torch.set_num_threads(int(allocated.group()) if allocated else self.threads)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        """Note the signal; stop at once unless a Lightning fit is running, which stops itself at
        the next batch (its own handler, composed with this one, ends the loop)."""
        self.stopped_by = signum
        if signal.getsignal(signal.SIGTERM) == self._on_sigterm:  # bound methods: equal, not identical
            raise Stopped(signum)

    def __call__(self) -> dict[str, Any]:
        started = time.time()
        resuming = (
            self.resume is not None and self.resume_from is not None and Path(self.resume_from).is_file()
        )
        function = self.resume if resuming else self.function
        self.stopped_by = None
        self._use_given_cpus()
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, self._on_sigterm) if in_main_thread else None
        try:
            with self._as_writer():
                try:
                    with heartbeat(self.record) if self.record else contextlib.nullcontext():
                        value = function()
                except BaseException as error:
                    if type(error).__name__ == "UncompletedJobError" and "timed-out" in str(error):
                        why = f"time limit reached on every attempt ({error}); a rerun resumes it"
                        self._mark(state="timeout", reason=why)
                        raise
                    if self.stopped_by is not None or isinstance(error, Stopped) or self.requeued:
                        # the attempt ends here (its W&B service may be gone too): no result, no error
                        signum = (
                            signal.SIGUSR2
                            if self.requeued
                            else self.stopped_by or getattr(error, "signum", 15)
                        )
                        self._mark_stopped(signal.Signals(signum).name)
                        raise Stopped(signum) from None
                    self._mark(state="failed", reason=error_line(error))
                    if isinstance(error, SystemExit) and error.code not in (None, 0):  # a parser refusing
                        raise RuntimeError(
                            f"the run exited with code {error.code}; its log says why"
                        ) from None
                    raise
                self._mark_done(value)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return {"value": value, "started": started, "ended": time.time(), "host": socket.gethostname()}

    @contextlib.contextmanager
    def _as_writer(self) -> Iterator[None]:
        """Hold the run's writer lock and record this attempt's start (nothing without a record)."""
        if self.record is None:
            yield
            return
        with writer_lock(self.record):
            me = this_process()

            def start(record: dict[str, Any]) -> None:
                attempts = record.setdefault("attempts", [])
                last = attempts[-1] if attempts else None
                if not (
                    last
                    and "started" not in last
                    and last.get("job_id") in (me.get("job_id"), str(me["pid"]))
                ):
                    last = {}
                    attempts.append(last)
                last.update({k: v for k, v in me.items() if k != "restart"}, started=now())
                record.update(state="running", reason=None, owner={**me, "heartbeat": time.time()})

            update_record(self.record, start)
            yield

    def _mark(self, **fields: Any) -> None:
        if self.record is None:
            return

        def end(record: dict[str, Any]) -> None:
            if record.get("attempts"):
                record["attempts"][-1].update(ended=now(), why=fields.get("reason") or fields["state"])
            record.update(fields)
            if fields["state"] in ENDED_STATES:  # a stopped attempt's job may come back: keep its owner
                record["owner"] = None

        update_record(self.record, end)

    def _mark_done(self, value: dict[str, Any]) -> None:
        if self.record is not None:
            self._mark(state="done", reason=None, result=value, artifacts=artifacts_of(value))

    def _mark_stopped(self, signal_name: str) -> None:
        """An attempt stopped by a signal waits for its requeue (or a rerun), which resumes it; a
        run cancelled on purpose (``--cancel``) stays cancelled."""
        if self.record is None:
            return
        why = "time limit or preemption (USR2)" if signal_name == "SIGUSR2" else f"stopped by {signal_name}"
        why += "; it resumes from its last checkpoint when it starts again"

        def stopped(record: dict[str, Any]) -> None:
            if record.get("attempts"):
                record["attempts"][-1].update(ended=now(), why=why)
            if record.get("state") != "cancelled":
                record.update(state="submitted", reason=why)

        update_record(self.record, stopped)

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        log.info("requeued: the run restarts%s", " from its last checkpoint" if self.resume else "")
        self.requeued = True
        return DelayedSubmission(
            JobCall(self.resume or self.function, self.resume, self.record, self.resume_from)
        )


@dataclass(frozen=True)
class Job:
    """One run of a stage: its manifest key, resource kind, name for messages, and call; ``adopt``
    is the live owner (job id or pid) of a run another driver started, waited for instead of
    submitted again."""

    key: str
    kind: str
    label: str
    call: JobCall
    adopt: dict[str, Any] | None = None


@dataclass
class Outcome:
    """How a job ended: its result (``None`` when it failed) and what the manifest records of it."""

    job: Job
    value: dict[str, Any] | None
    record: dict[str, Any]
    error: str | None = None
    #: the run record's state: done, failed, cancelled or timeout
    state: str = "done"


def _stamp(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds).isoformat(timespec="seconds")


def run_jobs(config: ExecutorConfig, jobs: list[Job], folder: Path) -> Iterator[Outcome]:
    """Run ``jobs`` (one stage's, independent of each other) and yield each outcome as it ends.

    ``inline`` calls them one after another in this process (an error propagates); ``local``
    and ``slurm`` submit at most ``max_parallel`` at once through submitit, with their logs in
    ``folder``, and wait for adopted ones.
    """
    if config.executor == "inline":
        for job in jobs:
            if job.adopt is not None:  # another driver's inline run lives in that driver
                yield from _Submitter(config, folder).run([job])
                continue
            log.info("%s", job.label)
            if job.call.record is not None:
                _record_submitted(job, {"executor": "inline", "job_id": str(os.getpid())})
            result = job.call()
            record = {"executor": "inline", "state": "COMPLETED", "started": _stamp(result["started"])}
            yield Outcome(job, result["value"], {**record, "ended": _stamp(result["ended"])})
        return
    yield from _Submitter(config, folder).run(jobs)


def _record_submitted(job: Job, record: dict[str, Any]) -> None:
    """The driver's part of a record: the run is submitted, as a new attempt with its job id."""

    def submitted(run: dict[str, Any]) -> None:
        run.setdefault("attempts", []).append(
            {
                "executor": record["executor"],
                "job_id": record["job_id"],
                "submitted": now(),
                "log": (record.get("logs") or [None])[-1],
            }
        )
        run.update(state="submitted", reason=None, job=record)
        run["owner"] = {
            "executor": record["executor"],
            "job_id": record["job_id"],
            "host": socket.gethostname(),
        }

    update_record(job.call.record, submitted)


def _visible_gpus() -> list[int]:
    """This machine's GPUs as CUDA numbers them for child processes (``CUDA_VISIBLE_DEVICES``)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [int(gpu) for gpu in visible.split(",") if gpu.strip().isdigit()]
    import torch

    return list(range(torch.cuda.device_count()))


#: SLURM states of a job that is queued, running or on its way back (requeued).
LIVE = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESIZING",
    "SUSPENDED",
    "STOPPED",
    "SIGNALING",
    "STAGE_OUT",
}


def slurm_states(job_ids: list[str]) -> dict[str, str] | None:
    """SLURM's state of each job, or None when the scheduler does not answer.

    Asked of ``squeue``, which keeps ended jobs for ``MinJobAge``; a job it no longer lists has
    ended. submitit's own ``job.state`` asks ``sacct``, which needs job accounting (off on many
    small clusters, this test cluster included) and cannot tell "the controller did not answer"
    from "no such job": a scheduler that does not answer must be a wait, never a verdict.
    """
    try:
        listed = subprocess.run(
            ["squeue", "--noheader", "--states=all", "-o", "%i %T", "-j", ",".join(job_ids)],
            capture_output=True,
            text=True,
            timeout=15,  # squeue itself retries a silent controller for ~18 s
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listed.returncode != 0 and "Invalid job id" not in listed.stderr:
        return None
    states = dict(line.split()[:2] for line in listed.stdout.splitlines() if len(line.split()) >= 2)
    return {job_id: states.get(job_id, "COMPLETED") for job_id in job_ids}


def _is_slurm(owner: dict[str, Any]) -> bool:
    return owner.get("executor") == "slurm" and bool(owner.get("job_id"))


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (this one included)."""
    return pid == os.getpid() or not abandoned(pid)


def owner_alive(owner: dict[str, Any] | None, states: dict[str, str] | None = None) -> bool | None:
    """Whether a record's owner still works on the run: its SLURM job is queued, running or
    requeued (between two attempts no process lives, yet the job will come back), or its
    process lives on this host, or (on another host) its heartbeat is recent. None: the
    scheduler did not answer, so nobody can tell yet. ``states``: SLURM's states already asked
    for (``owners_alive``), else squeue is asked for this owner's job."""
    if not owner:
        return False
    if _is_slurm(owner):
        job_id = str(owner["job_id"])
        if states is None or job_id not in states:
            states = slurm_states([job_id])
        return None if states is None else states[job_id] in LIVE
    pid = owner.get("pid") or owner.get("job_id")  # a local job's id is its pid
    if owner.get("host") == socket.gethostname() and str(pid).isdigit():
        return _pid_alive(int(pid))
    beat = owner.get("heartbeat")
    return beat is not None and time.time() - beat < HEARTBEAT_S * HEARTBEAT_DEAD


def owners_alive(owners: list[dict[str, Any] | None]) -> list[bool | None]:
    """``owner_alive`` of each owner, with one squeue call for all their SLURM jobs (a status of
    30 runs asks the controller once, not 30 times)."""
    job_ids = sorted({str(o["job_id"]) for o in owners if o and _is_slurm(o)})
    states = slurm_states(job_ids) if job_ids else {}
    if states is None:  # the scheduler did not answer: nobody can tell for its jobs
        return [None if o and _is_slurm(o) else owner_alive(o) for o in owners]
    return [owner_alive(o, states) for o in owners]


class _Adopted:
    """A run started by another driver, watched through its record and its owner's liveness."""

    def __init__(self, owner: dict[str, Any], folder: Path) -> None:
        self.job_id = str(owner.get("job_id") or owner.get("pid"))
        self.owner = owner
        self.paths = submitit.core.utils.JobPaths(folder, job_id=self.job_id)

    def cancel(self, check: bool = False) -> None:
        cancel_owner(self.owner)

    def done(self) -> bool:
        return owner_alive(self.owner) is False


def cancel_owner(owner: dict[str, Any]) -> None:
    """Stop a run's owner: ``scancel`` its SLURM job, or SIGTERM its process on this host."""
    if _is_slurm(owner):
        subprocess.run(["scancel", str(owner["job_id"])], capture_output=True)
        return
    pid = owner.get("pid") or owner.get("job_id")
    if owner.get("host") == socket.gethostname() and str(pid).isdigit():
        with contextlib.suppress(OSError):
            os.kill(int(pid), signal.SIGTERM)


class _Submitter:
    """Submits jobs through submitit, at most ``max_parallel`` at a time, and watches them end.

    A job's end is read first from its run record (the job writes it, whoever submitted it),
    then from submitit's result file, then from the scheduler. The scheduler is polled here
    rather than through submitit's ``as_completed``/``job.state``, which ask ``sacct``: see
    ``slurm_states``; and ``as_completed`` cannot wait on a job another driver submitted (an
    adopted run). A scheduler that does not answer is waited for with backoff. Runs are
    submitted one by one, not as submitit's ``batch()`` arrays: each has its own name, record
    and resources, and ``max_parallel`` holds back the rest of a stage.
    """

    def __init__(self, config: ExecutorConfig, folder: Path) -> None:
        self.config = config
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        if config.executor == "slurm":
            self.executor: submitit.Executor = submitit.SlurmExecutor(folder=folder)
        else:
            self.executor = submitit.LocalExecutor(folder=folder)

    def _gpu_groups(self, jobs: list[Job]) -> list[list[int]] | None:
        """For ``local``: disjoint GPU sets of ``gpus`` each, one per concurrent run (None: no GPUs)."""
        need = max(self.config.resources[job.kind].gpus for job in jobs)
        if need == 0:
            return None
        gpus = _visible_gpus()
        groups = [gpus[i : i + need] for i in range(0, len(gpus) - need + 1, need)]
        if not groups:
            raise ConfigError(f"--gpus-per-run {need}: this machine shows {len(gpus)} GPU(s) ({gpus})")
        return groups

    def _submit(self, job: Job, gpus: list[int] | None) -> submitit.Job:
        resources = self.config.resources[job.kind]
        job.call.threads = resources.cpus or max(1, (os.cpu_count() or 1) // self.limit)
        name = "asc_kd-" + job.key.replace(":", "-")
        if self.config.executor == "slurm":
            self.executor.update_parameters(job_name=name, **resources.slurm_parameters())
        else:
            self.executor.update_parameters(
                timeout_min=resources.time_min,
                gpus_per_node=len(gpus or []),
                visible_gpus=tuple(gpus or ()),
                tasks_per_node=resources.tasks or 1,
                setup=list(resources.setup),
            )
        with sbatch_refusals(job.label, job.kind, resources):
            return self.executor.submit(job.call)

    def _record(self, job: Job, submitted: Any, at: float) -> dict[str, Any]:
        return {
            "executor": self.config.executor,
            "job_id": str(submitted.job_id),
            "logs": [str(submitted.paths.stdout), str(submitted.paths.stderr)],
            "submitted": _stamp(at),
            "resources": asdict(self.config.resources[job.kind]),
        }

    def _start(self, job: Job, gpus: list[int] | None) -> tuple[Any, dict[str, Any]]:
        """Submit ``job``, or take over watching the live owner it adopts."""
        if job.adopt is not None:
            adopted = _Adopted(job.adopt, self.folder)
            record = {
                **(job.adopt.get("job") or {}),
                "executor": job.adopt.get("executor", self.config.executor),
            }
            record.setdefault("job_id", adopted.job_id)
            record.setdefault("logs", [str(adopted.paths.stdout), str(adopted.paths.stderr)])
            return adopted, record
        submitted = self._submit(job, gpus)
        record = self._record(job, submitted, time.time())
        if job.call.record is not None:
            _record_submitted(job, record)
        log.info(
            "%s: %s job %s (log %s)", job.label, self.config.executor, submitted.job_id, record["logs"][0]
        )
        return submitted, record

    def _ended(
        self, running: dict[str, tuple[Job, Any, dict[str, Any], Any]], suspects: dict[str, str]
    ) -> tuple[dict[str, str | None], dict[str, str]]:
        """The jobs that ended, each with how SLURM ended it when it left no result (None: it left
        one), and the SLURM jobs seen ended without a result yet (next poll's suspects: a job seen
        so twice in a row has no result coming, e.g. killed or cancelled)."""
        ended: dict[str, str | None] = {}
        waiting = []
        for job_id, (job, submitted, _, _) in running.items():
            record = read_record(job.call.record) if job.call.record is not None else None
            if (
                record is not None
                and record.get("state") in ENDED_STATES
                and record.get("job", {}).get("job_id", job_id) == job_id
            ):
                ended[job_id] = None
            elif submitted.paths.result_pickle.exists():
                ended[job_id] = None
            elif not (
                _is_slurm(submitted.owner)
                if isinstance(submitted, _Adopted)
                else self.config.executor == "slurm"
            ):
                if submitted.done():  # a local process that ended without a result
                    ended[job_id] = "FAILED"
            else:
                waiting.append(job_id)
        if not waiting:
            return ended, {}
        states = slurm_states(waiting)
        if states is None:
            self._scheduler_silent()
            return ended, suspects
        self.silent_since = None
        without = {job_id: state for job_id, state in states.items() if state in ENDED}
        ended.update({job_id: state for job_id, state in without.items() if job_id in suspects})
        return ended, without

    def _scheduler_silent(self) -> None:
        """Say once, then every time the wait doubles, that the scheduler does not answer."""
        now_s = time.monotonic()
        if self.silent_since is None:
            self.silent_since, self.backoff = now_s, self.config.poll_s
            log.warning(
                "the SLURM controller does not answer (squeue failed); waiting for it, jobs keep running"
            )
        else:
            self.backoff = min(2 * self.backoff, 60.0)
            log.info("still no answer from the SLURM controller after %.0f s", now_s - self.silent_since)

    def run(self, jobs: list[Job]) -> Iterator[Outcome]:
        groups = self._gpu_groups(jobs) if self.config.executor == "local" else None
        limit = self.config.max_parallel or (1 if self.config.executor == "local" else len(jobs))
        if groups is not None:
            limit = min(limit, len(groups))
        self.limit = limit
        pending = list(jobs)
        running: dict[str, tuple[Job, Any, dict[str, Any], list[int] | None]] = {}
        suspects: dict[str, str] = {}
        self.silent_since: float | None = None
        self.backoff = self.config.poll_s
        try:
            while pending or running:
                while pending and (len(running) < limit or pending[0].adopt is not None):
                    job = pending.pop(0)
                    gpus = groups.pop(0) if groups is not None and job.adopt is None else None
                    submitted, record = self._start(job, gpus)
                    running[str(record["job_id"])] = (job, submitted, record, gpus)
                time.sleep(self.backoff if self.silent_since is not None else self.config.poll_s)
                ended, suspects = self._ended(running, suspects)
                for job_id in sorted(ended, key=lambda i: int(i) if i.isdigit() else 0):
                    job, submitted, record, gpus = running.pop(job_id)
                    if gpus is not None:
                        groups.append(gpus)
                    yield self._outcome(job, submitted, record, ended[job_id])
        except BaseException as error:  # stopped (a signal, Ctrl-C) or broken
            self.stop(running, leave=isinstance(error, Stopped) and self.config.leave_jobs)
            raise

    def stop(self, running: dict[str, tuple[Job, Any, dict[str, Any], Any]], leave: bool) -> None:
        """Cancel the running jobs and record them cancelled, or (``leave``) record that they were
        left running for a later driver to adopt."""
        for job, submitted, record, _ in running.values():
            if leave:
                log.info("%s: left running as %s job %s", job.label, self.config.executor, record["job_id"])
                continue
            submitted.cancel(check=False)
            if job.call.record is not None:
                update_record(
                    job.call.record,
                    lambda r: r.update(state="cancelled", reason="cancelled with its driver", owner=None),
                )

    def _outcome(self, job: Job, submitted: Any, record: dict[str, Any], state: str | None) -> Outcome:
        """The job's result, or why it has none: its record, its traceback's last line, or how
        SLURM ended it."""
        run = read_record(job.call.record) if job.call.record is not None else None
        if run is not None and run.get("state") in ENDED_STATES and state is None:
            last = (run.get("attempts") or [{}])[-1]
            if run["state"] == "done":
                record.update(
                    state="COMPLETED", started=last.get("started"), ended=last.get("ended") or now()
                )
                record["host"] = last.get("host")
                return Outcome(job, run["result"], record)
            record.update(state=run["state"].upper(), ended=last.get("ended") or now())
            return Outcome(job, None, record, run.get("reason") or run["state"], state=run["state"])
        if state is not None:  # it ended without a result
            verdict, why = _ended_without_result(
                state, self.config.resources[job.kind].time_min, record.get("logs", [None, None])[1]
            )
            record.update(state=state if state != "COMPLETED" else "FAILED", ended=_stamp(time.time()))
            if job.call.record is not None:
                update_record(job.call.record, lambda r: _record_end(r, verdict, why))
            return Outcome(job, None, record, why, state=verdict)
        try:
            result = submitted.result()
        except Exception as error:  # the job's traceback, between submitit's dashed lines
            parts = str(error).split("-" * 22)
            lines = [
                line for line in (parts[1] if len(parts) > 2 else str(error)).splitlines() if line.strip()
            ]
            record.update(state="FAILED", ended=_stamp(time.time()))
            log.debug("%s failed:\n%s", job.label, traceback.format_exc())
            why = lines[-1].strip() if lines else type(error).__name__
            if job.call.record is not None:
                update_record(
                    job.call.record,
                    lambda r: _record_end(r, "failed", why) if r.get("state") not in ENDED_STATES else None,
                )
            return Outcome(job, None, record, why, state="failed")
        record.update(state="COMPLETED", started=_stamp(result["started"]), ended=_stamp(result["ended"]))
        record["host"] = result["host"]
        return Outcome(job, result["value"], record)


#: What slurmstepd writes into a job's stderr when it kills the job for its memory: with memory
#: accounting (``JobAcctGatherParams=OverMemoryKill``, after which SLURM says FAILED, not
#: OUT_OF_MEMORY) and with cgroups (the kernel's OOM killer).
MEMORY_KILLED = ("Exceeded job memory limit", "exceeded memory limit", "oom-kill event")


def _killed_for_memory(state: str, log: str | None) -> bool:
    if state == "OUT_OF_MEMORY":
        return True
    try:
        with open(log or "", "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 65536))  # slurmstepd writes last
            tail = handle.read().decode(errors="replace")
    except OSError:
        return False
    return any(line in tail for line in MEMORY_KILLED)


def _ended_without_result(state: str, time_min: int, log: str | None = None) -> tuple[str, str]:
    """A run record's state and one line for a job that SLURM (or the OS) ended without a result;
    ``log``: the job's stderr, where slurmstepd says it killed the job for its memory."""
    if state == "TIMEOUT":
        return "timeout", f"time limit reached ({time_min} min); a rerun resumes it from its last checkpoint"
    if _killed_for_memory(state, log):
        return "failed", "out of memory: give it more with --mem-per-run"
    if state in ("CANCELLED", "DEADLINE"):
        return "cancelled", f"the job was cancelled ({state})"
    return "failed", f"the job ended ({state}) without a result"


def _record_end(record: dict[str, Any], state: str, why: str) -> None:
    if record.get("attempts") and "ended" not in record["attempts"][-1]:
        record["attempts"][-1].update(ended=now(), why=why)
    record.update(state=state, reason=why, owner=None)


def failure_message(failed: list[Outcome]) -> str:
    """One line naming each failed run, its job id, its log and its last error line."""
    runs = "; ".join(
        f"{o.job.label} (job {o.record['job_id']}, {o.record['state']}, log {o.record['logs'][1]}): {o.error}"
        for o in failed
    )
    return (
        f"{len(failed)} run(s) failed: {runs}. "
        "Rerun the same command to resume the failed runs from their last checkpoints"
    )
