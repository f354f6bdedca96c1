"""A pipeline's results, read from its output folder or from a W&B project: the same frames either
way, so ``notebooks/results.ipynb`` plots a local run and a synced one alike.

* a pipeline's folder: ``pipeline.json`` (each student's int8 report) and the tables' CSVs;
* any other folder of fits (run by hand, several seeds): each run's ``summary.json`` and int8
  report, and the tables built from them (``asc_kd.evaluation.tables.tables_from_runs``);
* ``wandb:ENTITY/PROJECT`` or ``wandb:ENTITY/PROJECT/GROUP``: the ``int8-model`` artifacts'
  reports (``*.int8.json``) and the ``results-table`` artifacts' CSVs, through W&B's public API
  (needs a login and network).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from asc_kd.evaluation.tables import find_runs, tables_from_runs
from asc_kd.tracking.lineage import results_from_wandb

#: The CSV files of the results tables (``asc_kd.evaluation.tables.write_results``).
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


# -- one colour per system, in every figure --------------------------------------------------------
#: Matplotlib's ``tab10`` colours, then ``tab20``'s lighter shades: 20 systems before one repeats.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
    "#dbdb8d", "#9edae5",
)  # fmt: skip
#: Line styles of a system's seeds, in seed order (a fifth seed takes the first again).
SEED_STYLES = ("-", "--", ":", "-.")


def system_of(run: str) -> str:
    """The system (recipe) a run belongs to: ``system1-seed0`` -> ``system1``; a name without a seed
    is its own system."""
    return run.rsplit("-seed", 1)[0]


def run_styles(runs: Iterable[str]) -> dict[str, dict[str, str]]:
    """How every figure draws each system and run, so a colour means one system in every panel.

    ``runs`` are run names (``passt-seed0``, ``system1-seed1``) or system names, teachers and
    students alike. Returns, for each system and each run, ``color`` (one per system, in
    first-seen order) and ``label`` (its own name); a run also gets ``linestyle``, one per seed of
    its system in seed order. Pass it to a plot call: ``ax.plot(x, y, **styles[run])``.
    """
    names = list(dict.fromkeys(runs))
    systems = list(dict.fromkeys(system_of(name) for name in names))
    colour = {system: PALETTE[i % len(PALETTE)] for i, system in enumerate(systems)}
    styles: dict[str, dict[str, str]] = {s: {"color": colour[s], "label": s} for s in systems}
    for system in systems:
        seeded = sorted((n for n in names if n != system and system_of(n) == system), key=_seed)
        for i, run in enumerate(seeded):
            styles[run] = {
                "color": colour[system],
                "label": run,
                "linestyle": SEED_STYLES[i % len(SEED_STYLES)],
            }
    return styles


def _seed(run: str) -> tuple[int, str]:
    seed = run.rsplit("-seed", 1)[1]
    return (int(seed), "") if seed.isdigit() else (0, seed)


def training_logs(folder: str | Path) -> dict[str, pd.DataFrame]:
    """Every run's logged values under ``folder``, by run name (the folder holding its
    ``csv/version_*/metrics.csv``); a resumed fit's versions follow one another in one frame."""
    logs: dict[str, list[pd.DataFrame]] = {}
    for path in sorted(Path(folder).glob("**/csv/version_*/metrics.csv"), key=_version_order):
        logs.setdefault(path.parents[2].name, []).append(pd.read_csv(path))
    return {run: pd.concat(frames, ignore_index=True) for run, frames in sorted(logs.items())}


def _version_order(path: Path) -> tuple[str, int]:
    version = path.parent.name.removeprefix("version_")
    return str(path.parents[2]), int(version) if version.isdigit() else 0
