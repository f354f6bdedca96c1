"""Where the pipeline's runs execute: in the pipeline's own process (``inline``), as processes on
this machine (``local``), or as SLURM jobs (``slurm``); the last two through submitit, which
writes the sbatch scripts, pickles each run and brings its result (or traceback) back.

The pipeline hands a stage's runs to ``run_jobs`` and gets each run's outcome as it finishes;
only the pipeline's process writes the manifest, so two runs ending together lose nothing.
A run that SLURM stops at its time limit or preempts is requeued by submitit (its
``Checkpointable`` protocol, the only requeue mechanism: Lightning's own SLURM auto-requeue is
switched off in the jobs) and a fit resumes from its ``last.ckpt`` in the same W&B run.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission

from asc_kd.core.errors import ConfigError, UserError
from asc_kd.runs.resources import ExecutorConfig, sbatch_refusals

log = logging.getLogger(__name__)

#: SLURM states after which a job neither runs nor comes back.
ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "TIMEOUT"}


class RunFailed(UserError):
    """One or more runs of a stage failed; the message names each with its job id and log."""


class JobCall(Checkpointable):
    """One run as a job: calls ``function`` and returns its result with the job's start and end.

    At a time limit or preemption submitit calls ``checkpoint`` and requeues ``resume`` (a fit
    that restarts from its ``last.ckpt``) or, without one, the same call again.
    """

    def __init__(
        self, function: Callable[[], dict[str, Any]], resume: Callable[[], dict[str, Any]] | None = None
    ):
        self.function = function
        self.resume = resume
        self.requeued = False

    def __call__(self) -> dict[str, Any]:
        started = time.time()
        try:
            value = self.function()
        except BaseException as error:
            if self.requeued:  # this attempt ends (its W&B service may be gone too): no result, no error
                raise SystemExit(1) from None
            if isinstance(error, SystemExit) and error.code not in (None, 0):  # e.g. a parser refusing
                raise RuntimeError(f"the run exited with code {error.code}; its log says why") from None
            raise
        return {"value": value, "started": started, "ended": time.time(), "host": socket.gethostname()}

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        log.info("requeued: the run restarts%s", " from its last checkpoint" if self.resume else "")
        self.requeued = True
        return DelayedSubmission(JobCall(self.resume or self.function, self.resume))


@dataclass(frozen=True)
class Job:
    """One run of a stage: its manifest key, resource kind, name for messages, and call."""

    key: str
    kind: str
    label: str
    call: JobCall


@dataclass
class Outcome:
    """How a job ended: its result (``None`` when it failed) and what the manifest records of it."""

    job: Job
    value: dict[str, Any] | None
    record: dict[str, Any]
    error: str | None = None


def _stamp(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds).isoformat(timespec="seconds")


def run_jobs(config: ExecutorConfig, jobs: list[Job], folder: Path) -> Iterator[Outcome]:
    """Run ``jobs`` (one stage's, independent of each other) and yield each outcome as it ends.

    ``inline`` calls them one after another in this process (an error propagates); ``local``
    and ``slurm`` submit at most ``max_parallel`` at once through submitit, with their logs in
    ``folder``.
    """
    if config.executor == "inline":
        for job in jobs:
            log.info("%s", job.label)
            result = job.call()
            record = {"executor": "inline", "state": "COMPLETED", "started": _stamp(result["started"])}
            yield Outcome(job, result["value"], {**record, "ended": _stamp(result["ended"])})
        return
    yield from _Submitter(config, folder).run(jobs)


def _visible_gpus() -> list[int]:
    """This machine's GPUs as CUDA numbers them for child processes (``CUDA_VISIBLE_DEVICES``)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [int(gpu) for gpu in visible.split(",") if gpu.strip().isdigit()]
    import torch

    return list(range(torch.cuda.device_count()))


class _Submitter:
    """Submits jobs through submitit, at most ``max_parallel`` at a time, and watches them end."""

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

    def _record(self, job: Job, submitted: submitit.Job, at: float) -> dict[str, Any]:
        return {
            "executor": self.config.executor,
            "job_id": str(submitted.job_id),
            "logs": [str(submitted.paths.stdout), str(submitted.paths.stderr)],
            "submitted": _stamp(at),
            "resources": asdict(self.config.resources[job.kind]),
        }

    def _slurm_states(self, job_ids: list[str]) -> dict[str, str]:
        """SLURM's state of each job (``squeue``, which keeps ended jobs for ``MinJobAge``; a job
        it no longer lists has ended). Asked of ``squeue`` rather than submitit's ``sacct``, so
        that it works where job accounting is off, as on a one-node test cluster."""
        listed = subprocess.run(
            ["squeue", "--noheader", "--states=all", "-o", "%i %T", "-j", ",".join(job_ids)],
            capture_output=True,
            text=True,
        )
        states = dict(line.split()[:2] for line in listed.stdout.splitlines() if len(line.split()) >= 2)
        return {job_id: states.get(job_id, "COMPLETED") for job_id in job_ids}

    def _ended(
        self, running: dict[str, submitit.Job], suspects: dict[str, str]
    ) -> tuple[set[str], dict[str, str]]:
        """The jobs that ended, and the SLURM jobs seen ended without a result yet (next poll's
        suspects: a job seen so twice in a row has no result coming, e.g. killed or cancelled)."""
        if self.config.executor == "local":
            return {job_id for job_id, job in running.items() if job.done()}, {}
        waiting = [job_id for job_id, job in running.items() if not job.paths.result_pickle.exists()]
        states = self._slurm_states(waiting) if waiting else {}
        without = {job_id: state for job_id, state in states.items() if state in ENDED}
        ended = (set(running) - set(waiting)) | (set(without) & set(suspects))
        return ended, without

    def run(self, jobs: list[Job]) -> Iterator[Outcome]:
        groups = self._gpu_groups(jobs) if self.config.executor == "local" else None
        limit = self.config.max_parallel or (1 if self.config.executor == "local" else len(jobs))
        if groups is not None:
            limit = min(limit, len(groups))
        pending = list(jobs)
        running: dict[str, tuple[Job, submitit.Job, dict[str, Any], list[int] | None]] = {}
        suspects: dict[str, str] = {}
        try:
            while pending or running:
                while pending and len(running) < limit:
                    job = pending.pop(0)
                    gpus = groups.pop(0) if groups is not None else None
                    submitted = self._submit(job, gpus)
                    record = self._record(job, submitted, time.time())
                    log.info(
                        "%s: %s job %s (log %s)",
                        job.label,
                        self.config.executor,
                        submitted.job_id,
                        record["logs"][0],
                    )
                    running[str(submitted.job_id)] = (job, submitted, record, gpus)
                time.sleep(self.config.poll_s)
                ended, without = self._ended({i: entry[1] for i, entry in running.items()}, suspects)
                for job_id in sorted(ended, key=int):
                    job, submitted, record, gpus = running.pop(job_id)
                    if gpus is not None:
                        groups.append(gpus)
                    yield self._outcome(job, submitted, record, suspects.get(job_id))
                suspects = without
        except BaseException:  # stopped (Ctrl-C) or broken: leave no job running unwatched
            for _, submitted, _, _ in running.values():
                submitted.cancel(check=False)
            raise

    def _outcome(
        self, job: Job, submitted: submitit.Job, record: dict[str, Any], state: str | None
    ) -> Outcome:
        """The job's result, or why it has none: its traceback's last line, or how SLURM ended it."""
        if state is not None:  # SLURM ended it without a result
            record.update(state=state if state != "COMPLETED" else "FAILED", ended=_stamp(time.time()))
            return Outcome(job, None, record, f"the job ended ({state}) without a result")
        try:
            result = submitted.result()
        except Exception as error:  # the job's traceback, between submitit's dashed lines
            parts = str(error).split("-" * 22)
            lines = [
                line for line in (parts[1] if len(parts) > 2 else str(error)).splitlines() if line.strip()
            ]
            record.update(state="FAILED", ended=_stamp(time.time()))
            log.debug("%s failed:\n%s", job.label, traceback.format_exc())
            return Outcome(job, None, record, lines[-1].strip() if lines else type(error).__name__)
        record.update(state="COMPLETED", started=_stamp(result["started"]), ended=_stamp(result["ended"]))
        record["host"] = result["host"]
        return Outcome(job, result["value"], record)


def failure_message(failed: list[Outcome]) -> str:
    """One line naming each failed run, its job id, its log and its last error line."""
    runs = "; ".join(
        f"{o.job.label} (job {o.record['job_id']}, {o.record['state']}, log {o.record['logs'][1]}): {o.error}"
        for o in failed
    )
    return (
        f"{len(failed)} run(s) failed: {runs}. Rerun the same command to resubmit the failed and missing runs"
    )
