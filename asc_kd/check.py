"""``python -m asc_kd.check --data.root ROOT``: is this a complete, readable scene dataset?

    python -m asc_kd.check --data.root data/TAU-urban-acoustic-scenes-2022-mobile-development
    python -m asc_kd.check --data.root my_scenes/ --data.layout folders

Prints clips per split, device and class, and one line per problem (file, field, what was
expected); exits 1 on any problem. See ``asc_kd.data.check`` for what is checked. The data
options are the fit's (``asc_kd.data.options``): the check reads the dataset the fit with the
same options reads (layout, split file, the folders layout's test fraction and recordings).
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from asc_kd.core.command_line import command_parser, run_command
from asc_kd.data.check import check_dataset, summary
from asc_kd.data.options import add_data_arguments, build_datamodule


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("python -m asc_kd.check", __doc__.split("\n\n")[0])
    parser.add_argument("--max-problems", type=int, default=50, help="problems listed (all are counted)")
    add_data_arguments(parser, required=["root"])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    datamodule = build_datamodule(args)
    result = check_dataset(datamodule.root, datamodule.hparams.layout, **datamodule.layout_options())
    print(summary(result))
    if result.ok:
        print(
            f"\nOK ({result.layout}): {len(result.counts)} clips in the splits; all {result.n_files} listed "
            "audio files are readable, non-empty and at the expected rate, channels and length"
        )
        return 0
    kinds = pd.Series([p.field for p in result.problems]).value_counts().to_dict()
    print(f"\n{len(result.problems)} problem(s): {kinds}")
    for problem in result.problems[: args.max_problems]:
        print(f"  {problem}")
    missing = [p for p in result.problems if p.field == "exists" and "part of the" in p.message]
    if missing:
        archive = missing[0].message.split("part of the ", 1)[1]
        print(f"\nMissing files come from the {archive} (for TAU22: audio.1.zip ... audio.21.zip).")
    return 1


if __name__ == "__main__":
    sys.exit(run_command(main))
