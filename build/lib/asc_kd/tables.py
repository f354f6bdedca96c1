"""Result tables (Table 1: teachers, Table 2: students): one row per seed, mean ± std per row.

Every run gives one row of metrics (``seed_row``); rows of the same model, recipe and
checkpoint selection are then summarised over seeds (``summarize``) into ``seeds``,
``<metric>_mean`` and ``<metric>_std`` columns (sample standard deviation; ``-`` for one
seed). Both forms are written: ``table1.md``/``.csv`` (summary) and ``table1_seeds.csv``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from asc_kd.io import atomic_write


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
