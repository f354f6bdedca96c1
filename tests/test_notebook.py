"""``notebooks/results.ipynb`` runs on a pipeline's output (no Jupyter: cells run in one namespace)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest
from fit_helpers import REPO, TinyPipeline

#: One worker builds the session's tiny pipeline for every test that reads it.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(name="pipeline")]


NOTEBOOK = REPO / "notebooks" / "results.ipynb"
FIGURES = ("per_device_accuracy.png", "seed_spread.png", "confusion_int8.png")


def _code_cells(path: Path) -> list[str]:
    notebook = json.loads(path.read_text())
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_results_notebook_writes_its_figures(
    tiny_pipeline: TinyPipeline,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("ASC_KD_PIPELINE_OUT", str(tiny_pipeline.out))
    monkeypatch.setenv("ASC_KD_FIGURES", str(tmp_path / "figures"))
    monkeypatch.chdir(NOTEBOOK.parent)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace = {"display": print, "__name__": "__main__"}
    try:
        for index, source in enumerate(_code_cells(NOTEBOOK)):
            exec(compile(source, f"{NOTEBOOK.name}[{index}]", "exec"), namespace)
    finally:
        plt.close("all")
    for name in FIGURES:
        figure = tmp_path / "figures" / name
        assert figure.is_file() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    printed = capsys.readouterr().out
    assert "2 quantized student runs" in printed and "system1-seed1" in printed
    assert "table1" in printed and "table2" in printed
    assert "accuracy_std" in printed
