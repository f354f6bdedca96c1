"""``asc-kd status OUT`` (or ``python -m asc_kd.status OUT``): where a pipeline stands.

    asc-kd status outputs/pipeline

One row per run, read from the run records under OUT (no driver needed): kind, recipe, seed,
state, attempts, job, epoch N/M with the last validation metric, elapsed time, log. The exit
code is 0 when every run is done and no driver is still at work, 1 otherwise. See
``asc_kd.runs.status``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from asc_kd.core.command_line import CommandParser, cli_parser, run_command
from asc_kd.runs.status import status


def build_parser() -> CommandParser:
    parser = cli_parser("python -m asc_kd.status", __doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default="outputs/pipeline", help="the pipeline's --out folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    text, code = status(Path(args.out))
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(run_command(main))
