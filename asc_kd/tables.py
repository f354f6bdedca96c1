"""``python -m asc_kd.tables RUN_DIR... --out DIR``: Tables 1 and 2 from the folders of any fits.

    python -m asc_kd.tables outputs/my_sweep outputs/pipeline/students --out outputs/tables

Every fit's ``summary.json`` is one row; rows of the same model, recipe and selection are
summarised over seeds. Table 1 is the teacher-logits export's (each teacher and the ensemble, as
the pipeline writes it) when the folders hold the logits file or their students name it. The
tables themselves are ``asc_kd.evaluation.tables``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from asc_kd.core.command_line import CommandParser, cli_parser, run_command
from asc_kd.evaluation.tables import display_frame, tables_from_runs, to_markdown


def build_parser() -> CommandParser:
    parser = cli_parser(
        "python -m asc_kd.tables", "Tables 1 and 2 (mean ± std over seeds) from the folders of any fits."
    )
    parser.add_argument(
        "runs", nargs="+", help="run folders (holding summary.json) or folders of them, searched below"
    )
    parser.add_argument("--out", required=True, help="folder for table1/table2 .md, .csv and _seeds.csv")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    tables = tables_from_runs(args.runs, args.out)
    for table in ("table1", "table2"):
        if table in tables:
            print(f"{table}:\n{to_markdown(display_frame(tables[table]))}\n")
    stems = [Path(args.out) / table for table in ("table1", "table2") if table in tables]
    print("wrote " + ", ".join(f"{stem}.md, {stem}.csv, {stem}_seeds.csv" for stem in stems))
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
