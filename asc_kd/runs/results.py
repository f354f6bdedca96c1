"""A pipeline's results, read from its output folder or from a W&B project: the same frames either
way, so ``notebooks/results.ipynb`` plots a local run and a synced one alike.

* a pipeline's folder: ``pipeline.json`` (each student's int8 report) and the tables' CSVs;
* any other folder of fits (run by hand, several seeds): each run's ``summary.json`` and int8
  report, and the tables built from them (``asc_kd.runs.tables.tables_from_runs``);
* ``wandb:ENTITY/PROJECT`` or ``wandb:ENTITY/PROJECT/GROUP``: the ``int8-model`` artifacts'
  reports (``*.int8.json``) and the ``results-table`` artifacts' CSVs, through W&B's public API
  (needs a login and network).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from asc_kd.tracking.lineage import results_from_wandb

#: The CSV files of the results tables (``asc_kd.runs.tables.write_results``).
TABLE_FILES = ("table1", "table1_seeds", "table2", "table2_seeds")


@dataclass
class Results:
    """Each student run's int8 report (``system1-seed0`` -> report with ``fp32``/``int8``
    metrics, ``classes``, ``devices``) and the tables by name (``table2``, ``table2_seeds``...)."""

    source: str
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def load_results(source: str | Path, api: Any = None) -> Results:
    """Read results from a pipeline output folder or ``wandb:ENTITY/PROJECT[/GROUP]``."""
    text = str(source)
    if text.startswith("wandb:"):
        return _from_wandb(text[len("wandb:") :], api)
    return _from_folder(Path(source))


def _from_folder(folder: Path) -> Results:
    manifest_path = folder / "pipeline.json"
    if not manifest_path.is_file():
        return _from_runs(folder)
    manifest = json.loads(manifest_path.read_text())
    results = Results(str(folder))
    for key, value in manifest.items():
        if key.startswith("int8:"):
            results.reports[key.split(":", 1)[1]] = value
    for name in TABLE_FILES:
        if (folder / f"{name}.csv").is_file():
            results.tables[name] = pd.read_csv(folder / f"{name}.csv")
    return results


def _from_runs(folder: Path) -> Results:
    """The runs' int8 reports (by run folder name) and Tables 1 and 2 built from their summaries."""
    from asc_kd.runs.tables import find_runs, tables_from_runs

    results = Results(str(folder), tables=tables_from_runs([folder]))
    for path in find_runs([folder]):
        summary = json.loads(path.read_text())
        artifact = summary["files"].get("int8_artifact")
        if artifact and Path(artifact).with_suffix(".json").is_file():
            results.reports[summary["run"]] = json.loads(Path(artifact).with_suffix(".json").read_text())
    return results


def _from_wandb(path: str, api: Any) -> Results:
    reports, tables = results_from_wandb(path, TABLE_FILES, api)
    return Results(f"wandb:{path}", tables=tables, reports=reports)
