"""``asc_kd.runs.results``: the styles that give a system one colour in every figure of the results
notebook, and the runs' training logs it plots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from asc_kd.runs.results import PALETTE, run_styles, training_logs


def test_a_system_has_one_colour_for_its_runs_teachers_and_students_alike() -> None:
    # The curves list teachers and students; the bar charts list students' systems.
    styles = run_styles(["system1-seed1", "system1-seed0", "passt-seed0", "system2-seed0", "system1"])
    assert styles["system1"] == {"color": PALETTE[0], "label": "system1"}
    assert styles["passt"]["color"] == styles["passt-seed0"]["color"] == PALETTE[1]
    assert styles["system2-seed0"]["color"] == PALETTE[2]
    # Each run is labelled with its own name, and its seeds differ by line style, in seed order.
    assert styles["system1-seed0"] == {"color": PALETTE[0], "label": "system1-seed0", "linestyle": "-"}
    assert styles["system1-seed1"] == {"color": PALETTE[0], "label": "system1-seed1", "linestyle": "--"}
    assert styles["passt-seed0"]["label"] == "passt-seed0"


def test_a_systems_name_beside_its_runs_changes_no_colour_and_20_systems_differ() -> None:
    runs = ["cnn_tiny-seed0", "ast_tiny-seed0", "system1-seed0", "system1-seed1"]
    first = run_styles(runs)
    assert run_styles([*runs, "system1"]) == {**first, "system1": first["system1"]}
    assert len({first[r]["color"] for r in runs}) == 3  # three systems, three colours
    many = run_styles([f"s{i}-seed0" for i in range(21)])
    assert many["s19-seed0"]["color"] == PALETTE[19] and many["s20-seed0"]["color"] == PALETTE[0]


def test_training_logs_join_a_resumed_runs_versions_by_run(tmp_path: Path) -> None:
    for run, version, losses in (
        ("teachers/passt-seed0", 0, [2.0]),
        ("students/system1-seed0", 0, [1.5, 1.2]),
        ("students/system1-seed0", 1, [1.0]),
    ):
        folder = tmp_path / run / "csv" / f"version_{version}"
        folder.mkdir(parents=True)
        pd.DataFrame({"epoch": range(len(losses)), "train/loss": losses}).to_csv(folder / "metrics.csv")
    logs = training_logs(tmp_path)
    assert list(logs) == ["passt-seed0", "system1-seed0"]
    assert list(logs["system1-seed0"]["train/loss"]) == [1.5, 1.2, 1.0]
    assert training_logs(tmp_path / "students").keys() == {"system1-seed0"}
