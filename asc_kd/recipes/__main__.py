"""``python -m asc_kd.recipes``: list, show or copy the shipped recipes.

    python -m asc_kd.recipes list              # every recipe name
    python -m asc_kd.recipes show students/kd  # its path and text
    python -m asc_kd.recipes copy my_recipes   # editable copies; pass them by path

Any command that takes a recipe takes its name (``--config students/system1``) or a path.
"""

from __future__ import annotations

import sys
from pathlib import Path

from asc_kd.core.command_line import CommandParser, cli_parser, run_command, subcommand_parser
from asc_kd.recipes import copy_recipes, list_recipes, resolve_recipe


def build_parser() -> CommandParser:
    parser = cli_parser("python -m asc_kd.recipes", __doc__.split("\n\n")[0])
    commands = parser.add_subcommands(dest="command", required=True)
    commands.add_subcommand(
        "list", subcommand_parser("Every shipped recipe's name."), help="every shipped recipe's name"
    )
    show = subcommand_parser("A recipe's path and text.")
    show.add_argument("name", help="recipe name, e.g. students/system1")
    commands.add_subcommand("show", show, help="a recipe's path and text")
    copy = subcommand_parser("Copy every recipe into DIR for editing.")
    copy.add_argument("dir", help="folder to copy into (files there are never overwritten)")
    commands.add_subcommand("copy", copy, help="copy every recipe into DIR for editing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        print("\n".join(list_recipes()))
    elif args.command == "show":
        path = resolve_recipe(args.show.name)
        print(f"# {path}\n{path.read_text()}", end="")
    else:
        folder = args.copy.dir
        copied = copy_recipes(folder)
        chain = [Path(folder) / f"{name}.yaml" for name in ("base", "students/kd", "students/system1")]
        example = " ".join(f"--config {path}" for path in chain)
        print(f"copied {len(copied)} files to {folder}; pass them by path, e.g. {example}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
