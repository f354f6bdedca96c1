"""Every shipped student recipe runs under DDP: two CPU processes fit, test and quantize at fit
end, agree on leaving, and write one int8 artifact."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fit_helpers import CONF, REPO, write_teacher_logits

from asc_kd.recipes import RECIPES

pytestmark = pytest.mark.slow


def test_a_two_process_ddp_fit_of_a_student_recipe_ends(
    tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    logits = write_teacher_logits(tiny_root, tmp_path / "ensemble_train.npz")
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
            str(tmp_path / "out"),
            "--checkpoint.dirpath",
            str(tmp_path / "ckpt"),
        ),
        *("--trainer.logger", "false"),
    ]
    environment = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "asc_kd.fit", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=420,
        env=environment,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "last.ckpt",
        "system1.int8.json",
        "system1.int8.pt",
    ]
    assert "It is recommended to use" not in output  # metrics are logged as synced values
    assert "replicates some samples" not in output  # test clips are split, never repeated
    assert "test/acc" in output
