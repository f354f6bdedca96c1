"""``python -m asc_kd.check --data.root ROOT``: is this a complete, readable scene dataset?

    python -m asc_kd.check --data.root data/TAU-urban-acoustic-scenes-2022-mobile-development
    python -m asc_kd.check --data.root my_scenes/ --data.layout folders

Prints what it saw of the audio (sample rates, channels, lengths, extensions), clips per split,
device (for a dataset with devices) and class, then every problem in one pass: one line per
problem, naming every class or file it affects (counted, the first few by name) and the
--data.* option that fixes it, where one does; exits 1 on any problem. See ``asc_kd.data.check``
for what is checked. The data options are the fit's (``asc_kd.data.options``): the check reads
the dataset the fit with the same options reads (layout, split file, the folders layout's clip
length, test fraction and recordings), and a missing or empty root is refused in the fit's words.
"""

from __future__ import annotations

import sys
from collections import Counter

from asc_kd.core.command_line import CommandParser, cli_parser, run_command
from asc_kd.data.options import add_datamodule_arguments, build_datamodule, given_data


def build_parser() -> CommandParser:
    parser = cli_parser("python -m asc_kd.check", __doc__.split("\n\n")[0])
    parser.add_argument(
        "--max-problems",
        type=int,
        default=50,
        help="problem lines listed (all are counted; one line counts the files of one kind of problem)",
    )
    add_datamodule_arguments(parser, required=["root"])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from asc_kd.data.check import check_dataset, grouped, summary

    datamodule = build_datamodule(given_data(parser, argv))
    datamodule.ensure_root()
    result = check_dataset(datamodule.root, datamodule.hparams.layout, **datamodule.layout_options())
    print(summary(result))
    if result.ok:
        print(
            f"\nOK ({result.layout}): {len(result.counts)} clips in the splits; all {result.n_files} listed "
            "audio files are readable, non-empty and at the expected rate, channels and length"
        )
        return 0
    kinds = dict(Counter(p.field for p in result.problems).most_common())
    lines = grouped(result.problems)
    print(f"\n{len(result.problems)} problem(s): {kinds}")
    for line in lines[: args.max_problems]:
        print(f"  {line}")
    if len(lines) > args.max_problems:
        print(f"  ... {len(lines) - args.max_problems} more line(s) (--max-problems)")
    missing = [p for p in result.problems if p.field == "exists" and "part of the" in p.message]
    if missing:
        archive = missing[0].message.split("part of the ", 1)[1]
        print(f"\nMissing files come from the {archive} (for TAU22: audio.1.zip ... audio.21.zip).")
    return 1


if __name__ == "__main__":
    sys.exit(run_command(main))
