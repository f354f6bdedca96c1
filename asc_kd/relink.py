"""``python -m asc_kd.relink ENTITY/PROJECT [--group G]``: draw the W&B lineage of offline runs
after ``wandb sync``.

W&B offline runs log their artifacts but cannot declare the artifacts they used; asc_kd records
those inputs in each run's config (``asc_kd_inputs``). This resumes every synced run that has
inputs and declares them, so the lineage graph shows teacher runs -> logits -> students -> int8
models as it does for runs made online. Needs a W&B login and network.
"""

from __future__ import annotations

import sys

from asc_kd.core.command_line import CommandParser, cli_parser, run_command
from asc_kd.tracking.lineage import relink


def build_parser() -> CommandParser:
    parser = cli_parser("python -m asc_kd.relink", __doc__.split("\n\n")[0])
    parser.add_argument("project", help="W&B ENTITY/PROJECT the offline runs were synced to")
    parser.add_argument("--group", default=None, help="only the runs of this group (default: all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    edges = relink(args.project, args.group)
    print(f"declared {edges} input artifact(s) of runs in {args.project}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
