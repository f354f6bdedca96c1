"""Tables 1 and 2 from any run folders (``asc_kd.runs.tables.tables_from_runs``, ``python -m
asc_kd.tables``), checked against the runs' own ``summary.json`` files."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pandas as pd
import pytest
from fit_helpers import (
    TINY_SYSTEM1,
    TINY_TEACHER,
    TinyPipeline,
    command_line,
    fit_args,
    write_teacher_logits,
)

from asc_kd.core.errors import ConfigError
from asc_kd.runs.tables import tables_from_runs
from asc_kd.tables import main


@pytest.fixture(scope="module")
def runs(tiny_root: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fits run by hand, as a researcher would: a teacher with seeds 0 and 1, system 1 with seed 0."""
    from asc_kd.fit import main as fit

    out = tmp_path_factory.mktemp("hand_runs")
    logits = write_teacher_logits(tiny_root, out / "logits.npz")
    with command_line("python -m asc_kd.fit"):
        for seed in (0, 1):
            fit(
                [
                    *fit_args(tiny_root, cache_dir, out / "teachers", *TINY_TEACHER),
                    "--seed_everything",
                    str(seed),
                ]
            )
        fit(
            [
                *fit_args(tiny_root, cache_dir, out / "students", *TINY_SYSTEM1),
                "--data.teacher_logits",
                str(logits),
            ]
        )
    return out


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def test_tables_from_run_folders_are_mean_and_std_over_seeds(runs: Path) -> None:
    # Two run folders given one by one, and a folder of runs searched below.
    tables = tables_from_runs(
        [runs / "teachers" / "teacher-seed0", runs / "teachers" / "teacher-seed1", runs]
    )
    teachers = [_summary(runs / "teachers" / f"teacher-seed{seed}")["metrics"] for seed in (0, 1)]
    (row,) = tables["table1"].to_dict("records")
    assert (row["teacher"], row["selection"], row["seeds"]) == ("teacher", "last", 2)  # no run counted twice
    accuracies = [metrics["test/acc"] for metrics in teachers]
    assert row["accuracy_mean"] == pytest.approx(statistics.mean(accuracies))
    assert row["accuracy_std"] == pytest.approx(statistics.stdev(accuracies))
    log_losses = [metrics["test/log_loss"] for metrics in teachers]
    assert row["log_loss_mean"] == pytest.approx(statistics.mean(log_losses))
    assert list(tables["table1_seeds"]["seed"]) == [0, 1]

    student = _summary(runs / "students" / "system1-seed0")
    fp32, int8 = tables["table2"].to_dict("records")
    assert (fp32["system"], fp32["precision"], int8["precision"], fp32["seeds"]) == (
        "system1",
        "fp32",
        "int8",
        1,
    )
    assert fp32["accuracy_mean"] == pytest.approx(student["metrics"]["test/acc"])
    assert int8["accuracy_mean"] == pytest.approx(student["int8_metrics"]["acc"])
    assert int8["accuracy_seen_mean"] == pytest.approx(student["int8_metrics"]["acc_seen"])
    assert math.isnan(int8["accuracy_std"])  # one seed: no spread
    assert int8["mem_bytes"] == student["int8"]["mem_bytes"] == student["complexity"]["params"]
    assert fp32["mem_bytes"] == 4 * student["complexity"]["params"]
    assert int8["macs"] == fp32["macs"] == student["complexity"]["macs"]


def test_the_command_writes_the_tables_and_says_where(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(runs), "--out", str(tmp_path / "tables")]) == 0
    printed = capsys.readouterr().out
    for name in (
        "table1.md",
        "table1.csv",
        "table1_seeds.csv",
        "table2.md",
        "table2.csv",
        "table2_seeds.csv",
    ):
        assert (tmp_path / "tables" / name).is_file(), name
        assert str(tmp_path / "tables" / name) in printed
    title = (tmp_path / "tables" / "table2.md").read_text().splitlines()[0]
    assert title == "# Table 2: students on the development-test split (SYNTHETIC scenes: not TAU22 numbers)"
    written = pd.read_csv(tmp_path / "tables" / "table2.csv")
    assert list(written["precision"]) == ["fp32", "int8"]


def test_a_folder_without_runs_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"{tmp_path}: no summary.json in it or below"):
        tables_from_runs([tmp_path])


@pytest.mark.slow
@pytest.mark.xdist_group(name="pipeline")
def test_the_pipelines_run_folders_give_the_pipelines_table2(tiny_pipeline: TinyPipeline) -> None:
    from_runs = tables_from_runs([tiny_pipeline.out / "students"])["table2"]
    from_pipeline = pd.read_csv(tiny_pipeline.out / "table2.csv")
    assert list(from_runs.columns) == list(from_pipeline.columns)
    int8 = from_runs[from_runs["precision"] == "int8"].reset_index(drop=True)
    expected = from_pipeline[from_pipeline["precision"] == "int8"].reset_index(drop=True)
    pd.testing.assert_frame_equal(int8, expected, check_dtype=False)


def test_load_results_reads_a_folder_of_fits_made_by_hand(runs: Path) -> None:
    from asc_kd.runs.results import load_results

    results = load_results(runs)
    assert sorted(results.reports) == ["system1-seed0"]  # the teachers made no int8 model
    report = results.reports["system1-seed0"]
    assert report["int8"]["acc"] == pytest.approx(
        _summary(runs / "students" / "system1-seed0")["int8_metrics"]["acc"]
    )
    assert "confusion" in report["int8"]
    assert sorted(results.tables) == ["table1", "table1_seeds", "table2", "table2_seeds"]
    pd.testing.assert_frame_equal(results.tables["table2"], tables_from_runs([runs])["table2"])
