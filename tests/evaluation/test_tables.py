"""Tables 1 and 2 from any run folders (``asc_kd.evaluation.tables.tables_from_runs``, ``python -m
asc_kd.tables``), checked against the runs' own ``summary.json`` files."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pandas as pd
import pytest
import torch
from fit_helpers import (
    TINY_SYSTEM1,
    TINY_TEACHER,
    TinyPipeline,
    command_line,
    fit_args,
    write_teacher_logits,
)

from asc_kd.core.errors import ConfigError
from asc_kd.data.folders import FolderLayout
from asc_kd.data.tau import TAU22Layout
from asc_kd.data.teacher_logits import save_logits
from asc_kd.evaluation.inference import fast_bf16
from asc_kd.evaluation.tables import (
    TABLE1_BY,
    display_frame,
    table1_record,
    table_title,
    tables_from_runs,
    write_results,
)
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


#: What the student recipe's ``precision: auto`` runs in on this host.
FLOAT_PRECISION = "bf16" if fast_bf16(torch.device("cpu")) else "fp32"


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
    # students/kd's precision is auto: the float row says what ran on this host
    assert student["precision"] == FLOAT_PRECISION
    assert (fp32["system"], fp32["precision"], int8["precision"], fp32["seeds"]) == (
        "system1",
        FLOAT_PRECISION,
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
    assert title == (
        "# Table 2: students on the TAU22 development-test split (evaluation_setup/fold1_evaluate.csv)"
        " (SYNTHETIC scenes: not TAU22 numbers)"
    )
    written = pd.read_csv(tmp_path / "tables" / "table2.csv")
    assert list(written["precision"]) == [FLOAT_PRECISION, "int8"]


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


@pytest.mark.slow
@pytest.mark.xdist_group(name="pipeline")
def test_the_tables_command_gives_the_pipelines_table1_ensemble_row_included(
    tiny_pipeline: TinyPipeline, tmp_path: Path
) -> None:
    for given in ([tiny_pipeline.out], [tiny_pipeline.out / "students"]):  # the logits file, or named
        out = tmp_path / str(len(given[0].parts))
        tables_from_runs(given, out=out)
        for name in ("table1.md", "table1.csv", "table1_seeds.csv"):
            assert (out / name).read_text() == (tiny_pipeline.out / name).read_text(), (given, name)
    assert "ensemble of" in (tmp_path / str(len(tiny_pipeline.out.parts)) / "table1.md").read_text()


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


# -- mean ± std for reading, titles, and one Table 1 ---------------------------------------------


def test_the_markdown_shows_mean_and_std_in_one_column_and_the_csv_keeps_the_numbers(tmp_path: Path) -> None:
    rows = pd.DataFrame(
        [
            {
                "teacher": "a",
                "precision": "fp32",
                "selection": "last",
                "seed": s,
                "accuracy": acc,
                "log_loss": ll,
            }
            for s, acc, ll in ((0, 0.5, 1.0), (1, 0.7, 1.5), (2, 0.9, 2.0))
        ]
        + [
            {
                "teacher": "b",
                "precision": "fp32",
                "selection": "last",
                "seed": 0,
                "accuracy": 0.8,
                "log_loss": 0.25,
            }
        ]
    )
    summary, _ = write_results(rows, TABLE1_BY, tmp_path / "table1", "Table 1: teachers on x")
    # By hand: mean (0.5 + 0.7 + 0.9) / 3 = 0.7; sample std sqrt((0.04 + 0 + 0.04) / 2) = 0.2.
    assert summary["accuracy_mean"].tolist() == pytest.approx([0.7, 0.8])
    assert summary["accuracy_std"].iloc[0] == pytest.approx(0.2) and math.isnan(
        summary["accuracy_std"].iloc[1]
    )
    shown = display_frame(summary)
    assert list(shown.columns) == ["teacher", "precision", "selection", "seeds", "accuracy", "log_loss"]
    assert shown["accuracy"].tolist() == ["0.700 ± 0.200", "0.800"]  # one seed: the mean alone
    assert shown["log_loss"].tolist() == ["1.500 ± 0.500", "0.250"]
    markdown = (tmp_path / "table1.md").read_text().splitlines()
    assert markdown[0] == "# Table 1: teachers on x"
    assert markdown[2] == "| teacher | precision | selection | seeds | accuracy | log_loss |"
    assert markdown[4] == "| a | fp32 | last | 3 | 0.700 ± 0.200 | 1.500 ± 0.500 |"
    written = pd.read_csv(tmp_path / "table1.csv")
    assert {"accuracy_mean", "accuracy_std", "log_loss_mean", "log_loss_std"} <= set(written.columns)
    assert "accuracy" not in written.columns and written["accuracy_std"].iloc[0] == pytest.approx(0.2)


def test_a_title_names_the_test_split_it_was_scored_on() -> None:
    split = "the TAU22 development-test split (evaluation_setup/fold1_evaluate.csv)"
    assert table_title(1, "teachers", [split, split]) == f"Table 1: teachers on {split}"
    assert table_title(2, "students", [None]) == "Table 2: students on the test split"
    assert table_title(2, "students", ["A", None, "B"], synthetic=True) == (
        "Table 2: students on several test splits: A; B (SYNTHETIC scenes: not TAU22 numbers)"
    )


def test_the_test_split_in_words_for_each_layout(tmp_path: Path) -> None:
    assert TAU22Layout(tmp_path).test_split() == (
        "the TAU22 development-test split (evaluation_setup/fold1_evaluate.csv)"
    )
    folders = FolderLayout(tmp_path, test_fraction=0.25, split_seed=3)
    assert folders.test_split() == (
        f"a test split held out from the class folders at {tmp_path} (25% of each class's "
        "recordings, split seed 3)"
    )
    (tmp_path / "evaluation_setup").mkdir()
    for name in ("fold1_train.csv", "fold1_evaluate.csv"):
        (tmp_path / "evaluation_setup" / name).write_text("filename\tscene_label\n")
    assert folders.test_split() == (
        f"the test split of the class folders at {tmp_path} (evaluation_setup/fold1_evaluate.csv)"
    )


def _hand_run(folder: Path, name: str, seed: int, acc: float) -> Path:
    """A teacher's run folder with the summary.json a fit writes (the keys the tables read)."""
    run = folder / f"{name}-seed{seed}"
    (run / "checkpoints").mkdir(parents=True)
    checkpoint = run / "checkpoints" / "last.ckpt"
    summary = {
        "run": run.name,
        "data": {"dataset": "folders", "test_split": "split S"},
        "metrics": {"test/acc": acc, "test/macro_acc": acc, "test/log_loss": 1.0},
        "files": {"selection": "last", "reported_checkpoint": str(checkpoint)},
        "config": {"name": name, "seed_everything": seed, "data": {"root": str(folder)}},
    }
    (run / "summary.json").write_text(json.dumps(summary))
    return checkpoint


def test_table1_from_runs_takes_the_logits_exports_rows_and_adds_the_teachers_it_did_not_score(
    tmp_path: Path,
) -> None:
    scored = _hand_run(tmp_path / "teachers", "passt", 0, 0.5)
    _hand_run(tmp_path / "teachers", "cnn", 0, 0.25)
    exported = [
        {"teacher": "passt", "precision": "fp32", "seed": 0, "selection": "last", "accuracy": 0.625},
        {
            "teacher": "ensemble of 1 (passt)",
            "precision": "fp32",
            "seed": None,
            "selection": "last",
            "accuracy": 0.75,
        },
    ]
    record = table1_record(exported, [str(scored), None], "split S", synthetic=False)
    save_logits(
        tmp_path / "teachers" / "ensemble_train.npz", ["x.wav"], torch.zeros(1, 2), {"table1": record}
    )
    tables = tables_from_runs([tmp_path], out=tmp_path / "tables")
    table1 = tables["table1"]
    # The export's rows (its own scoring of passt, then the ensemble), then cnn from its summary.
    assert list(table1["teacher"]) == ["passt", "ensemble of 1 (passt)", "cnn"]
    assert table1["accuracy_mean"].tolist() == pytest.approx([0.625, 0.75, 0.25])
    title = (tmp_path / "tables" / "table1.md").read_text().splitlines()[0]
    assert title == "# Table 1: teachers on split S"
    # Without the logits file, no ensemble row: each teacher from its own summary.
    (tmp_path / "teachers" / "ensemble_train.npz").unlink()
    assert list(tables_from_runs([tmp_path])["table1"]["teacher"]) == ["cnn", "passt"]
