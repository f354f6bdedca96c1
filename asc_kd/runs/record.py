"""A run's record: what made it, where it stands, who writes it, and what it produced.

One small JSON file per run (``run.json`` in a fit's folder; ``<out>/stages/<name>.json`` for
the logits export and each int8 copy), written atomically under a short file lock by whoever
acts on the run: the pipeline's driver when it plans and submits, the job itself when it
starts, beats, ends or is stopped. A rerun therefore decides from the records, not from the
folder's name or a driver's memory (``asc_kd.runs.pipeline``), and a dead driver loses nothing.

A record holds:

- identity: ``config`` (the fully resolved configuration the job was handed), ``inputs`` (the
  hashes of the files it reads: teacher logits, checkpoints) and ``config_hash`` over both,
  without the keys that cannot change a result (``IDENTITY_EXCLUDED``);
- ``state``: planned -> submitted -> running -> done, or failed, cancelled, timeout;
- ``attempts``: one entry per start (executor, job id or pid, host, times, why it ended);
- ``owner``: the process writing the run now (job id, pid, host) and its ``heartbeat``;
- ``artifacts``: the files it made (checkpoint, logits, int8 copy) with size and sha256;
- ``result``: the run's report (the pipeline's manifest entry is built from it).

``job_line`` turns a record into the one console line the driver prints when a job ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from asc_kd.core.errors import UserError
from asc_kd.core.io import atomic_write
from asc_kd.core.locks import FolderLockedError, folder_lock

RECORD = "run.json"
STATES = ("planned", "submitted", "running", "done", "failed", "cancelled", "timeout")
#: States after which nobody works on the run until a rerun decides again.
ENDED_STATES = frozenset({"done", "failed", "cancelled", "timeout"})
#: Resolved-config keys that cannot change a result, left out of the identity: how a run is
#: shown and logged, where its resumable state is read from, which executor runs it (Lightning's
#: SLURM plugin), where the resampled cache lives, and the folders that the run's key already names.
IDENTITY_EXCLUDED = (
    "ckpt_path",
    "overwrite",
    "trainer.enable_progress_bar",
    "trainer.logger",
    "trainer.plugins",
    "trainer.default_root_dir",
    "checkpoint.dirpath",
    "data.cache_dir",
    "data.num_workers",
    "data.generate_synthetic",
)
#: A job's heartbeat interval (s); an owner on another host is taken for dead after
#: ``HEARTBEAT_DEAD`` heartbeats missed.
HEARTBEAT_S = 30.0
HEARTBEAT_DEAD = 4
#: Result keys that name a file the run made (hashed into ``artifacts``).
ARTIFACT_KEYS = ("checkpoint", "file", "artifact")


class RunBusy(UserError):
    """A run's folder has a writer already: a second one would corrupt its checkpoints and logs."""


def now() -> str:
    return datetime.now().isoformat(timespec="seconds")


def read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path``, or None when there is none (a record is replaced atomically, so a
    reader never sees half of one)."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold ``.<record>.lock`` beside it for a read-modify-write of a record (milliseconds): the driver and
    the job may write the same record at the same moment (a job starting as it is submitted)."""
    lock = path.parent / f".{path.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update_record(path: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Apply ``change`` to the record at ``path`` (an empty one when missing) and write it back."""
    path = Path(path)
    with _locked(path):
        record = read_record(path) or {"attempts": []}
        change(record)
        record["updated"] = now()
        with atomic_write(path) as handle:
            json.dump(record, handle, indent=2)
    return record


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: lists and scalars are leaves."""
    if not isinstance(config, dict) or not config:
        return {prefix: config} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def identity(config: dict[str, Any], inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a run's result depends on: its resolved config without ``IDENTITY_EXCLUDED``, and the
    hashes of its inputs, as flat dotted keys."""
    plain = json.loads(json.dumps(config, default=str))  # tuples and lists alike, as stored
    flat = {
        key: value
        for key, value in flatten(plain).items()
        if not any(key == skip or key.startswith(f"{skip}.") for skip in IDENTITY_EXCLUDED)
    }
    flat.update({f"inputs.{key}": value for key, value in json.loads(json.dumps(inputs or {})).items()})
    return flat


def identity_hash(flat: dict[str, Any]) -> str:
    """The sha256 of a run's identity (``identity``) in canonical JSON: its ``config_hash``."""
    return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The identity keys that differ between two (config, inputs) pairs: (key, old, new)."""
    missing = "(unset)"
    keys = sorted(set(old) | set(new))
    return [
        (k, old.get(k, missing), new.get(k, missing))
        for k in keys
        if old.get(k, missing) != new.get(k, missing)
    ]


def file_hash(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifacts_of(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The files a run's result names (``ARTIFACT_KEYS``), each with its size and sha256."""
    found = {}
    for key in ARTIFACT_KEYS:
        path = result.get(key)
        if isinstance(path, str) and Path(path).is_file():
            found[key] = {"path": path, "bytes": Path(path).stat().st_size, "sha256": file_hash(path)}
    return found


def artifacts_present(record: dict[str, Any]) -> bool:
    """Whether every file a finished run recorded is still there at its recorded size."""
    return all(
        Path(a["path"]).is_file() and Path(a["path"]).stat().st_size == a["bytes"]
        for a in record.get("artifacts", {}).values()
    )


# -- the writer of a run's folder -------------------------------------------------------------------
def owner_text(owner: dict[str, Any] | None) -> str:
    """An owner as every message names it: ``slurm job 123``, else ``pid 456 on HOST``."""
    if not owner:
        return "no owner"
    if owner.get("executor") == "slurm" and owner.get("job_id"):
        return f"slurm job {owner['job_id']}"
    pid = owner.get("pid") or owner.get("job_id")  # a local job's id is its pid
    return f"pid {pid} on {owner.get('host') or 'this host'}"


def this_process() -> dict[str, Any]:
    """Who this process is, as an owner: host, pid, and its SLURM job (with its restart count)."""
    owner: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    if os.environ.get("SLURM_JOB_ID"):
        owner.update(executor="slurm", job_id=os.environ["SLURM_JOB_ID"])
        owner["restart"] = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    return owner


@contextlib.contextmanager
def writer_lock(record: Path) -> Iterator[None]:
    """Be the only writer of the run of ``record`` while the block runs, or raise ``RunBusy``
    naming the writer.

    The record's folder lock (``asc_kd.core.locks.folder_lock``, not waited for): the kernel
    releases it when its holder dies (a killed driver or job), so a stale lock never blocks a
    rerun. The holder's SLURM job, when it has one, is recorded with it for the refusal.
    """
    record.parent.mkdir(parents=True, exist_ok=True)
    me = this_process()
    purpose = "the run" + (f" (slurm job {me['job_id']})" if "job_id" in me else "")
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(folder_lock(record, purpose, None, action="written", blocking=False))
        except FolderLockedError as busy:  # raised taking the lock, never by the block
            owner = busy.owner
            holder = f"{owner}{owner.purpose.removeprefix('the run')}" if owner else "another process"
            raise RunBusy(
                f"the run of {record} is being written by {holder}: one writer at a time; wait for it, "
                "or cancel it (asc-kd pipeline --cancel --out OUT) before starting it again"
            ) from None
        yield


@contextlib.contextmanager
def heartbeat(path: Path, interval: float = HEARTBEAT_S) -> Iterator[None]:
    """Refresh the record's ``owner.heartbeat`` every ``interval`` seconds while the block runs:
    how a driver on another host tells a live owner from a dead one."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            with contextlib.suppress(OSError):
                update_record(path, lambda r: r.setdefault("owner", {}).update(heartbeat=time.time()))

    thread = threading.Thread(target=beat, name="asc_kd-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


# -- the line a driver prints when a job ends -------------------------------------------------------
def _duration(seconds: float) -> str:
    """``4 s``, ``2 min 13 s``, ``3 h 05 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def elapsed(record: dict[str, Any]) -> str:
    """How long the run's last job ran: its attempts (a SLURM job requeued keeps its id over
    several) from start to end; a stopped attempt without an end counts to the record's last
    update. ``not started`` when no attempt of it started (cancelled while queued)."""
    attempts = record.get("attempts") or []
    job_id = attempts[-1].get("job_id") if attempts else None
    seconds = [
        datetime.fromisoformat(a.get("ended") or record.get("updated") or a["started"])
        - datetime.fromisoformat(a["started"])
        for a in attempts
        if a.get("job_id") == job_id and a.get("started")
    ]
    return _duration(sum(s.total_seconds() for s in seconds)) if seconds else "not started"


def _test_metric(result: dict[str, Any]) -> str:
    """A run's headline test number: a fit's test accuracy, an int8 copy's, or the teacher
    ensemble's (the logits stage's Table 1); empty when the result has none."""
    if "test/acc" in (result.get("test") or {}):
        return f"test accuracy {result['test']['test/acc']:.3f}"
    if "acc" in (result.get("int8") or {}):
        return f"int8 test accuracy {result['int8']['acc']:.3f}"
    ensemble = [row for row in result.get("table1") or [] if str(row.get("teacher")).startswith("ensemble")]
    if ensemble and ensemble[0].get("accuracy_mean") is not None:
        return f"ensemble test accuracy {ensemble[0]['accuracy_mean']:.3f}"
    return ""


def job_line(record: dict[str, Any]) -> str:
    """The driver's line for a job that ended: state, run, elapsed time, and its test accuracy
    (done) or why it ended (any other state), e.g. ``done  student system1 seed 0  2 min 13 s
    test accuracy 0.412``. An attempt stopped by a signal, waiting to resume, says ``stopped``."""
    state = record.get("state") or "?"
    if state not in ENDED_STATES:
        state = "stopped"
    run = " ".join(
        str(part)
        for part in (
            record.get("kind") or record.get("key", "run"),
            record.get("name") if record.get("name") != record.get("key") else None,
            None if record.get("seed") is None else f"seed {record['seed']}",
        )
        if part
    )
    detail = _test_metric(record.get("result") or {}) if state == "done" else record.get("reason") or ""
    return "  ".join(part for part in (state, run, elapsed(record), detail) if part)
