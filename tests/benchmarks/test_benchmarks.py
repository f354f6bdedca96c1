"""``asc_kd.benchmarks`` measure what they say: the figures exist and the compared paths compute
the same thing. How fast each path is belongs to the bench command, not to tests."""

from __future__ import annotations

import itertools
import json
import platform
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import torch

from asc_kd.benchmarks import bench_attention, bench_eval, bench_fit_epoch, bench_teacher, bench_train
from asc_kd.benchmarks.cpjku import _TorchWithRealStft
from asc_kd.benchmarks.demo import _ends, _stages
from asc_kd.benchmarks.report import REPORT, machine_description, performance_report
from asc_kd.benchmarks.teacher import recipe_batch_size
from asc_kd.benchmarks.timing import rate
from asc_kd.core.errors import ConfigError
from asc_kd.data.datamodule import TAU22DataModule
from asc_kd.data.options import GivenData
from asc_kd.recipes import RECIPES
from asc_kd.training.logits import LOGITS_DATA_DEFAULTS


def test_bench_teacher_compares_the_same_teacher_both_ways(bf16_branch: bool) -> None:
    recipe = str(RECIPES / "demo" / "teachers" / "passt_tiny.yaml")
    results = bench_teacher(recipe, batch_size=2, eval_batch_size=3, seconds=0)
    for key in ("train_clips_per_s", "eval_clips_per_s", "train_ratio", "eval_ratio"):
        assert results[key] > 0, key
    assert results["train_clips_per_s"] == results["asc_kd_train_clips_per_s"]
    assert (results["batch_size"], results["eval_batch_size"]) == (2, 3)
    assert "train (batch 2)" in REPORT["teacher"][3](results) and "eval (batch 3)" in REPORT["teacher"][3](
        results
    )
    assert results["bf16_autocast"] is bf16_branch
    assert f"{results['eval_ratio']:.2f}x" in REPORT["teacher"][3](results)  # the report's row
    if bf16_branch:  # bf16 moves the logits a little, not to other numbers
        assert 1e-6 < results["eval_max_abs_logit_diff"] < 5e-2
    else:  # fused attention alone: the same logits up to rounding
        assert results["eval_max_abs_logit_diff"] < 1e-4
        assert results["eval_top1_agreement"] == 1.0


@pytest.mark.parametrize(("amx", "fast"), [(True, "1"), (False, "1"), (False, "0")])
def test_bench_attention_times_both_paths_at_the_passt_recipes_tokens(
    monkeypatch: pytest.MonkeyPatch, amx: bool, fast: str
) -> None:
    import asc_kd.models.passt as passt_module

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setenv("ASC_KD_FAST_BF16", fast)
    sdpa = passt_module.F.scaled_dot_product_attention

    def slowed(*args: Any, **kwargs: Any) -> torch.Tensor:  # 50 ms more on every fused call
        time.sleep(0.05)
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(passt_module.F, "scaled_dot_product_attention", slowed)
    results = bench_attention(batch_size=2, eval_batch_size=3, threads=1, seconds=0)
    # A 1-s clip is 100 frames of 128 mels: 16x16 patches at stride 10 make 12 x 9 of them,
    # plus the class and distillation tokens; training drops 6 of the 12 frequency rows.
    assert (results["eval_tokens"], results["train_tokens"]) == (12 * 9 + 2, 6 * 9 + 2)
    assert (results["batch_size"], results["eval_batch_size"]) == (2, 3)
    assert results["this_cpu"] == ("fused" if amx else "matmul")
    assert results["fast_bf16"] is (fast == "1")
    for phase in ("train", "eval"):
        fused, matmul = results[f"fused_{phase}_ms"], results[f"matmul_{phase}_ms"]
        assert fused > 50 > matmul  # each label timed its own path: only the fused one sleeps
        assert results[f"{phase}_matmul_speedup"] == pytest.approx(fused / matmul, rel=0.02)
    row = REPORT["attention"][3](results)
    assert f"the matmuls **{results['train_matmul_speedup']:.2f}x**" in row
    assert f"a bf16 PaSST on this CPU takes the {'fused kernel' if amx else 'matmuls'}" in row
    assert ("keeps fp32" in row) is (fast == "0")


def test_bench_teacher_times_a_training_step_at_the_recipes_batch(tmp_path: Path) -> None:
    assert recipe_batch_size("passt") == 80  # CP-JKU's, in teachers/passt.yaml
    assert recipe_batch_size(str(RECIPES / "demo" / "teachers" / "passt_tiny.yaml")) == 32
    bare = tmp_path / "bare.yaml"
    bare.write_text("model:\n  init_args:\n    model: passt\n")
    with pytest.raises(
        ConfigError, match=f"teacher recipe {bare} sets no data.batch_size; give --batch-size"
    ):
        recipe_batch_size(str(bare))
    bare.write_text("data:\n  init_args:\n    batch_size: 24\n")  # as a fit reads it too
    assert recipe_batch_size(str(bare)) == 24
    for value in ("'80'", "true", "0"):
        bare.write_text(f"data:\n  batch_size: {value}\n")
        with pytest.raises(ConfigError, match="is not a whole number of clips"):
            recipe_batch_size(str(bare))


def test_bench_teacher_defaults_to_the_recipes_batch_and_the_exports_eval_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recipe = str(RECIPES / "demo" / "teachers" / "passt_tiny.yaml")
    monkeypatch.setitem(LOGITS_DATA_DEFAULTS, "eval_batch_size", 3)  # the export's, kept small here
    monkeypatch.setattr("asc_kd.benchmarks.teacher.recipe_batch_size", lambda model: 2)  # likewise
    results = bench_teacher(recipe, seconds=0)
    assert (results["batch_size"], results["eval_batch_size"]) == (2, 3)


@pytest.mark.slow
def test_bench_fit_epoch_times_a_real_fit_epoch(tiny_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    data = GivenData({"root": str(tiny_root), "num_workers": 0})
    bare_rates: list[float] = []

    def spy(fn: Callable[[], int], min_seconds: float, warmup: int = 1) -> float:
        bare_rates.append(rate(fn, min_seconds, warmup))
        return bare_rates[-1]

    monkeypatch.setattr("asc_kd.benchmarks.student.rate", spy)
    results = bench_fit_epoch(data, batch_size=8, threads=1, epochs=4, bare_seconds=0.1)
    train_clips = len(TAU22DataModule(root=str(tiny_root), validation="none").frames()["train"])
    assert results["clips"] == train_clips // 8 * 8  # one epoch of whole batches (drop_last)
    assert results["loop_clips"] == results["clips"]  # the plain loop reads the same epoch
    assert results["epochs_timed"] == 3  # references after each epoch; the first epoch left out
    for name in ("epoch_over_bare", "epoch_over_loop", "loop_over_bare"):
        each = results[f"{name}_each"]
        assert len(each) == 3 and results[name] == pytest.approx(sorted(each)[1], abs=1e-3)  # the median
    refs = results["references_after_each_epoch"]  # after each of the 4 epochs
    # the bare step's rate over its whole span (timing.rate), as the epoch's is, after each epoch
    assert [ref["bare_step_clips_per_s"] for ref in refs] == [round(r, 1) for r in bare_rates]
    starts = [ref["at_s"] for ref in refs]
    assert len(refs) == 4 and starts == sorted(set(starts))  # measured afresh after every epoch
    for i, (loop, bare) in enumerate(
        zip(results["loop_clips_per_s_each"], results["bare_step_clips_per_s_each"], strict=True)
    ):
        # epoch i + 1 against the references just before and just after it
        before, after = refs[i], refs[i + 1]
        assert loop == pytest.approx((before["loop_clips_per_s"] + after["loop_clips_per_s"]) / 2, abs=0.11)
        assert bare == pytest.approx(
            (before["bare_step_clips_per_s"] + after["bare_step_clips_per_s"]) / 2, abs=0.11
        )
    from asc_kd.benchmarks.student import EpochTimer

    assert EpochTimer.after_epoch is None  # reset after the fit
    row = REPORT["fit"][3](results)
    assert f"{100 * results['epoch_over_bare']:.0f} % of the bare step" in row
    assert f"the fit is {100 * results['epoch_over_loop']:.0f} % of the loop" in row


def test_rate_counts_the_slow_calls_of_its_span() -> None:
    # Three calls of 1 ms and one of 30 ms, two items each: over whole cycles 2 / 8.25 ms (242/s),
    # at most 300/s where the span ends after fast calls; a median call would give 2 / 1 ms.
    sleeps = itertools.cycle([0.001, 0.001, 0.001, 0.030])

    def call() -> int:
        time.sleep(next(sleeps))
        return 2

    assert 100 < rate(call, min_seconds=0.1, warmup=0) < 320


def test_bench_fit_epoch_refuses_to_run_inside_another(monkeypatch: pytest.MonkeyPatch) -> None:
    from asc_kd.benchmarks.student import EpochTimer

    monkeypatch.setattr(EpochTimer, "after_epoch", lambda: None)
    with pytest.raises(RuntimeError, match="another bench_fit_epoch is running"):
        bench_fit_epoch(GivenData({"root": "/nonexistent"}), batch_size=8, threads=1)


@pytest.mark.slow
def test_bench_eval_runs_each_malloc_setting_in_its_own_process() -> None:
    results = bench_eval(batch_size=4, seconds=0.1, threads=1, rounds=1)
    assert results["malloc_default_kept_freed_memory"] is False
    assert results["asc_kd_kept_freed_memory"] is (platform.libc_ver()[0] == "glibc")
    assert results["ratio"] == pytest.approx(
        results["asc_kd_clips_per_s"] / results["malloc_default_clips_per_s"], abs=0.01
    )
    assert f"**{results['ratio']:.2f}x**" in REPORT["eval"][3](results)


def test_the_report_names_the_machine_and_each_same_run_ratio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command, compared, _, show = REPORT["train"]
    # the report's own row compiles a variant (about 15 s): the page is the same without it
    quick = (command, compared, lambda s, c: bench_train(8, s, 1, False), show)
    monkeypatch.setitem(REPORT, "train", quick)
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
    (row,) = [line for line in lines if line.startswith("| `python -m asc_kd.bench train")]
    assert re.search(
        r"best \(asc_kd_(fp32|channels_last|bf16)\) over the baseline \*\*\d+\.\d\dx\*\*$",
        row.split(" | ")[2],
    ), row
    assert "CP-JKU's own code" not in row  # only with --cpjku
    with pytest.raises(ValueError, match="unknown benchmarks \\['nonesuch'\\]"):
        performance_report(tmp_path / "x.md", ["nonesuch"])
    assert not (tmp_path / "x.md").exists()


def test_the_report_keeps_a_section_per_machine_and_replaces_only_the_rows_it_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asc_kd.benchmarks import report

    runs = iter(range(1, 100))
    stub = {
        name: (f"python -m asc_kd.bench {name}", f"{name} compared", lambda s, c: {"n": next(runs)}, str)
        for name in ("one", "two")
    }
    monkeypatch.setattr(report, "REPORT", stub)
    xeon = {
        "CPU": "Xeon; 2 usable cores; amx_bf16",
        "fast bf16 on the CPU": "yes",
        "GPU": "none",
        "versions": "v1",
    }
    epyc = {**xeon, "CPU": "EPYC; 2 usable cores; avx512_bf16"}
    out = tmp_path / "performance.md"
    out.write_text("# Performance\n\nan old page without sections\n")

    def run(machine: dict[str, str], only: list[str] | None = None) -> list[str]:
        monkeypatch.setattr(report, "machine_description", lambda: machine)
        return report.performance_report(out, only, progress=False).splitlines()

    run(xeon)  # rows n=1, n=2
    run(epyc, ["two"])  # n=3
    lines = run(xeon, ["two"])  # n=4: replaces the Xeon's second row only
    assert "an old page without sections" not in lines
    marks = [line for line in lines if line.startswith("<!-- machine: ")]
    assert marks == [
        "<!-- machine: Xeon; 2 usable cores; amx_bf16; GPU none -->",
        "<!-- machine: EPYC; 2 usable cores; avx512_bf16; GPU none -->",
    ]
    xeon_part, epyc_part = "\n".join(lines).split(marks[1])
    results = [row.split(" | ")[2] for row in xeon_part.splitlines() if row.startswith("| `")]
    assert results == ["{'n': 1}", "{'n': 4}"]  # in the report's order, the kept row and the new one
    assert [row.split(" | ")[2] for row in epyc_part.splitlines() if row.startswith("| `")] == ["{'n': 3}"]
    assert "## Xeon; 2 usable cores; amx_bf16" in lines and "## EPYC; 2 usable cores; avx512_bf16" in lines
    assert xeon_part.count("| CPU | Xeon") == 1 and epyc_part.count("| CPU | EPYC") == 1
    assert all(
        re.search(r" \| \d{4}-\d\d-\d\d \d\d:\d\d UTC \|$", row) for row in lines if row.startswith("| `")
    )
    text = out.read_text()
    assert text.endswith(" UTC |\n") and "\n\n<!-- machine: EPYC" in text  # a blank line before every mark
    # a new torch version starts the machine's section afresh: no row under a table it was not run with
    lines = run({**epyc, "versions": "v2"}, ["one"])  # n=5
    epyc_part = "\n".join(lines).split("<!-- machine: EPYC")[1]
    assert [row.split(" | ")[2] for row in epyc_part.splitlines() if row.startswith("| `")] == ["{'n': 5}"]
    assert "| versions | v2 |" in epyc_part and "| versions | v1 |" in "\n".join(lines)  # the Xeon's kept


def test_bench_train_times_each_variant_and_compares_the_best_with_the_baseline(bf16_branch: bool) -> None:
    results = bench_train(4, seconds=0, threads=1, compile_model=False)
    variants = ["asc_kd_fp32", "asc_kd_channels_last", "asc_kd_bf16"]
    assert results["best"] in variants
    assert results[f"{results['best']}_clips_per_s"] == max(results[f"{v}_clips_per_s"] for v in variants)
    assert results["ratio_best_over_baseline"] == pytest.approx(
        results[f"{results['best']}_clips_per_s"] / results["baseline_clips_per_s"], abs=0.01
    )
    assert results["fast_bf16"] is bf16_branch
    assert "cpjku_clips_per_s" not in results and "ratio_best_over_cpjku" not in results


def test_a_folder_that_is_not_cpjkus_checkout_is_named_with_what_it_lacks(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mel.py").write_text("")
    with pytest.raises(
        ConfigError,
        match=r"not a checkout of github.com/fschmid56/cpjku_dcase23 \(missing models/cp_resnet.py",
    ):
        bench_train(4, seconds=0, threads=1, compile_model=False, cpjku=str(tmp_path))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["mel.py", "models"]  # nothing written


def test_cpjkus_real_stft_is_the_real_view_of_the_complex_one() -> None:
    x = torch.randn(2, 4000, generator=torch.Generator().manual_seed(0))
    window = torch.hann_window(800)
    real = _TorchWithRealStft().stft(
        x, 1024, hop_length=320, win_length=800, window=window, return_complex=False
    )
    spec = torch.stft(x, 1024, hop_length=320, win_length=800, window=window, return_complex=True)
    assert real.shape == (*spec.shape, 2)
    assert torch.equal(real[..., 0], spec.real) and torch.equal(real[..., 1], spec.imag)


def test_the_demo_stages_follow_each_other_from_the_times_read() -> None:
    # python starts at 0 s, the driver at 6, it makes the scenes by 15 and starts the first
    # teacher at 16; that fit fills the cache by 18; teachers end at 70, students at 150; exit 155.
    ends = {"teacher": 70.0, "student": 150.0}
    stages = _stages(0.0, 155.0, 6.0, 16.0, 15.0, 18.0, ends)
    assert stages == {
        "wall_s": 155.0,
        "python_start_s": 6.0,
        "synthetic_scenes_s": 9.0,
        "driver_setup_s": 1.0,
        "audio_cache_s": 2.0,
        "teachers_s": 52.0,
        "students_s": 80.0,
        "tables_and_exit_s": 5.0,
    }
    assert sum(v for k, v in stages.items() if k != "wall_s") == 155.0  # the rows add up
    # the first fit started within the second the scenes were done (its record holds 16, not 16.6)
    stages = _stages(0.0, 155.0, 6.0, 16.0, 16.6, 18.0, ends)
    assert (stages["synthetic_scenes_s"], stages["driver_setup_s"], stages["audio_cache_s"]) == (
        10.0,
        0.0,
        2.0,
    )
    # a dataset already there (no scenes made), and a cache written to again after the teachers
    stages = _stages(0.0, 155.0, 6.0, 16.0, None, 100.0, ends)
    assert "synthetic_scenes_s" not in stages and "audio_cache_s" not in stages
    assert (stages["driver_setup_s"], stages["teachers_s"]) == (10.0, 54.0)


def test_the_demo_stages_are_read_from_the_runs_records(tmp_path: Path) -> None:
    def record(path: Path, kind: str, started: str, ended: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        attempt = {"started": f"2026-12-07T10:{started}", "ended": f"2026-12-07T10:{ended}"}
        path.write_text(json.dumps({"kind": kind, "attempts": [attempt]}))

    record(tmp_path / "teachers" / "a-seed0" / "run.json", "teacher", "00:10", "00:40")
    record(tmp_path / "teachers" / "b-seed0" / "run.json", "teacher", "00:40", "01:00")
    record(tmp_path / "stages" / "logits.json", "logits", "01:00", "01:05")
    record(tmp_path / "students" / "s-seed0" / "run.json", "student", "01:05", "01:35")
    (tmp_path / "pipeline.json").write_text(json.dumps({"student:s-seed0": {"kind": "student"}}))
    ends = _ends(tmp_path)
    start = datetime.fromisoformat("2026-12-07T10:00:00").timestamp()
    assert {kind: end - start for kind, end in ends.items()} == {"teacher": 60, "logits": 65, "student": 95}
