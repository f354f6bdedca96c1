"""``asc_kd.benchmarks.figures`` measure what they say: the figures exist and the compared paths compute
the same thing. How fast each path is belongs to the bench command, not to tests."""

from __future__ import annotations

import platform
import re
from pathlib import Path

import pytest
import torch

from asc_kd.benchmarks.figures import bench_eval, bench_fit_epoch, bench_teacher
from asc_kd.benchmarks.report import REPORT, machine_description, performance_report
from asc_kd.data.datamodule import TAU22DataModule
from asc_kd.recipes import RECIPES


def test_bench_teacher_compares_the_same_teacher_both_ways(bf16_branch: bool) -> None:
    results = bench_teacher(str(RECIPES / "demo" / "teachers" / "passt_tiny.yaml"), batch_size=2, seconds=0)
    for key in ("train_clips_per_s", "eval_clips_per_s", "train_ratio", "eval_ratio"):
        assert results[key] > 0, key
    assert results["train_clips_per_s"] == results["asc_kd_train_clips_per_s"]
    assert results["bf16_autocast"] is bf16_branch
    assert f"{results['eval_ratio']:.2f}x" in REPORT["teacher"][3](results)  # the report's row
    if bf16_branch:  # bf16 moves the logits a little, not to other numbers
        assert 1e-6 < results["eval_max_abs_logit_diff"] < 5e-2
    else:  # fused attention alone: the same logits up to rounding
        assert results["eval_max_abs_logit_diff"] < 1e-4
        assert results["eval_top1_agreement"] == 1.0


@pytest.mark.slow
def test_bench_fit_epoch_times_a_real_fit_epoch(tiny_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    data = ["--data.root", str(tiny_root), "--data.num_workers", "0"]
    results = bench_fit_epoch(data, batch_size=8, threads=1, epochs=2)
    train_clips = len(TAU22DataModule(root=str(tiny_root), validation="none").frames()["train"])
    assert results["clips"] == train_clips // 8 * 8  # one epoch of whole batches (drop_last)
    assert results["epoch_clips_per_s"] == pytest.approx(results["clips"] / results["epoch_s"], rel=0.02)
    assert results["epoch_over_bare"] == pytest.approx(
        results["epoch_clips_per_s"] / results["bare_step_clips_per_s"], abs=1e-3
    )
    assert f"{100 * results['epoch_over_bare']:.0f} % of the bare step" in REPORT["fit"][3](results)


@pytest.mark.slow
def test_bench_eval_runs_each_malloc_setting_in_its_own_process() -> None:
    results = bench_eval(batch_size=4, seconds=0.1, threads=1, rounds=1)
    assert results["malloc_default_kept_freed_memory"] is False
    assert results["asc_kd_kept_freed_memory"] is (platform.libc_ver()[0] == "glibc")
    assert results["ratio"] == pytest.approx(
        results["asc_kd_clips_per_s"] / results["malloc_default_clips_per_s"], abs=0.01
    )
    assert f"**{results['ratio']:.2f}x**" in REPORT["eval"][3](results)


def test_the_report_names_the_machine_and_each_same_run_ratio(tmp_path: Path) -> None:
    page = performance_report(tmp_path / "docs" / "performance.md", ["train"], seconds=0.05, progress=False)
    assert (tmp_path / "docs" / "performance.md").read_text() == page
    lines = page.splitlines()
    assert lines[0] == "# Performance" and "python -m asc_kd.bench report" in lines[2]
    machine = machine_description()
    assert (
        f"| versions | {machine['versions']} |" in lines
        and f"torch {torch.__version__}" in machine["versions"]
    )
    assert any(line.startswith("| CPU | ") for line in lines)
    (row,) = [line for line in lines if line.startswith("| `python -m asc_kd.bench train`")]
    assert re.search(r"best \(asc_kd(_channels_last)?\): \*\*\d+\.\d\dx\*\*", row), row
    with pytest.raises(ValueError, match="unknown benchmarks \\['nonesuch'\\]"):
        performance_report(tmp_path / "x.md", ["nonesuch"])
    assert not (tmp_path / "x.md").exists()
