"""``python -m asc_kd.docs``: the documentation pages, read where asc_kd is installed.

python -m asc_kd.docs            # every page's name and first heading
python -m asc_kd.docs training   # one page, as Markdown
python -m asc_kd.docs results    # where the results notebook is
"""

from __future__ import annotations

import sys

from asc_kd.core.command_line import CommandParser, cli_parser, run_command
from asc_kd.docs import PAGE_FOLDER, heading, list_pages


def build_parser() -> CommandParser:
    parser = cli_parser("python -m asc_kd.docs", __doc__.split("\n\n")[0])
    parser.add_argument(
        "topic", nargs="?", choices=list(list_pages()), help="the page to print (default: list them)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    pages = list_pages()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.topic is None:
        width = max(map(len, pages))
        print("\n".join(f"{name:<{width}}  {heading(path)}" for name, path in pages.items()))
        print(f"\n`{parser.prog} TOPIC` prints one; the pages are in {PAGE_FOLDER}")
    elif pages[args.topic].suffix == ".ipynb":
        print(
            f"{pages[args.topic]}\na Jupyter notebook: copy it, set ASC_KD_RESULTS to a pipeline's --out "
            "folder and run it in Jupyter (pip install 'asc_kd[notebook]' installs what it imports)"
        )
    else:
        print(pages[args.topic].read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
