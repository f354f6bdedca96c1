"""``python -m asc_kd.complexity NAME``: MACs and parameter memory of a model, the NeSsi way.

    python -m asc_kd.complexity system1                 # per-layer table, receptive field
    python -m asc_kd.complexity my_recipe.yaml --json   # params, macs, mem_bytes
    python -m asc_kd.complexity last.ckpt

The counting is ``asc_kd.deployment.complexity``.
"""

from __future__ import annotations

import argparse
import json
import sys

from asc_kd.core.command_line import command_parser, run_command
from asc_kd.deployment.complexity import (
    BYTES_PER_PARAM,
    count_complexity,
    model_for_counting,
    receptive_field,
)
from asc_kd.models import list_models


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("python -m asc_kd.complexity", "NeSsi complexity of a model.")
    parser.add_argument(
        "name",
        help=f"model name ({', '.join(list_models())}), import path (mypkg.models:TinyCNN), "
        "recipe (.yaml: its model and front-end) or checkpoint (.ckpt: its model, classes and input)",
    )
    parser.add_argument(
        "--classes", type=int, default=10, help="number of classes of a model or recipe (TAU22: 10)"
    )
    parser.add_argument(
        "--input-shape",
        type=int,
        nargs=4,
        default=None,
        metavar=("B", "C", "F", "T"),
        help="input shape (default: the model's own, 1 1 256 44 for CP-ResNet)",
    )
    parser.add_argument(
        "--precision", choices=sorted(BYTES_PER_PARAM), default="int8", help="bytes per parameter of MEM"
    )
    parser.add_argument("--json", action="store_true", help="print params, macs, mem_bytes as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        model, own_shape = model_for_counting(args.name, args.classes)
    except ValueError as err:
        if args.name.endswith((".ckpt", ".yaml", ".yml")):
            raise  # a file's problem: run_command says it in one line
        parser.error(str(err))
    shape = args.input_shape or own_shape
    result = count_complexity(model, shape, args.precision)
    rf_freq, rf_time = receptive_field(model, shape)
    if args.json:
        print(json.dumps({**result.summary(), "receptive_field": [rf_freq, rf_time]}))
    else:
        print(f"# {args.name}\n")
        print(result.table())
        print(f"receptive field: {rf_freq} frequency bins x {rf_time} frames (input {shape[2]} x {shape[3]})")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
