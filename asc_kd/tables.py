"""Result tables (Table 1: teachers, Table 2: students) as markdown and CSV."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from asc_kd.io import atomic_write


def to_markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub markdown table; floats rounded, NaN shown as '-' (no tabulate dependency)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:.{digits}f}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
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
