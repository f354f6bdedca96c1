"""``python -m asc_kd.package RUN_DIR... --label Lastname_INST_task1 --folder EVAL/audio --out DIR``:
a DCASE 2023 Task 1 submission package from up to four student runs.

    python -m asc_kd.package outputs/pipeline/students/system{1,2,3,4}-seed0 \\
        --label Lastname_INST_task1 --folder TAU-2023-evaluation/audio --out submission
    python -m asc_kd.package runs/system1-seed0,runs/system1-seed1 --label ... --folder ... --out ...

System n is the n-th RUN_DIR: a student's run folder (a finished fit with an int8 artifact), or
several run folders of one recipe joined by commas, the seeds its development results average
(the first one's model makes the output file). DIR gets ``task1/<label>_<n>/<label>_<n>.output.csv``
(the ``predict`` command's file) and ``.meta.yaml`` (the DCASE 2023 Task 1 meta information),
and ``DIR.zip`` the same tree. The package is ``asc_kd.runs.package``.
"""

from __future__ import annotations

import logging
import sys

from asc_kd.core.command_line import CommandParser, cli_parser, run_command
from asc_kd.runs.package import MAX_SYSTEMS, PLACEHOLDER, write_package


def build_parser() -> CommandParser:
    parser = cli_parser("python -m asc_kd.package", __doc__.split("\n\n")[0])
    parser.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_DIR",
        help=f"one per system (at most {MAX_SYSTEMS}, numbered in this order): a student's run folder, "
        "or run folders of one recipe's seeds joined by commas",
    )
    parser.add_argument(
        "--label", required=True, help="submission label without the system index: Lastname_INST_task1"
    )
    parser.add_argument(
        "--folder", required=True, help="folder of the evaluation audio (the evaluation set's audio/)"
    )
    parser.add_argument(
        "--out", required=True, help="package folder; its zip is written beside it as OUT.zip"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing OUT and OUT.zip")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    systems = [[part for part in arg.split(",") if part] for arg in args.runs]
    package = write_package(systems, args.label, args.folder, args.out, args.force)
    for name, runs in package.systems:
        seeds = ", ".join(str(run.seed) for run in runs)
        print(f"{name}: outputs of {runs[0].folder}, development results over seed(s) {seeds}")
    print(f"wrote {len(package.files)} files ({package.rows} rows per output) to {package.folder}")
    print(f"wrote {package.archive} (the DCASE 2023 Task 1 validator: python main.py -p {package.archive})")
    if package.synthetic:
        print("note: runs on SYNTHETIC scenes: their development results say nothing about TAU22")
    if package.placeholders:
        print(f"write by hand, in every meta file, the values that start with {PLACEHOLDER.strip()!r}:")
        print("\n".join(f"  {key}" for key in package.placeholders))
    print("add the technical report (PDF) to the zip's task1/ folder before submitting")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
