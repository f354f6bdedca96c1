"""``asc_kd.runs.resources``: the per-kind resource options, and each bad value refused in one
line before anything is submitted or written (numbers, memory sizes; partitions, accounts, QoS
and sbatch options as the cluster's tools list them, or stand-ins for those tools), a time limit
inside submitit's signal delay warned of, and what sbatch still refuses at submission said in
one line. The SLURM tests use the one-node cluster of tests/cluster/start.sh."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest
from fit_helpers import command_line

from asc_kd.core.command_line import cli_parser
from asc_kd.core.errors import ConfigError
from asc_kd.pipeline import main
from asc_kd.runs.executors import Job, JobCall, run_jobs
from asc_kd.runs.pipeline import Pipeline
from asc_kd.runs.resources import (
    SIGNAL_DELAY_S,
    ExecutorConfig,
    Resources,
    add_executor_arguments,
    check_resources,
    executor_config,
)

TIME = "must be a time limit in whole minutes, at least 1"
MEMORY = (
    "not a SLURM memory size; give megabytes or a whole number with a unit K, M, G or T, "
    "e.g. 500M, 32G, 1T or 4096"
)


def _config(*argv: str) -> ExecutorConfig:
    parser = cli_parser("test", "")
    add_executor_arguments(parser)
    return executor_config(parser.parse_args(list(argv)))


def _checked(*argv: str) -> ExecutorConfig:
    config = _config(*argv)
    check_resources(config)
    return config


def _stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **tools: str) -> None:
    """PATH holds only these shell scripts (tool name -> body), in place of SLURM's tools."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, body in tools.items():
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))


#: sinfo and sacctmgr of a cluster with partitions gpu and cpu (nodes of 8000 and 64000 MB),
#: accounts dcase and phys, QoS normal and high.
CLUSTER = {
    "sinfo": 'case "$*" in *%m*--partition=cpu*) echo 8000;; *%m*) printf "8000\\n64000\\n";; '
    '*) printf "gpu\\ncpu\\n";; esac',
    "sacctmgr": 'case "$*" in *account*) printf "dcase\\nphys\\n";; *) printf "normal\\nhigh\\n";; esac',
}


def test_resources_per_kind() -> None:
    config = _config(
        *("--executor", "slurm", "--time-per-run", "720", "student=240", "--gpus-per-run", "1"),
        *("--mem-per-run", "teacher=64G", "--slurm-partition", "gpu", "--slurm-account", "dcase"),
        *("--slurm-setup", "module load cuda", "student=source env.sh"),
        *("--slurm-param", "constraint=a100", "student=mail_type=END"),
    )
    teacher, student = config.resources["teacher"], config.resources["student"]
    assert (teacher.time_min, student.time_min) == (720, 240)
    assert (teacher.mem, student.mem) == ("64G", None)
    assert teacher.setup == ["module load cuda"] and student.setup == ["module load cuda", "source env.sh"]
    assert student.params == {"constraint": "a100", "mail_type": "END"}
    assert teacher.slurm_parameters() == {
        "time": 720,
        "gpus_per_node": 1,
        "ntasks_per_node": 1,
        "mem": "64G",
        "partition": "gpu",
        "account": "dcase",
        "setup": ["module load cuda"],
        "additional_parameters": {"constraint": "a100"},
    }
    # Two GPUs: one SLURM task per device, as Lightning's SLURM environment expects.
    assert Resources(gpus=2).slurm_parameters()["ntasks_per_node"] == 2
    assert Resources(tasks=2).slurm_parameters()["ntasks_per_node"] == 2
    assert _config().executor == "inline" and _config().resources["teacher"] == Resources()


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--mem-per-run", "tacher=32G"], "'tacher' is not a kind"),
        (["--time-per-run", "student=1h"], "'1h' is not a whole number"),
        (["--slurm-param", "constraint"], "write NAME=VALUE"),
        (["--max-parallel", "0"], "--max-parallel 0 must be at least 1"),
    ],
)
def test_bad_options_are_named(argv: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _config(*argv)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--time-per-run", "teacher=-5"], f"--time-per-run teacher=-5: {TIME}"),
        (["--time-per-run", "0"], f"--time-per-run 0: {TIME}"),
        (["--gpus-per-run", "-1"], "--gpus-per-run -1: must be a number of GPUs, at least 0"),
        (["--cpus-per-run", "student=0"], "--cpus-per-run student=0: must be a number of CPUs, at least 1"),
        (["--tasks-per-run", "0"], "--tasks-per-run 0: must be a number of tasks, at least 1"),
        (["--mem-per-run", "lots"], f"--mem-per-run lots: {MEMORY}"),
        (["--mem-per-run", "8G", "student=32 G"], f"--mem-per-run student=32 G: {MEMORY}"),
        (["--mem-per-run", "1.5G"], f"--mem-per-run 1.5G: {MEMORY}"),
    ],
)
@pytest.mark.parametrize("executor", ["inline", "slurm"])
def test_bad_values_are_refused_as_typed(argv: list[str], message: str, executor: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _checked("--executor", executor, *argv)
    assert str(refused.value) == message


def test_slurm_memory_sizes_are_taken() -> None:
    for size in ("500M", "32G", "1T", "4096", "512K", "16g", "16GB", "0"):
        assert _checked("--mem-per-run", size).resources["student"].mem == size


def test_a_time_limit_inside_the_signal_delay_warns(caplog: pytest.LogCaptureFixture) -> None:
    assert SIGNAL_DELAY_S == 90  # submitit's --signal=USR2@90, which docs/pipeline.md states
    with caplog.at_level(logging.WARNING, logger="asc_kd.runs.resources"):
        _checked("--executor", "slurm", "--time-per-run", "1", "student=2")
        _checked("--executor", "slurm", "--time-per-run", "3")  # the signal 30-90 s into the run
        _checked("--executor", "local", "--time-per-run", "1")  # submitit's local signal: 30 s before
    said = "SLURM signals a run 90-150 s before its time limit to checkpoint it, so this run will be "
    said += "stopped before it can checkpoint; give more than 2 minutes"
    assert caplog.messages == [f"--time-per-run teacher=1: {said}", f"--time-per-run student=2: {said}"]


def test_names_are_checked_against_what_the_cluster_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stand_ins(tmp_path, monkeypatch, **CLUSTER)
    config = _checked(
        "--executor", "slurm", "--slurm-partition", "gpu,cpu", "student=cpu", "--mem-per-run", "7G"
    )
    assert config.resources["student"].partition == "cpu"
    _checked("--executor", "slurm", "--slurm-account", "DCASE", "--slurm-qos", "High")  # SLURM folds case
    refusals = {
        ("--slurm-partition", "gpus"): "--slurm-partition gpus: 'gpus' is not one of this cluster's "
        "partitions; did you mean gpu? (sinfo lists 2)",
        ("--slurm-partition", "student=gpu,Cpu"): "--slurm-partition student=gpu,Cpu: 'Cpu' is not one of "
        "this cluster's partitions; did you mean cpu? (sinfo lists 2)",
        ("--slurm-account", "teacher=nosuch"): "--slurm-account teacher=nosuch: 'nosuch' is not one of this "
        "cluster's accounts; sacctmgr lists dcase, phys",
        ("--slurm-qos", "hihg"): "--slurm-qos hihg: 'hihg' is not one of this cluster's QoS; did you mean "
        "high? (sacctmgr lists 2)",
        ("--mem-per-run", "65000M"): "--mem-per-run 65000M: no node of this cluster has that much memory; "
        "the largest has 64000M (sinfo)",
        ("--mem-per-run", "student=9G", "--slurm-partition", "student=cpu"): "--mem-per-run student=9G: "
        "no node of partition cpu has that much memory; the largest has 8000M (sinfo)",
    }
    for argv, message in refusals.items():
        with pytest.raises(ConfigError) as refused:
            _checked("--executor", "slurm", *argv)
        assert str(refused.value) == message
    # Only a SLURM run asks the cluster: a local one takes a partition it never uses.
    _checked("--executor", "local", "--slurm-partition", "nosuch", "--slurm-account", "nosuch")


def test_a_check_whose_tool_does_not_answer_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # sacctmgr without job accounting; no sinfo or sbatch at all.
    _stand_ins(tmp_path, monkeypatch, sacctmgr="echo 'You are not running a supported plugin' >&2; exit 1")
    with caplog.at_level(logging.DEBUG, logger="asc_kd.runs.resources"):
        _checked(
            *("--executor", "slurm", "--slurm-partition", "nosuch", "--slurm-account", "nosuch"),
            *("--mem-per-run", "100T", "--slurm-param", "nosuch=1"),
        )
    skipped = [m for m in caplog.messages if m.endswith("its resource check is skipped")]
    assert [m.split(" ")[0] for m in skipped] == ["sinfo", "sacctmgr", "sinfo", "sbatch"]
    assert "exit 1: You are not running a supported plugin" in skipped[1]


def test_the_pipeline_refuses_them_when_built_writing_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Pipeline, "run", _ran)
    out = tmp_path / "out"
    with command_line("python -m asc_kd.pipeline"), pytest.raises(ConfigError, match=TIME):
        main(["--out", str(out), "--executor", "local", "--time-per-run", "student=0"])
    assert not out.exists()


def _ran(pipeline: Pipeline) -> None:
    raise AssertionError("the pipeline was built: its resources were not refused")


# -- on the one-node SLURM ------------------------------------------------------------------------
def _jobs_of(folder: Path) -> list[str]:
    """This user's SLURM jobs (queued, running or ended lately) whose batch script lies in ``folder``."""
    listed = subprocess.run(
        ["squeue", "--me", "--noheader", "--states=all", "--format=%i %o"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in listed.stdout.splitlines() if str(folder) in line]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--time-per-run", "teacher=-5"], f"--time-per-run teacher=-5: {TIME}"),
        (["--time-per-run", "0"], f"--time-per-run 0: {TIME}"),
        (["--mem-per-run", "lots"], f"--mem-per-run lots: {MEMORY}"),
        (["--mem-per-run", "student=100T"], "--mem-per-run student=100T: no node of this cluster has that"),
        (["--slurm-partition", "nosuch"], "--slurm-partition nosuch: 'nosuch' is not one of this cluster's"),
        (["--slurm-partition", "student=nosuch"], "--slurm-partition student=nosuch: 'nosuch' is not one"),
        (["--slurm-param", "nosuch=1"], "--slurm-param nosuch=1: sbatch has no option --nosuch"),
        (
            ["--slurm-param", "constrant=a100"],
            "--slurm-param constrant=a100: sbatch has no option --constrant; ",
        ),
        (
            ["--slurm-param", "student=mem=lots"],
            "--slurm-param student=mem=lots: sbatch refuses it: Invalid --mem",
        ),
    ],
)
def test_bad_resources_are_refused_before_any_stage(
    slurm: None, argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Pipeline, "run", _ran)
    out = tmp_path / "out"
    with command_line("python -m asc_kd.pipeline"), pytest.raises(ConfigError) as refused:
        main(["--out", str(out), "--executor", "slurm", "--stages", "teachers", *argv])
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)
    assert not out.exists() and not _jobs_of(tmp_path)


def test_an_account_is_refused_where_sacctmgr_lists_accounts(slurm: None, tmp_path: Path) -> None:
    accounts = subprocess.run(
        ["sacctmgr", "--noheader", "--parsable2", "show", "account", "format=account"],
        capture_output=True,
        text=True,
    )
    if accounts.returncode != 0 or not accounts.stdout.strip():
        # Without job accounting SLURM takes any account; test_names_are_checked_... uses a stand-in.
        _checked("--executor", "slurm", "--slurm-account", "nosuch")
        pytest.skip(f"sacctmgr lists no accounts here: {accounts.stderr.strip()}")
    with pytest.raises(ConfigError, match="--slurm-account nosuch: 'nosuch' is not one of this cluster's"):
        _checked("--executor", "slurm", "--slurm-account", "nosuch")


def test_a_one_minute_limit_warns_before_submission(
    slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    built: list[Pipeline] = []
    monkeypatch.setattr(Pipeline, "run", lambda self: built.append(self))
    with command_line("python -m asc_kd.pipeline"), caplog.at_level(logging.WARNING):
        assert main(["--out", str(tmp_path / "out"), "--executor", "slurm", "--time-per-run", "1"]) == 0
    assert len(built) == 1
    assert [r.message.split(":")[0] for r in caplog.records if r.levelno == logging.WARNING] == [
        "--time-per-run 1"
    ]
    assert "will be stopped before it can checkpoint" in caplog.text


def test_what_sbatch_refuses_at_submission_is_one_line(
    slurm: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # run_jobs does not check resources (the pipeline does when it is built): sbatch refuses.
    config = ExecutorConfig(
        "slurm", resources={"teacher": Resources(partition="nosuch"), "student": Resources()}
    )
    job = Job("teacher:a-seed0", "teacher", "stage teachers: fitting a, seed 0", JobCall(dict))
    with pytest.raises(ConfigError) as refused:
        list(run_jobs(config, [job], tmp_path / "jobs"))
    assert str(refused.value) == (
        "sbatch refused the job of stage teachers: fitting a, seed 0: invalid partition specified: nosuch "
        "(its teacher resources: --slurm-partition nosuch)"
    )
    assert capsys.readouterr().err == ""  # submitit's print of sbatch's stderr is held back
    assert not _jobs_of(tmp_path)
