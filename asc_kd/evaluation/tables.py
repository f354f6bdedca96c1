"""Result tables (Table 1: teachers, Table 2: students): one row per seed, mean ± std per row.

Every run gives one row of metrics (``seed_row``); rows of the same model, recipe and
checkpoint selection are then summarised over seeds (``summarize``) into ``seeds``,
``<metric>_mean`` and ``<metric>_std`` columns (sample standard deviation; ``-`` for one
seed). Both forms are written: ``table1.md``/``.csv`` (summary) and ``table1_seeds.csv``; the
markdown shows each metric as one ``mean ± std`` column (``display_frame``), the CSV keeps the
numbers. A title names the dataset and the test split the rows were scored on (``table_title``).

Table 1 is made where the teachers' test logits are, by the logits export
(``asc_kd.training.logits.export_logits``: each teacher and the ensemble), which keeps its rows
in the logits file. The pipeline writes it from there; ``tables_from_runs`` (``python -m
asc_kd.tables RUN_DIR... --out DIR``) reads the same rows from the logits files in or named by
the runs it is given, adds the teachers no export scored from their ``summary.json``, and builds
Table 2 from the students' ``summary.json`` files.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from asc_kd.core.errors import ConfigError
from asc_kd.core.io import atomic_write
from asc_kd.data.synthetic import SYNTHETIC_NOTE, is_synthetic
from asc_kd.data.teacher_logits import logits_metadata

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


def student_rows(
    report: Mapping[str, Any], system: str, selection: str, seed: Any, float_precision: str = "fp32"
) -> list[dict[str, Any]]:
    """Table 2's rows for one student run: the float model (labelled ``float_precision``, what
    it ran in: ``fp32`` or ``bf16``), then int8 when ``report`` has int8 metrics.

    ``report`` is an int8 report (``asc_kd.deployment.quantize.quantize_task``: ``fp32`` and ``int8`` metrics,
    ``params``, ``params_fused``, ``macs``, ``mem_bytes``, ``artifact_bytes``); without ``int8``
    the fp32 row alone, its MEM the fp32 parameters' bytes.
    """
    rows = []
    for precision in ("fp32", "int8"):
        if report.get(precision) is None:
            continue
        label = float_precision if precision == "fp32" else precision
        row = seed_row(report[precision], system=system, precision=label, selection=selection, seed=seed)
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


def display_frame(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """``summary`` for reading: each ``<m>_mean`` and ``<m>_std`` pair as one ``<m>`` column of
    ``mean ± std`` text where the pair was (the mean alone for one seed)."""

    def cell(mean: float, std: float) -> str:
        if pd.isna(mean):
            return "-"
        return f"{mean:.{digits}f}" if pd.isna(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"

    columns: dict[str, Any] = {}
    for column in summary.columns:
        stem = column.removesuffix("_mean")
        if column.endswith("_mean") and f"{stem}_std" in summary.columns:
            columns[stem] = [cell(m, s) for m, s in zip(summary[column], summary[f"{stem}_std"], strict=True)]
        elif not (column.endswith("_std") and f"{column.removesuffix('_std')}_mean" in summary.columns):
            columns[column] = summary[column]
    return pd.DataFrame(columns, index=summary.index)


def table_title(number: int, rows: str, test_splits: Iterable[str | None], synthetic: bool = False) -> str:
    """``Table 1: teachers on the TAU22 development-test split (...)``: what the rows are and the
    test split they were scored on, in words (``SceneDataModule.test_split``), with the note that
    the numbers are synthetic when they are. ``test_splits``: each source's (None: not recorded)."""

    named = list(dict.fromkeys(split for split in test_splits if split))
    where = (
        named[0]
        if len(named) == 1
        else f"several test splits: {'; '.join(named)}"
        if named
        else "the test split"
    )
    return f"Table {number}: {rows} on {where}" + (SYNTHETIC_NOTE if synthetic else "")


def write_table(frame: pd.DataFrame, stem: str | Path, title: str | None = None) -> tuple[Path, Path]:
    """Write ``stem.md`` (``display_frame``) and ``stem.csv`` (the numbers) atomically, as a pair:
    both or neither are replaced."""
    stem = Path(stem)
    markdown, csv = stem.with_suffix(".md"), stem.with_suffix(".csv")
    with atomic_write(markdown) as md_handle, atomic_write(csv) as csv_handle:
        if title:
            md_handle.write(f"# {title}\n\n")
        md_handle.write(to_markdown(display_frame(frame)) + "\n")
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


@dataclass
class RunRows:
    """What one run gives the tables: its rows in ``table`` (``table1`` or ``table2``), whether it
    ran on synthetic scenes, the test split it was scored on (in words; None when its summary
    predates it) and its reported checkpoint."""

    table: str
    rows: list[dict[str, Any]]
    synthetic: bool
    test_split: str | None
    checkpoint: str | None


def _run_rows(path: Path, summary: dict[str, Any]) -> RunRows:
    """The rows of the run whose ``summary.json`` is ``path``.

    A run is a student (Table 2) when it made an int8 model or distilled; any other is a teacher.
    """

    config = summary.get("config", {})
    root = config.get("data", {}).get("root")
    synthetic = bool(root) and is_synthetic(root)
    name = config.get("name") or summary["run"].rsplit("-seed", 1)[0]
    seed = config.get("seed_everything")
    selection = summary["files"].get("selection") or "-"
    checkpoint = summary["files"].get("reported_checkpoint")
    test_split = (summary.get("data") or {}).get("test_split")
    test = {k.removeprefix("test/"): v for k, v in summary["metrics"].items() if k.startswith("test/")}
    if not test:
        raise ConfigError(f"{path}: the run has no test metrics (fitted with --test false?)")
    distilled = str(config.get("model", {}).get("class_path", "")).endswith("DistillationTask")
    if summary.get("int8") or distilled:
        report = {**(summary.get("complexity") or {}), **(summary.get("int8") or {})}
        report.update(fp32=test, int8=summary.get("int8_metrics"))
        rows = student_rows(report, name, selection, seed, summary.get("precision") or "fp32")
        return RunRows("table2", rows, synthetic, test_split, checkpoint)
    precision = summary.get("precision") or run_precision(
        str(config.get("trainer", {}).get("precision", "32-true"))
    )
    row = seed_row(test, teacher=name, precision=precision, seed=seed, selection=selection)
    return RunRows("table1", [row], synthetic, test_split, checkpoint)


def table1_record(
    rows: list[dict[str, Any]], checkpoints: list[str | None], test_split: str, synthetic: bool
) -> dict[str, Any]:
    """What a logits export keeps of its Table 1 in the logits file (``table1``), for
    ``tables_from_runs``: the per-seed rows, the checkpoint each teacher row scored (None for the
    ensemble), the test split in words and whether the scenes were synthetic."""
    return {
        "rows": rows,
        "checkpoints": [str(Path(c).resolve()) if c else None for c in checkpoints],
        "test_split": test_split,
        "synthetic": synthetic,
    }


def _teacher_exports(folders: Iterable[Path], summaries: dict[Path, dict[str, Any]]) -> list[dict[str, Any]]:
    """The Table 1 records (``table1_record``) of the logits files in ``folders`` or named by a
    run's ``data.teacher_logits``, each file once, in that order."""

    files = [path for folder in folders for path in sorted(folder.rglob("*.npz"))]
    for summary in summaries.values():
        named = (summary.get("config", {}).get("data") or {}).get("teacher_logits")
        if named and Path(named).is_file():
            files.append(Path(named))
    records = []
    for path in dict.fromkeys(p.resolve() for p in files):
        record = (logits_metadata(path) or {}).get("table1")
        if record:
            records.append(record)
    return records


def run_precision(trainer_precision: str) -> str:
    """Table 1's ``precision`` of a fit from Lightning's ``trainer.precision`` (``32-true``: fp32)."""
    return "bf16" if "bf16" in trainer_precision else "fp16" if "16" in trainer_precision else "fp32"


def tables_from_runs(folders: Iterable[str | Path], out: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """Tables 1 and 2 from fits run anywhere (by hand, several seeds, the pipeline's run folders).

    Table 1 holds the rows of the logits exports in or named by the runs (each teacher and the
    ensemble, as the pipeline's Table 1), then the teachers no export scored, from their
    ``summary.json``; Table 2 the students' rows. Rows are grouped by recipe name (the run's
    ``name:``) and precision, with the pipeline's columns. Returns ``table1``/``table2`` (mean ±
    std) and their ``*_seeds`` rows, for the tables that have rows; with ``out``, also writes them
    there as the pipeline does.
    """
    folders = [Path(folder) for folder in folders]
    summaries = {path: json.loads(path.read_text()) for path in find_runs(folders)}
    rows: dict[str, list[dict[str, Any]]] = {"table1": [], "table2": []}
    splits: dict[str, list[str | None]] = {"table1": [], "table2": []}
    synthetic = {"table1": False, "table2": False}
    scored: set[str] = set()
    for record in _teacher_exports(folders, summaries):
        rows["table1"] += record["rows"]
        splits["table1"].append(record.get("test_split"))
        synthetic["table1"] |= bool(record.get("synthetic"))
        scored.update(c for c in record.get("checkpoints", []) if c)
    for path, summary in summaries.items():
        run = _run_rows(path, summary)
        if run.table == "table1" and run.checkpoint and str(Path(run.checkpoint).resolve()) in scored:
            continue  # an export scored it: its row is there
        rows[run.table] += run.rows
        splits[run.table].append(run.test_split)
        synthetic[run.table] |= run.synthetic
    tables: dict[str, pd.DataFrame] = {}
    for table, by, number, what in (
        ("table1", TABLE1_BY, 1, "teachers"),
        ("table2", TABLE2_BY, 2, "students"),
    ):
        if not rows[table]:
            continue
        frame = pd.DataFrame(rows[table])
        if "artifact_bytes" in frame:
            frame = frame.astype({"artifact_bytes": "Int64"})  # none for fp32
        if out is None:
            tables[table] = summarize(frame, by)
        else:
            title = table_title(number, what, splits[table], synthetic[table])
            tables[table], _ = write_results(frame, by, Path(out) / table, title)
        tables[f"{table}_seeds"] = frame
    return tables
