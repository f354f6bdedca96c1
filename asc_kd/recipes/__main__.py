"""``python -m asc_kd.recipes``: list, show or copy the shipped recipes.

    python -m asc_kd.recipes list              # every recipe name
    python -m asc_kd.recipes show students/kd  # its path and text
    python -m asc_kd.recipes copy my_recipes   # editable copies; pass them by path

Any command that takes a recipe takes its name (``--config students/system1``) or a path.
"""

from __future__ import annotations

import sys
from pathlib import Path

from asc_kd.core.command_line import command_parser, run_command
from asc_kd.recipes import copy_recipes, list_recipes, resolve_recipe


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("python -m asc_kd.recipes", __doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every shipped recipe's name")
    show = commands.add_parser("show", help="a recipe's path and text")
    show.add_argument("name", help="recipe name, e.g. students/system1")
    copy = commands.add_parser("copy", help="copy every recipe into DIR for editing")
    copy.add_argument("dir", help="folder to copy into (files there are never overwritten)")
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(list_recipes()))
    elif args.command == "show":
        path = resolve_recipe(args.name)
        print(f"# {path}\n{path.read_text()}", end="")
    else:
        copied = copy_recipes(args.dir)
        chain = [Path(args.dir) / f"{name}.yaml" for name in ("base", "students/kd", "students/system1")]
        example = " ".join(f"--config {path}" for path in chain)
        print(f"copied {len(copied)} files to {args.dir}; pass them by path, e.g. {example}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
