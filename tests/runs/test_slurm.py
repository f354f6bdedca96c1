"""``python -m asc_kd.pipeline --executor slurm|local`` on the tiny scenes: every run a job on a
real one-node SLURM (``tests/cluster/start.sh``) or a local process, in stage order, with the
same tables as ``inline``; a failing job named with its log; a rerun that redoes only it."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from fit_helpers import (
    PIPELINE_TEACHERS,
    TinyPipeline,
    command_line,
    offline_run,
    pipeline_argv,
)
from pipeline_processes import start_until_a_checkpoint, teacher_argv

from asc_kd.pipeline import main
from asc_kd.runs.executors import RunFailed

pytestmark = pytest.mark.slow
#: The comparison with inline reads the tiny pipeline that the "pipeline" group's worker builds once.
PIPELINE_GROUP = pytest.mark.xdist_group(name="pipeline")
#: Epochs of the fit that is preempted after its first.
EPOCHS = 8


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "pipeline.json").read_text())


def _runs(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {key: entry for key, entry in manifest.items() if isinstance(entry, dict)}


def _overlapping(jobs: list[dict[str, Any]]) -> bool:
    """Whether two of the jobs ran at the same time (their start-end spans intersect)."""
    spans = sorted((datetime.fromisoformat(j["started"]), datetime.fromisoformat(j["ended"])) for j in jobs)
    return any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))


@pytest.fixture(scope="module")
def slurm_pipeline(
    slurm: None, tiny_root: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("slurm") / "out"
    with command_line("python -m asc_kd.pipeline"):
        assert (
            main(pipeline_argv(tiny_root, cache_dir, out, "--executor", "slurm", "--cpus-per-run", "1")) == 0
        )
    return out


@PIPELINE_GROUP
def test_every_run_is_a_slurm_job_in_stage_order(slurm_pipeline: Path) -> None:
    runs = _runs(_manifest(slurm_pipeline))
    # Entries in the order their jobs ended (the tables list runs in recipe and seed order).
    assert sorted(runs) == sorted(
        [
            *(f"teacher:{Path(t).stem}-seed0" for t in PIPELINE_TEACHERS),
            "logits",
            "student:system1-seed0",
            "student:system1-seed1",
            "int8:system1-seed0",
            "int8:system1-seed1",
        ]
    )
    ids = [int(entry["job"]["job_id"]) for entry in runs.values()]
    assert len(set(ids)) == len(ids)
    for key, entry in runs.items():
        job = entry["job"]
        assert job["executor"] == "slurm" and job["state"] == "COMPLETED", key
        assert all(Path(log).is_file() for log in job["logs"]), key
        assert job["resources"]["cpus"] == 1 and job["resources"]["time_min"] == 24 * 60
    # SLURM itself ran them: its job id and batch script are in the job's output.
    out_log = Path(runs["logits"]["job"]["logs"][0]).read_text()
    assert f"job_id={runs['logits']['job']['job_id']}" in out_log
    # Each stage starts after the one before ended; the teachers ran at once, and the students.
    order = ["teacher", "logits", "student", "int8"]
    ends = {kind: max(e["job"]["ended"] for k, e in runs.items() if k.startswith(kind)) for kind in order}
    starts = {kind: min(e["job"]["started"] for k, e in runs.items() if k.startswith(kind)) for kind in order}
    assert all(ends[a] <= starts[b] for a, b in zip(order, order[1:], strict=False))
    assert _overlapping([e["job"] for k, e in runs.items() if k.startswith("teacher")])
    assert _overlapping([e["job"] for k, e in runs.items() if k.startswith("student")])


@PIPELINE_GROUP
def test_each_job_is_a_wandb_run_of_the_group_with_its_inputs(slurm_pipeline: Path) -> None:
    runs = [offline_run(folder) for folder in sorted(slurm_pipeline.rglob("offline-run-*"))]
    group = _manifest(slurm_pipeline)["wandb_group"]
    assert {run.group for run in runs} == {group}
    assert sorted(run.job_type for run in runs) == [
        "logits",
        "student",
        "student",
        "tables",
        "teacher",
        "teacher",
    ]
    inputs = {run.job_type: [i["name"] for i in run.config.get("asc_kd_inputs", [])] for run in runs}
    assert inputs["logits"] == [f"model-{Path(PIPELINE_TEACHERS[0]).stem}-seed0"]
    assert sorted(inputs["tables"]) == sorted(
        [f"{kind}-system1-seed{seed}" for kind in ("model", "int8") for seed in (0, 1)]
    )


@PIPELINE_GROUP
def test_slurm_tables_have_the_inline_structure(slurm_pipeline: Path, tiny_pipeline: TinyPipeline) -> None:
    for name in ("table1", "table2", "table2_seeds"):
        slurm_table = pd.read_csv(slurm_pipeline / f"{name}.csv")
        inline_table = pd.read_csv(tiny_pipeline.out / f"{name}.csv")
        assert list(slurm_table.columns) == list(inline_table.columns), name
        labels = [
            c for c in ("teacher", "system", "precision", "selection", "seeds", "seed") if c in slurm_table
        ]
        assert slurm_table[labels].equals(inline_table[labels]), name
        assert slurm_table.notna().equals(inline_table.notna()), name
    # The complexity columns are the model's, whoever ran it.
    slurm_table, inline_table = (
        pd.read_csv(out / "table2.csv") for out in (slurm_pipeline, tiny_pipeline.out)
    )
    assert slurm_table[["mem_bytes", "macs", "params"]].equals(inline_table[["mem_bytes", "macs", "params"]])


def test_a_failing_job_is_named_with_its_log_and_a_rerun_redoes_only_it(
    slurm: None, tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    good = PIPELINE_TEACHERS[0]
    bad = tmp_path / "bad.yaml"
    recipe = good.read_text()
    # A model name the parser takes (a string) but the job cannot build: the job fails, not the driver.
    bad.write_text(recipe.replace("model: debug", "model: nonesuch").replace("name: teacher", "name: bad"))
    out = tmp_path / "out"
    argv = pipeline_argv(tiny_root, cache_dir, out, "--executor", "slurm", "--stages", "teachers")
    argv[argv.index("--teachers") + 1 : argv.index("--ensemble") + 2] = [str(good), str(bad)]
    with command_line("python -m asc_kd.pipeline"), pytest.raises(RunFailed) as failed:
        main(argv)
    runs = _runs(_manifest(out))
    job = runs["teacher:bad-seed0"]["job"]
    assert job["state"] == "FAILED" and "checkpoint" not in runs["teacher:bad-seed0"]
    message = str(failed.value)
    assert (
        f"stage teachers: fitting bad, seed 0 (job {job['job_id']}, FAILED, log {job['logs'][1]})" in message
    )
    assert "nonesuch" in message and "fitting teacher, seed" not in message  # only the bad run
    assert "nonesuch" in Path(job["logs"][1]).read_text()  # the log says which model
    finished = runs["teacher:teacher-seed0"]
    stamp = Path(finished["checkpoint"]).stat().st_mtime_ns
    # Fixed, the same command submits the failed run alone and keeps the finished one.
    bad.write_text(recipe.replace("name: teacher", "name: bad"))
    with command_line("python -m asc_kd.pipeline"):
        assert main(argv) == 0
    rerun = _runs(_manifest(out))
    assert rerun["teacher:teacher-seed0"] == finished
    assert Path(finished["checkpoint"]).stat().st_mtime_ns == stamp
    assert rerun["teacher:bad-seed0"]["job"]["state"] == "COMPLETED"
    assert int(rerun["teacher:bad-seed0"]["job"]["job_id"]) > int(job["job_id"])
    assert Path(rerun["teacher:bad-seed0"]["checkpoint"]).is_file()


def test_local_executor_runs_two_fits_at_once(tiny_root: Path, cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = pipeline_argv(
        tiny_root, cache_dir, out, "--executor", "local", "--max-parallel", "2", "--stages", "teachers"
    )
    with command_line("python -m asc_kd.pipeline"):
        assert main(argv) == 0
    runs = _runs(_manifest(out))
    assert sorted(runs) == sorted(f"teacher:{Path(t).stem}-seed0" for t in PIPELINE_TEACHERS)
    jobs = [entry["job"] for entry in runs.values()]
    assert all(j["executor"] == "local" and j["state"] == "COMPLETED" for j in jobs)
    assert len({j["job_id"] for j in jobs}) == 2 and str(os.getpid()) not in {j["job_id"] for j in jobs}
    assert _overlapping(jobs)
    assert all(Path(entry["checkpoint"]).is_file() for entry in runs.values())


def test_a_preempted_fit_is_requeued_and_resumes_from_its_last_checkpoint(
    slurm: None, tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    pipeline, run = start_until_a_checkpoint(teacher_argv(tiny_root, cache_dir, out, epochs=EPOCHS), out)
    last = run / "checkpoints" / "last.ckpt"
    (job_id,) = [p.name.split("_")[0] for p in (out / "jobs").glob("*_submitted.pkl")]
    # What SLURM sends before a time limit or a preemption (submitit's --signal=USR2@90).
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    output = pipeline.communicate(timeout=400)[0]
    assert pipeline.returncode == 0, output[-3000:]
    job = _manifest(out)["teacher:teacher-seed0"]["job"]
    assert job["job_id"] == job_id and job["state"] == "COMPLETED"
    stdout, stderr = (Path(log).read_text() for log in job["logs"])
    assert "this job is preempted" in stdout and f"Requeued job {job_id}" in stdout
    assert f"Restoring states from the checkpoint path at {last}" in stderr
    assert stderr.count("Seed set to 0") == 2  # two attempts, the second resumed
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    assert checkpoint["epoch"] == EPOCHS - 1  # every epoch done once across the two attempts
    # The same W&B run, resumed (offline: one folder per attempt, both with the run's id).
    attempts = sorted((run / "wandb").glob("offline-run-*"))
    assert len(attempts) == 2 and len({folder.name.rsplit("-", 1)[1] for folder in attempts}) == 1
