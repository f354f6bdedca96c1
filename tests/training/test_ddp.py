"""Every shipped student recipe runs under DDP: two CPU processes fit, test and quantize at fit
end, agree on leaving, and write one int8 artifact; started as two SLURM tasks by ``srun``
(Lightning's SLURM environment) they end with the same test metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fit_helpers import CONF, REPO, slurm_or_skip, write_teacher_logits

from asc_kd.recipes import RECIPES

pytestmark = pytest.mark.slow


def _ddp_fit(
    tiny_root: Path, cache_dir: Path, out: Path, launcher: list[str]
) -> tuple[str, dict[str, float]]:
    """system1's recipe on 2 gloo processes started by ``launcher`` (none: Lightning starts
    them); its output and test metrics (``summary.json``)."""
    logits = write_teacher_logits(tiny_root, out / "ensemble_train.npz")
    configs = [
        RECIPES / "base.yaml",
        RECIPES / "students/kd.yaml",
        RECIPES / "students/system1.yaml",
    ]
    args = [
        *(arg for config in [*configs, CONF / "student.yaml"] for arg in ("--config", str(config))),
        *(
            "--data.root",
            str(tiny_root),
            "--data.cache_dir",
            str(cache_dir),
            "--data.teacher_logits",
            str(logits),
        ),
        *("--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"),
        *(
            "--trainer.default_root_dir",
            str(out / "out"),
            "--checkpoint.dirpath",
            str(out / "ckpt"),
        ),
        *("--trainer.logger", "false"),
    ]
    environment = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [*launcher, sys.executable, "-m", "asc_kd.fit", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=420,
        env=environment,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    (summary,) = (out / "out").rglob("summary.json")
    metrics = json.loads(summary.read_text())["metrics"]
    return output, {k: v for k, v in metrics.items() if k.startswith("test/")}


@pytest.fixture(scope="module")
def ddp_fit(
    tiny_root: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str, dict[str, float]]:
    out = tmp_path_factory.mktemp("ddp")
    return (out, *_ddp_fit(tiny_root, cache_dir, out, []))


def test_a_two_process_ddp_fit_of_a_student_recipe_ends(ddp_fit: tuple[Path, str, dict[str, float]]) -> None:
    out, output, metrics = ddp_fit
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == [
        "last.ckpt",
        "system1-seed0.int8.json",
        "system1-seed0.int8.pt",
    ]
    assert "It is recommended to use" not in output  # metrics are logged as synced values
    assert "replicates some samples" not in output  # test clips are split, never repeated
    assert "test/acc" in output and 0.0 <= metrics["test/acc"] <= 1.0


def test_two_slurm_tasks_under_srun_give_the_same_metrics(
    ddp_fit: tuple[Path, str, dict[str, float]], tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    slurm_or_skip()
    launcher = [
        "srun",
        "--nodes",
        "1",
        "--ntasks-per-node",
        "2",
        "--cpus-per-task",
        "1",
        "--time",
        "10",
        "--job-name",
        "asc_kd-ddp",
    ]
    output, metrics = _ddp_fit(tiny_root, cache_dir, tmp_path, launcher)
    # Lightning took the ranks from SLURM (one process per task, none spawned).
    assert "GLOBAL_RANK: 0" in output and "GLOBAL_RANK: 1" in output
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "last.ckpt",
        "system1-seed0.int8.json",
        "system1-seed0.int8.pt",
    ]
    assert metrics.keys() == ddp_fit[2].keys() and len(metrics) > 10
    assert metrics == pytest.approx(ddp_fit[2], abs=1e-6)
