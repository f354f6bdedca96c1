"""Run records (``asc_kd.runs.record``) and the rerun rules built on them, without a cluster:
identity and its hash, one writer per run, what a job writes into its record (done, failed,
stopped by SIGTERM, resumed), adoption of a run a live process owns, the driver's lock, and the
line the driver prints when a job ends."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from asc_kd.runs import executors
from asc_kd.runs.executors import Job, JobCall, Stopped, owner_alive, run_jobs
from asc_kd.runs.record import (
    RunBusy,
    artifacts_of,
    artifacts_present,
    changed_keys,
    identity,
    identity_hash,
    job_line,
    owner_text,
    read_record,
    update_record,
    writer_lock,
)
from asc_kd.runs.resources import ExecutorConfig


def test_identity_leaves_out_what_cannot_change_a_result_and_hashes_the_rest() -> None:
    config = {
        "trainer": {"max_epochs": 4, "enable_progress_bar": True, "logger": {"init_args": {"group": "g1"}}},
        "data": {"root": "d", "cache_dir": "c1", "num_workers": 2},
        "ckpt_path": "last",
    }
    flat = identity(config, {"teacher_logits": "abc"})
    assert flat == {"trainer.max_epochs": 4, "data.root": "d", "inputs.teacher_logits": "abc"}
    quieter = {**config, "trainer": {**config["trainer"], "enable_progress_bar": False}, "ckpt_path": None}
    quieter["data"] = {**config["data"], "cache_dir": "elsewhere"}
    assert identity_hash(identity(quieter, {"teacher_logits": "abc"})) == identity_hash(flat)
    longer = {**config, "trainer": {**config["trainer"], "max_epochs": 5}}
    assert identity_hash(identity(longer, {"teacher_logits": "abc"})) != identity_hash(flat)
    # Tuples (as a parser gives) and lists (as JSON stores) are the same value.
    assert identity({"data": {"devices": ("a", "b")}}) == identity({"data": {"devices": ["a", "b"]}})
    assert changed_keys(flat, identity(longer, {"teacher_logits": "abc"})) == [("trainer.max_epochs", 4, 5)]
    assert changed_keys({"a": 1}, {"b": 2}) == [("a", 1, "(unset)"), ("b", "(unset)", 2)]


def test_update_record_is_a_locked_read_modify_write(tmp_path: Path) -> None:
    path = tmp_path / "run" / "run.json"
    threads = [
        threading.Thread(target=lambda: update_record(path, lambda r: r.__setitem__("n", r.get("n", 0) + 1)))
        for _ in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert read_record(path)["n"] == 20
    assert sorted(p.name for p in path.parent.iterdir()) == [".run.json.lock", "run.json"]


def test_artifacts_are_hashed_and_a_changed_or_missing_one_is_seen(tmp_path: Path) -> None:
    checkpoint = tmp_path / "last.ckpt"
    checkpoint.write_bytes(b"abc")
    artifacts = artifacts_of({"checkpoint": str(checkpoint), "selection": "last", "file": None})
    sha256_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert artifacts == {"checkpoint": {"path": str(checkpoint), "bytes": 3, "sha256": sha256_abc}}
    assert artifacts_present({"artifacts": artifacts})
    checkpoint.write_bytes(b"abcd")
    assert not artifacts_present({"artifacts": artifacts})
    checkpoint.unlink()
    assert not artifacts_present({"artifacts": artifacts})


def test_a_second_writer_is_refused_naming_the_first_until_it_dies(tmp_path: Path) -> None:
    record = tmp_path / "run" / "run.json"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from asc_kd.runs.record import writer_lock\n"
            f"with writer_lock(Path({str(record)!r})):\n    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunBusy) as busy, writer_lock(record):
            pass
        assert f"pid {holder.pid} on {socket.gethostname()}" in str(busy.value)
        assert "one writer at a time" in str(busy.value)
    finally:
        holder.kill()  # a killed writer's lock is released by the kernel
        holder.wait()
    with writer_lock(record):
        pass


def test_a_job_records_its_attempt_result_and_artifacts(tmp_path: Path) -> None:
    record = tmp_path / "run" / "run.json"
    checkpoint = tmp_path / "run" / "best.ckpt"

    def work() -> dict:
        checkpoint.write_bytes(b"weights")
        assert read_record(record)["state"] == "running"
        assert read_record(record)["owner"]["pid"] == os.getpid()
        return {"checkpoint": str(checkpoint), "selection": "last"}

    update_record(record, lambda r: r.update(key="teacher:t-seed0", state="planned"))
    result = JobCall(work, record=record)()
    assert result["value"]["checkpoint"] == str(checkpoint)
    done = read_record(record)
    assert done["state"] == "done" and done["owner"] is None and done["reason"] is None
    assert done["result"] == {"checkpoint": str(checkpoint), "selection": "last"}
    assert done["artifacts"]["checkpoint"]["bytes"] == len(b"weights")
    (attempt,) = done["attempts"]
    assert (
        attempt["pid"] == os.getpid() and attempt["why"] == "done" and attempt["ended"] >= attempt["started"]
    )


def test_a_failing_job_records_why_and_the_next_start_is_a_second_attempt(tmp_path: Path) -> None:
    record = tmp_path / "run.json"

    def fail() -> dict:
        raise ValueError("lr must be positive, got -1")

    with pytest.raises(ValueError):
        JobCall(fail, record=record)()
    failed = read_record(record)
    assert failed["state"] == "failed" and failed["reason"] == "lr must be positive, got -1"
    JobCall(dict, record=record)()
    assert [a["why"] for a in read_record(record)["attempts"]] == ["lr must be positive, got -1", "done"]


def test_every_start_resumes_when_the_last_checkpoint_exists(tmp_path: Path) -> None:
    """SLURM's own requeue (``scontrol requeue``, preemption) starts the job's first call again:
    the call itself must resume when ``last.ckpt`` is there."""
    last = tmp_path / "last.ckpt"
    call = JobCall(lambda: {"from": "start"}, resume=lambda: {"from": "resume"}, resume_from=last)
    assert call()["value"] == {"from": "start"}
    last.write_bytes(b"")
    assert call()["value"] == {"from": "resume"}


def test_sigterm_stops_a_job_as_stopped_not_failed_and_keeps_its_owner(tmp_path: Path) -> None:
    """What ``scontrol requeue``, preemption, a time limit and a cancel all send: the attempt ends
    without an error (no result for submitit to report), and the record waits for the requeue."""
    record = tmp_path / "run.json"

    def work() -> dict:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # interrupted by the handler
        return {}

    with pytest.raises(Stopped) as stopped:
        JobCall(work, record=record)()
    assert stopped.value.code == 128 + signal.SIGTERM and isinstance(stopped.value, SystemExit)
    after = read_record(record)
    assert after["state"] == "submitted" and after["reason"].startswith("stopped by SIGTERM")
    assert after["owner"]["pid"] == os.getpid()  # a requeued SLURM job comes back under its owner
    assert after["attempts"][-1]["why"].startswith("stopped by SIGTERM")

    def cancelled_then_stopped() -> dict:  # asc-kd pipeline --cancel records it, then scancel signals
        update_record(record, lambda r: r.update(state="cancelled"))
        return work()

    with pytest.raises(Stopped):
        JobCall(cancelled_then_stopped, record=record)()
    assert read_record(record)["state"] == "cancelled"


def test_owner_liveness_by_pid_on_this_host_and_by_heartbeat_elsewhere() -> None:
    assert owner_alive(None) is False
    assert owner_alive({"executor": "local", "job_id": str(os.getpid()), "host": socket.gethostname()})
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    assert owner_alive({"pid": int(dead.stdout), "host": socket.gethostname()}) is False
    assert owner_alive({"pid": 1, "host": "elsewhere", "heartbeat": time.time()}) is True
    assert owner_alive({"pid": 1, "host": "elsewhere", "heartbeat": time.time() - 3600}) is False


def test_a_run_a_live_process_owns_is_adopted_and_its_recorded_result_taken(tmp_path: Path) -> None:
    """A rerun never starts a second writer: it waits for the owner and reads its record."""
    record = tmp_path / "run.json"
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time, json; from pathlib import Path; from asc_kd.runs.record import update_record\n"
            "time.sleep(1.5)\n"
            f"update_record(Path({str(record)!r}),\n"
            "    lambda r: r.update(state='done', result={'checkpoint': 'x'}))",
        ]
    )
    me = {"executor": "local", "job_id": str(owner.pid), "host": socket.gethostname()}
    update_record(
        record,
        lambda r: r.update(state="running", owner=me, job={"executor": "local", "job_id": str(owner.pid)}),
    )
    called = []
    job = Job(
        "teacher:t-seed0", "teacher", "t", JobCall(lambda: called.append(1) or {}, record=record), adopt=me
    )
    config = ExecutorConfig("local", poll_s=0.2)
    (outcome,) = run_jobs(config, [job], tmp_path / "jobs")
    owner.wait()
    assert called == [] and outcome.value == {"checkpoint": "x"} and outcome.record["state"] == "COMPLETED"


def test_an_adopted_owner_that_dies_without_a_word_is_a_failure_not_a_wait(tmp_path: Path) -> None:
    record = tmp_path / "run.json"
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1)"])
    threading.Thread(target=owner.wait, daemon=True).start()  # reaped when it ends, as init would
    me = {"executor": "local", "job_id": str(owner.pid), "host": socket.gethostname()}
    update_record(record, lambda r: r.update(state="running", owner=me, job={"job_id": str(owner.pid)}))
    job = Job("teacher:t-seed0", "teacher", "t", JobCall(dict, record=record), adopt=me)
    (outcome,) = run_jobs(ExecutorConfig("local", poll_s=0.2), [job], tmp_path / "jobs")
    owner.wait()
    assert outcome.value is None and outcome.state == "failed"
    assert read_record(record)["state"] == "failed"


def test_the_record_file_is_json_a_person_can_read(tmp_path: Path) -> None:
    record = tmp_path / "run.json"
    update_record(record, lambda r: r.update(state="planned", key="student:system1-seed0"))
    text = record.read_text()
    assert json.loads(text)["state"] == "planned" and text.startswith("{\n  ")


def test_every_message_names_an_owner_one_way() -> None:
    assert owner_text({"executor": "slurm", "job_id": "42", "pid": 7, "host": "n1"}) == "slurm job 42"
    assert owner_text({"executor": "local", "job_id": "123", "host": "vm"}) == "pid 123 on vm"  # a local job
    assert owner_text({"pid": 9, "host": "n2"}) == "pid 9 on n2"
    assert owner_text(None) == "no owner"


def test_owners_alive_asks_the_scheduler_once_for_all_slurm_owners(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []

    def states(job_ids: list[str]) -> dict[str, str] | None:
        asked.append(job_ids)
        return {"1": "RUNNING", "2": "COMPLETED", "3": "REQUEUED"}

    monkeypatch.setattr(executors, "slurm_states", states)
    owners = [
        {"executor": "slurm", "job_id": "1"},
        {"executor": "slurm", "job_id": "2"},
        None,
        {"pid": os.getpid(), "host": socket.gethostname()},
        {"executor": "slurm", "job_id": "3"},
    ]
    assert executors.owners_alive(owners) == [True, False, False, True, True]
    assert asked == [["1", "2", "3"]]
    # A scheduler that does not answer: nobody can tell for its jobs; the others are still judged.
    monkeypatch.setattr(executors, "slurm_states", lambda job_ids: None)
    assert executors.owners_alive(owners) == [None, None, False, True, None]


def test_the_teacher_logits_are_hashed_once_per_version_not_once_per_student(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asc_kd.runs import pipeline

    hashed: list[str] = []
    real = pipeline.file_hash
    monkeypatch.setattr(pipeline, "file_hash", lambda path: hashed.append(str(path)) or real(path))
    logits = tmp_path / "logits.pt"
    logits.write_bytes(b"abc")
    driver = types.SimpleNamespace(logits_file=str(logits), _hashes={})
    student = types.SimpleNamespace(kind="student")
    first = [pipeline.Pipeline._inputs(driver, student) for _ in range(3)]  # type: ignore[arg-type]
    sha_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert first == [{"teacher_logits": sha_abc}] * 3 and len(hashed) == 1
    assert pipeline.Pipeline._inputs(driver, types.SimpleNamespace(kind="teacher")) == {}  # type: ignore[arg-type]
    logits.write_bytes(b"abcd")  # a redone logits stage: another size, another hash
    assert pipeline.Pipeline._inputs(driver, student)["teacher_logits"] != sha_abc  # type: ignore[arg-type]
    assert len(hashed) == 2


def _attempt(job_id: str, started: str | None, ended: str | None) -> dict:
    times = {"started": started, "ended": ended}
    return {"job_id": job_id, **{key: f"2026-01-01T{value}" for key, value in times.items() if value}}


def _ended(state: str, attempts: list[dict], **fields: object) -> dict:
    return {"state": state, "attempts": attempts, "updated": "2026-01-01T11:00:00", **fields}


def test_a_done_job_is_one_line_with_its_run_time_and_test_accuracy() -> None:
    fit = {"kind": "student", "name": "system1", "seed": 0, "result": {"test": {"test/acc": 0.41249}}}
    record = _ended("done", [_attempt("77", "10:00:00", "10:02:13")], **fit)
    assert job_line(record) == "done  student system1 seed 0  2 min 13 s  test accuracy 0.412"
    int8 = {
        "kind": "int8",
        "name": "system1",
        "seed": 1,
        "result": {"int8": {"acc": 0.5}, "fp32": {"acc": 0.6}},
    }
    record = _ended("done", [_attempt("78", "10:00:00", "10:00:04")], **int8)
    assert job_line(record) == "done  int8 system1 seed 1  4 s  int8 test accuracy 0.500"
    table1 = [
        {"teacher": "cnn", "accuracy_mean": 0.3},
        {"teacher": "ensemble of 2 (cnn)", "accuracy_mean": 0.7},
    ]
    logits = {"key": "logits", "kind": "logits", "name": "logits", "seed": None, "result": {"table1": table1}}
    record = _ended("done", [_attempt("79", "10:00:00", "11:05:30")], **logits)
    assert job_line(record) == "done  logits  1 h 05 min  ensemble test accuracy 0.700"
    # a recipe named as its kind (the tests' "teacher"), and a fit run without its test
    untested = {
        "key": "teacher:teacher-seed2",
        "kind": "teacher",
        "name": "teacher",
        "seed": 2,
        "result": {"test": {}},
    }
    assert job_line(_ended("done", [_attempt("80", "10:00:00", "10:00:59")], **untested)) == (
        "done  teacher teacher seed 2  59 s"
    )


def test_an_ended_job_says_its_state_and_why_and_counts_only_its_own_attempts() -> None:
    run = {"kind": "teacher", "name": "passt", "seed": 0}
    # an earlier driver's attempt (job 5) is not this job's; SLURM's requeue of job 9 is
    requeued = [_attempt("5", "08:00:00", "09:00:00"), _attempt("9", "10:00:00", "10:01:00")]
    requeued.append(_attempt("9", "10:05:00", "10:06:30"))
    why = "time limit reached (720 min); a rerun resumes it from its last checkpoint"
    assert (
        job_line(_ended("timeout", requeued, reason=why, **run))
        == f"timeout  teacher passt seed 0  2 min 30 s  {why}"
    )
    failed = _ended("failed", [_attempt("3", "10:00:00", "10:00:07")], reason="ValueError: bad", **run)
    assert job_line(failed) == "failed  teacher passt seed 0  7 s  ValueError: bad"
    # cancelled while it ran (its attempt has no end: counted to the record's last update) ...
    cancelled = _ended(
        "cancelled", [_attempt("4", "10:59:00", None)], reason="cancelled with its driver", **run
    )
    assert job_line(cancelled) == "cancelled  teacher passt seed 0  1 min 0 s  cancelled with its driver"
    # ... or while it was queued
    queued = _ended(
        "cancelled", [{"job_id": "6", "submitted": "2026-01-01T10:00:00"}], reason="scancel", **run
    )
    assert job_line(queued) == "cancelled  teacher passt seed 0  not started  scancel"
    stopped = _ended("submitted", [_attempt("7", "10:00:00", "10:00:03")], reason="stopped by SIGTERM", **run)
    assert job_line(stopped) == "stopped  teacher passt seed 0  3 s  stopped by SIGTERM"
