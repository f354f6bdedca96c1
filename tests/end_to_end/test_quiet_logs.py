"""A fit and an export in fresh processes print nothing a user cannot act on: no W&B
'anonymous' warning, no litlogger tip, no LeafSpec notices, no sync_dist advice for metrics
that are already synced, no ONNX optimiser narration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fit_helpers import CONF, REPO

from asc_kd.recipes import RECIPES

NOISE = [
    "anonymous setting has no effect",
    "litlogger",
    "LeafSpec",
    "sync_dist=True",
    "unused nodes",
    "onnxscript",
    "Traceback",
]


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    return output


@pytest.mark.slow
def test_fit_and_export_print_no_noise(tiny_root: Path, cache_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    configs = [RECIPES / "base.yaml", RECIPES / "students" / "system1.yaml", CONF / "student.yaml"]
    fit = [
        "asc_kd.fit",
        *[arg for config in configs for arg in ("--config", str(config))],
        "--data.root",
        str(tiny_root),
        "--data.cache_dir",
        str(cache_dir),
    ]
    output = _run(fit, tmp_path)
    checkpoint = tmp_path / "outputs" / "system1-seed0" / "checkpoints" / "last.ckpt"
    assert f"reported checkpoint (last): {checkpoint}" in output  # where the files went
    output += _run(["asc_kd.export", str(checkpoint)], tmp_path)
    assert "max abs logit diff" in output
    for noise in NOISE:
        assert noise not in output, f"{noise!r} printed:\n{output[-4000:]}"
