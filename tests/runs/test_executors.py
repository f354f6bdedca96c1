"""``asc_kd.runs.executors`` without a cluster: the job call's result, failure and requeue, the
inline executor and the failure message (the resource options: tests/runs/test_resources.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from asc_kd.core.command_line import cli_parser
from asc_kd.core.errors import ConfigError
from asc_kd.runs.executors import Job, JobCall, Outcome, failure_message, run_jobs
from asc_kd.runs.resources import add_executor_arguments, executor_config


def _config(*argv: str):
    parser = cli_parser("test", "")
    add_executor_arguments(parser)
    return executor_config(parser.parse_args(list(argv)))


def test_job_call_returns_the_value_and_its_times() -> None:
    result = JobCall(lambda: {"acc": 0.5})()
    assert result["value"] == {"acc": 0.5} and result["started"] <= result["ended"] and result["host"]


def test_a_refused_option_becomes_a_failure_with_a_result() -> None:
    def refuse() -> dict:
        raise SystemExit(2)  # what a parser does with a bad key

    with pytest.raises(RuntimeError, match="exited with code 2; its log says why"):
        JobCall(refuse)()


def test_a_requeued_call_resumes_and_its_ending_attempt_is_no_failure() -> None:
    def first() -> dict:
        raise ConnectionResetError("Connection lost")  # e.g. W&B's service, ended by the requeue

    call = JobCall(first, resume=lambda: {"resumed": True})
    delayed = call.checkpoint()
    assert delayed.function.function is call.resume and delayed.function.resume is call.resume
    assert delayed.function()["value"] == {"resumed": True}
    with pytest.raises(SystemExit):  # not an error result the driver would report
        call()
    # Without a resume the same call runs again.
    plain = JobCall(lambda: {"x": 1})
    assert plain.checkpoint().function.function is plain.function


def test_inline_runs_in_order_and_records_times(tmp_path: Path) -> None:
    calls: list[str] = []
    jobs = [
        Job(
            f"teacher:{name}-seed0",
            "teacher",
            name,
            JobCall(lambda name=name: calls.append(name) or {"n": name}),
        )
        for name in ("a", "b")
    ]
    outcomes = list(run_jobs(_config(), jobs, tmp_path / "jobs"))
    assert calls == ["a", "b"] and [o.value for o in outcomes] == [{"n": "a"}, {"n": "b"}]
    assert all(o.record["executor"] == "inline" and o.record["state"] == "COMPLETED" for o in outcomes)
    assert not (tmp_path / "jobs").exists()


def test_local_refuses_more_gpus_than_the_machine_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    job = Job("teacher:a-seed0", "teacher", "teacher a seed 0", JobCall(dict))
    with pytest.raises(ConfigError, match=r"--gpus-per-run 2: this machine shows 1 GPU\(s\) \(\[3\]\)"):
        list(run_jobs(_config("--executor", "local", "--gpus-per-run", "2"), [job], tmp_path))


def test_failure_message_names_run_job_and_log() -> None:
    job = Job("teacher:bad-seed1", "teacher", "teacher bad seed 1", JobCall(dict))
    record = {"job_id": "17", "state": "FAILED", "logs": ["/o/jobs/17_0_log.out", "/o/jobs/17_0_log.err"]}
    message = failure_message([Outcome(job, None, record, "RuntimeError: boom")])
    assert message == (
        "1 run(s) failed: teacher bad seed 1 (job 17, FAILED, log /o/jobs/17_0_log.err): RuntimeError: boom. "
        "Rerun the same command to resume the failed runs from their last checkpoints"
    )


def _raising_job(name: str) -> Job:
    def refuse() -> dict:
        raise ValueError(f"run {name}: lr must be positive, got -1")

    return Job(f"teacher:{name}-seed0", "teacher", f"teacher {name} seed 0", JobCall(refuse))


def test_a_job_that_raised_under_local_is_failed_with_its_error_s_last_line(tmp_path: Path) -> None:
    config = _config("--executor", "local")
    config.poll_s = 0.2
    (outcome,) = run_jobs(config, [_raising_job("bad")], tmp_path / "jobs")
    assert outcome.value is None
    assert outcome.record["executor"] == "local" and outcome.record["state"] == "FAILED"
    assert outcome.error == "ValueError: run bad: lr must be positive, got -1"
    assert "ValueError: run bad" in Path(outcome.record["logs"][1]).read_text()


def test_a_job_that_raised_inline_stops_the_stage_with_its_error_and_is_never_completed(
    tmp_path: Path,
) -> None:
    calls: list[str] = []
    ok = Job("teacher:ok-seed0", "teacher", "teacher ok seed 0", JobCall(lambda: calls.append("ok") or {}))
    after = Job("teacher:after-seed0", "teacher", "after", JobCall(lambda: calls.append("after") or {}))
    outcomes: list[Outcome] = []
    with pytest.raises(ValueError, match="^run bad: lr must be positive, got -1$"):
        outcomes.extend(run_jobs(_config(), [ok, _raising_job("bad"), after], tmp_path / "jobs"))
    assert calls == ["ok"]  # the stage stopped at the error
    assert [(o.job.key, o.record["state"]) for o in outcomes] == [("teacher:ok-seed0", "COMPLETED")]


def test_a_scheduler_that_does_not_answer_is_no_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``squeue`` failing (slurmctld restarting) says nothing about a job: None, never "ended";
    a job id squeue no longer knows has ended."""
    from asc_kd.runs.executors import slurm_states

    squeue = tmp_path / "squeue"
    squeue.write_text(
        "#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller' >&2\nexit 1\n"
    )
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert slurm_states(["17"]) is None
    squeue.write_text("#!/bin/sh\necho 'slurm_load_jobs error: Invalid job id specified' >&2\nexit 1\n")
    assert slurm_states(["17"]) == {"17": "COMPLETED"}
    squeue.write_text("#!/bin/sh\necho '17 RUNNING'\n")
    assert slurm_states(["17", "18"]) == {"17": "RUNNING", "18": "COMPLETED"}


@pytest.mark.parametrize(
    ("threads", "environment", "expected"),
    [
        (None, {}, "unchanged"),  # inline: the driver's own process keeps its threads
        (1, {}, 1),  # a local job's share of the cores
        (1, {"SLURM_JOB_CPUS_PER_NODE": "3(x2)"}, 3),  # SLURM's allocation wins
        (1, {"SLURM_CPUS_PER_TASK": "2", "SLURM_JOB_CPUS_PER_NODE": "4"}, 2),
    ],
)
def test_a_job_uses_the_cpus_it_was_given(
    threads: int | None, environment: dict[str, str], expected: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    before = torch.get_num_threads()
    for name in ("SLURM_CPUS_PER_TASK", "SLURM_JOB_CPUS_PER_NODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    call = JobCall(lambda: {"threads": torch.get_num_threads()})
    call.threads = threads
    try:
        seen = call()["value"]["threads"]
    finally:
        torch.set_num_threads(before)
    assert seen == (before if expected == "unchanged" else expected)


def test_local_jobs_share_the_cores_among_the_parallel_ones(tmp_path: Path) -> None:
    import torch

    def threads() -> dict:
        return {"threads": torch.get_num_threads()}

    config = _config("--executor", "local", "--max-parallel", "2")
    config.poll_s = 0.2
    jobs = [Job(f"student:s{i}", "student", f"s{i}", JobCall(threads)) for i in range(2)]
    outcomes = list(run_jobs(config, jobs, tmp_path / "jobs"))
    assert [o.value["threads"] for o in outcomes] == [max(1, (os.cpu_count() or 1) // 2)] * 2


def test_a_job_slurmstepd_killed_for_memory_is_out_of_memory_whatever_state_slurm_gives(
    tmp_path: Path,
) -> None:
    from asc_kd.runs.executors import _ended_without_result

    oom = "out of memory: give it more with --mem-per-run"
    cgroup, accounting, other = tmp_path / "a.err", tmp_path / "b.err", tmp_path / "c.err"
    cgroup.write_text("epoch 1\nslurmstepd: error: Detected 1 oom-kill event(s) in StepId=7.batch.\n")
    accounting.write_text("x" * 100_000 + "\nslurmstepd-vm: error: Exceeded job memory limit\n")
    other.write_text("Traceback ...\nValueError: bad\n")
    assert _ended_without_result("OUT_OF_MEMORY", 60) == ("failed", oom)
    assert _ended_without_result("FAILED", 60, str(cgroup)) == ("failed", oom)
    assert _ended_without_result("FAILED", 60, str(accounting)) == ("failed", oom)
    assert _ended_without_result("FAILED", 60, str(other)) == (
        "failed",
        "the job ended (FAILED) without a result",
    )
    assert _ended_without_result("FAILED", 60, str(tmp_path / "missing.err"))[1].startswith("the job ended")
    assert _ended_without_result("TIMEOUT", 5, str(accounting))[0] == "timeout"
