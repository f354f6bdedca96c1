"""``notebooks/results.ipynb`` runs on a pipeline's output, executed by nbclient in a kernel."""

from __future__ import annotations

from pathlib import Path

import pytest
from fit_helpers import REPO, TinyPipeline

#: One worker builds the session's tiny pipeline for every test that reads it.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(name="pipeline")]


NOTEBOOK = REPO / "notebooks" / "results.ipynb"
FIGURES = (
    "per_device_accuracy.png",
    "per_class_accuracy.png",
    "seed_spread.png",
    "confusion_int8.png",
    "training_curves.png",
)


def test_results_notebook_runs_top_to_bottom_in_a_kernel(
    tiny_pipeline: TinyPipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ``make notebook`` runs it: nbclient executes every cell in order in a Jupyter kernel."""
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("ASC_KD_RESULTS", str(tiny_pipeline.out))
    monkeypatch.setenv("ASC_KD_FIGURES", str(tmp_path / "figures"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()  # raises CellExecutionError naming the cell that failed
    for name in FIGURES:
        figure = tmp_path / "figures" / name
        assert figure.is_file() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream"
    )
    assert "2 quantized student runs" in printed and "system1-seed1" in printed
    assert "table1" in printed and "table2" in printed and "accuracy_std" in printed
    # The pipeline's 2 teacher and 2 student runs, read from their metrics CSVs.
    assert "training curves of 4 runs from their metrics CSVs" in printed


def test_results_from_a_wandb_project_equal_those_from_the_folder(
    tiny_pipeline: TinyPipeline, tmp_path: Path
) -> None:
    """``wandb:ENTITY/PROJECT/GROUP`` reads the pipeline's artifacts through the public API (here a
    stand-in that serves the pipeline's own files as the artifacts' downloads)."""
    import shutil
    from types import SimpleNamespace

    import pandas as pd

    from asc_kd.runs.results import load_results

    out = tiny_pipeline.out

    def artifact(kind: str, name: str, files: list[Path]) -> SimpleNamespace:
        folder = tmp_path / name
        folder.mkdir()
        for file in files:
            shutil.copy(file, folder / file.name)
        return SimpleNamespace(type=kind, name=f"{name}:v0", download=lambda: str(folder))

    runs = [
        SimpleNamespace(
            logged_artifacts=lambda seed=seed: [
                artifact(
                    "int8-model",
                    f"int8-system1-seed{seed}",
                    [out / "students" / f"system1-seed{seed}.int8.json"],
                ),
                SimpleNamespace(type="run_table", name="x", download=None),
            ]
        )
        for seed in (0, 1)
    ]
    runs.append(
        SimpleNamespace(
            logged_artifacts=lambda: [
                artifact("results-table", "table2", [out / "table2.csv", out / "table2_seeds.csv"]),
                artifact("results-table", "table1", [out / "table1.csv", out / "table1_seeds.csv"]),
            ]
        )
    )
    asked = []

    class Api:
        def runs(self, path, filters=None):
            asked.append((path, filters))
            return runs

    remote = load_results("wandb:team/asc_kd/out-1", api=Api())
    local = load_results(out)
    assert asked == [("team/asc_kd", {"group": "out-1"})]
    assert sorted(remote.reports) == sorted(local.reports) == ["system1-seed0", "system1-seed1"]
    for run, report in local.reports.items():
        assert remote.reports[run]["int8"] == report["int8"] and remote.reports[run]["fp32"] == report["fp32"]
    assert sorted(remote.tables) == sorted(local.tables)
    for name, frame in local.tables.items():
        pd.testing.assert_frame_equal(remote.tables[name], frame)
