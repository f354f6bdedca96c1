"""``asc_kd.benchmarks`` measure what they say: the figures exist and the compared paths compute
the same thing. How fast each path is belongs to the bench command, not to tests."""

from __future__ import annotations

from fit_helpers import EXPERIMENTS

from asc_kd.benchmarks import bench_teacher


def test_bench_teacher_compares_the_same_teacher_both_ways() -> None:
    results = bench_teacher(
        str(EXPERIMENTS / "demo" / "teachers" / "passt_tiny.yaml"), batch_size=2, seconds=0
    )
    for key in ("train_clips_per_s", "eval_clips_per_s", "train_ratio", "eval_ratio"):
        assert results[key] > 0, key
    assert results["train_clips_per_s"] == results["asc_kd_train_clips_per_s"]
    if not results["bf16_autocast"]:  # fused attention alone: the same logits up to rounding
        assert results["eval_max_abs_logit_diff"] < 1e-4
        assert results["eval_top1_agreement"] == 1.0
