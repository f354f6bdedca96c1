"""Result tables (Table 1: teachers, Table 2: students): one row per seed, mean ± std per row.

Every run gives one row of metrics (``seed_row``); rows of the same model, recipe and
checkpoint selection are then summarised over seeds (``summarize``) into ``seeds``,
``<metric>_mean`` and ``<metric>_std`` columns (sample standard deviation; ``-`` for one
seed). Both forms are written: ``table1.md``/``.csv`` (summary) and ``table1_seeds.csv``.

The pipeline builds them from its manifest; ``tables_from_runs`` (``python -m asc_kd.tables
RUN_DIR... --out DIR``) builds the same tables from any fits' ``summary.json`` files.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from asc_kd.core.errors import ConfigError
from asc_kd.core.io import atomic_write

#: Table 1 lists teachers, Table 2 students (fp32 and int8): the rows' identity columns and the
#: columns their mean ± std is grouped by.
TABLE1_BY = ["teacher", "precision", "selection"]
TABLE2_BY = ["system", "precision", "selection"]


def metric_names(metrics: Mapping[str, Any]) -> dict[str, str]:
    """``SceneMetrics`` keys that go into the tables -> their column stems.

    Overall accuracy, macro accuracy and log loss, the accuracy of each device group, and the
    per-file numbers of clips scored in windows; per-device and per-class numbers stay in the
    JSON reports.
    """
    names = {"acc": "accuracy", "macro_acc": "macro_accuracy", "log_loss": "log_loss"}
    for key in metrics:
        if key.startswith("acc_") and not key.startswith(("acc_device_", "acc_class_")):
            names[key] = "accuracy_" + key[len("acc_") :]
    for key in ("file/acc", "file/log_loss"):
        if key in metrics:
            names[key] = "file_" + ("accuracy" if key.endswith("acc") else "log_loss")
    return {key: name for key, name in names.items() if key in metrics}


def seed_row(metrics: Mapping[str, Any], **identity: Any) -> dict[str, Any]:
    """One table row for one run: ``identity`` (name, seed, selection, ...) then the metrics."""
    return {**identity, **{name: float(metrics[key]) for key, name in metric_names(metrics).items()}}


def student_rows(report: Mapping[str, Any], system: str, selection: str, seed: Any) -> list[dict[str, Any]]:
    """Table 2's rows for one student run: fp32, then int8 when ``report`` has int8 metrics.

    ``report`` is an int8 report (``asc_kd.deployment.quantize.quantize_task``: ``fp32`` and ``int8`` metrics,
    ``params``, ``params_fused``, ``macs``, ``mem_bytes``, ``artifact_bytes``); without ``int8``
    the fp32 row alone, its MEM the fp32 parameters' bytes.
    """
    rows = []
    for precision in ("fp32", "int8"):
        if report.get(precision) is None:
            continue
        row = seed_row(report[precision], system=system, precision=precision, selection=selection, seed=seed)
        if precision == "int8":
            row.update(mem_bytes=report["mem_bytes"], artifact_bytes=report["artifact_bytes"])
        else:
            row.update(mem_bytes=4 * report["params"], artifact_bytes=None)
        row.update(params=report["params"], params_fused=report["params_fused"], macs=report["macs"])
        rows.append(row)
    return rows


def summarize(rows: pd.DataFrame, by: Sequence[str], metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each group of rows, in first-seen order.

    Columns: ``by``, ``seeds``, then ``<m>_mean`` and ``<m>_std`` for every metric column;
    other columns that are constant within a group (MEM, MACs) are kept after them.
    """
    metrics = list(metrics) if metrics is not None else [c for c in rows.columns if _is_metric(c)]
    out = []
    for key, group in rows.groupby(list(by), sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(by, key, strict=True))
        row["seeds"] = len(group)
        for metric in metrics:
            row[f"{metric}_mean"] = float(group[metric].mean())
            row[f"{metric}_std"] = float(group[metric].std(ddof=1)) if len(group) > 1 else math.nan
        for column in rows.columns:
            if column not in by and column not in metrics and column != "seed":
                values = group[column].unique()  # NaN counts as one value
                if len(values) == 1:
                    row[column] = values[0]
        out.append(row)
    return pd.DataFrame(out)


def _is_metric(column: str) -> bool:
    return column.startswith(("accuracy", "macro_accuracy", "log_loss", "file_"))


def to_markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub markdown table; floats rounded, NaN shown as '-' (no tabulate dependency)."""

    def cell(value: object) -> str:
        if value is None or value is pd.NA:
            return "-"
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return f"{int(value):,}"
        if isinstance(value, numbers.Real):
            return "-" if math.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def write_table(frame: pd.DataFrame, stem: str | Path, title: str | None = None) -> tuple[Path, Path]:
    """Write ``stem.md`` and ``stem.csv`` atomically, as a pair: both or neither are replaced."""
    stem = Path(stem)
    markdown, csv = stem.with_suffix(".md"), stem.with_suffix(".csv")
    with atomic_write(markdown) as md_handle, atomic_write(csv) as csv_handle:
        if title:
            md_handle.write(f"# {title}\n\n")
        md_handle.write(to_markdown(frame) + "\n")
        frame.to_csv(csv_handle, index=False)
    return markdown, csv


def write_results(
    rows: pd.DataFrame, by: Sequence[str], stem: str | Path, title: str | None = None
) -> tuple[pd.DataFrame, list[Path]]:
    """Write the per-seed rows (``stem_seeds.csv``) and their summary (``stem.md``/``.csv``)."""
    stem = Path(stem)
    summary = summarize(rows, by)
    seeds_csv = stem.with_name(f"{stem.name}_seeds.csv")
    with atomic_write(seeds_csv) as handle:
        rows.to_csv(handle, index=False)
    return summary, [*write_table(summary, stem, title), seeds_csv]


# -- tables from any runs -----------------------------------------------------------------------
#: A finished fit's record in its run folder (``asc_kd.training.fit.run_summary``): the tables read it, and
#: a new fit into a folder holding one refuses without ``--overwrite``.
SUMMARY = "summary.json"


def find_runs(folders: Iterable[str | Path]) -> list[Path]:
    """Every run's ``summary.json`` in or under ``folders`` (a run folder, or any folder of runs)."""
    found: list[Path] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise FileNotFoundError(2, "No such directory", str(folder))
        summaries = sorted(folder.rglob(SUMMARY))
        if not summaries:
            raise ConfigError(f"{folder}: no {SUMMARY} in it or below; give the folders of finished fits")
        found += [path for path in summaries if path not in found]
    return found


def _run_rows(path: Path) -> tuple[str, list[dict[str, Any]], bool]:
    """The table (``table1`` or ``table2``) and rows of the run whose ``summary.json`` is ``path``,
    and whether it ran on synthetic scenes.

    A run is a student (Table 2) when it made an int8 model or distilled; any other is a teacher.
    """
    from asc_kd.data.synthetic import is_synthetic

    summary = json.loads(path.read_text())
    config = summary.get("config", {})
    root = config.get("data", {}).get("root")
    synthetic = bool(root) and is_synthetic(root)
    name = config.get("name") or summary["run"].rsplit("-seed", 1)[0]
    seed = config.get("seed_everything")
    selection = summary["files"].get("selection") or "-"
    test = {k.removeprefix("test/"): v for k, v in summary["metrics"].items() if k.startswith("test/")}
    if not test:
        raise ConfigError(f"{path}: the run has no test metrics (fitted with --test false?)")
    distilled = str(config.get("model", {}).get("class_path", "")).endswith("DistillationTask")
    if summary.get("int8") or distilled:
        report = {**(summary.get("complexity") or {}), **(summary.get("int8") or {})}
        report.update(fp32=test, int8=summary.get("int8_metrics"))
        return "table2", student_rows(report, name, selection, seed), synthetic
    precision = run_precision(str(config.get("trainer", {}).get("precision", "32-true")))
    return (
        "table1",
        [seed_row(test, teacher=name, precision=precision, seed=seed, selection=selection)],
        synthetic,
    )


def run_precision(trainer_precision: str) -> str:
    """Table 1's ``precision`` of a fit from Lightning's ``trainer.precision`` (``32-true``: fp32)."""
    return "bf16" if "bf16" in trainer_precision else "fp16" if "16" in trainer_precision else "fp32"


def tables_from_runs(folders: Iterable[str | Path], out: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """Tables 1 and 2 from fits run anywhere (by hand, several seeds, the pipeline's run folders).

    Rows are grouped by recipe name (the run's ``name:``) and, in Table 2, precision, with the
    pipeline's columns. Returns ``table1``/``table2`` (mean ± std) and their ``*_seeds`` rows,
    for the tables that have runs; with ``out``, also writes them there as the pipeline does.
    """
    rows: dict[str, list[dict[str, Any]]] = {"table1": [], "table2": []}
    synthetic = False
    for path in find_runs(folders):
        table, run_rows, on_synthetic = _run_rows(path)
        rows[table] += run_rows
        synthetic |= on_synthetic
    tables: dict[str, pd.DataFrame] = {}
    for table, by, title in (
        ("table1", TABLE1_BY, "Table 1: teachers on the development-test split"),
        ("table2", TABLE2_BY, "Table 2: students on the development-test split"),
    ):
        if not rows[table]:
            continue
        frame = pd.DataFrame(rows[table])
        if "artifact_bytes" in frame:
            frame = frame.astype({"artifact_bytes": "Int64"})  # none for fp32
        if out is None:
            tables[table] = summarize(frame, by)
        else:
            from asc_kd.data.synthetic import SYNTHETIC_NOTE

            title += SYNTHETIC_NOTE if synthetic else ""
            tables[table], _ = write_results(frame, by, Path(out) / table, title)
        tables[f"{table}_seeds"] = frame
    return tables
