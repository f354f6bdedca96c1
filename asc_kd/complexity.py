"""``python -m asc_kd.complexity NAME``: MACs and parameter memory of a model, the NeSsi way.

    python -m asc_kd.complexity system1                 # per-layer table, receptive field
    python -m asc_kd.complexity my_recipe.yaml --json   # params, macs, mem_bytes
    python -m asc_kd.complexity last.ckpt
    python -m asc_kd.complexity system1-seed0.int8.pt   # or an ONNX file from asc-kd export

An int8 artifact or ONNX file gives the numbers its checkpoint gives: they were counted on the
fp32 model when the file was written, and are read from it (no per-layer table). The counting is
``asc_kd.deployment.complexity``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from asc_kd.core.command_line import CommandParser, cli_parser, run_command
from asc_kd.core.errors import ConfigError
from asc_kd.deployment.complexity import (
    BYTES_PER_PARAM,
    count_complexity,
    file_complexity,
    model_for_counting,
    receptive_field,
)
from asc_kd.models import list_models


def build_parser() -> CommandParser:
    parser = cli_parser("python -m asc_kd.complexity", "NeSsi complexity of a model.")
    parser.add_argument(
        "name",
        help=f"model name ({', '.join(list_models())}), import path (mypkg.models:TinyCNN), "
        "recipe (.yaml: its model and front-end), checkpoint (.ckpt: its model, classes and input), "
        "int8 artifact (.int8.pt) or ONNX file (.onnx) that asc_kd wrote",
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
    if args.name.endswith((".pt", ".onnx")):
        if args.input_shape is not None:
            raise ConfigError(
                f"--input-shape: {args.name} was counted on its own input when it was written; count "
                "its checkpoint (.ckpt) on another input"
            )
        result, field = file_complexity(args.name, args.precision)
    else:
        try:
            model, own_shape = model_for_counting(args.name, args.classes)
        except ValueError as err:
            if Path(args.name).is_file() or args.name.endswith((".ckpt", ".yaml", ".yml")):
                raise  # a file's problem: run_command says it in one line
            parser.error(str(err))
        shape = args.input_shape or own_shape
        result = count_complexity(model, shape, args.precision)
        field = receptive_field(model, shape)
    if args.json:
        print(json.dumps({**result.summary(), "receptive_field": list(field) if field else None}))
    else:
        print(f"# {args.name}\n")
        print(result.table())
        if field:
            bins, frames = result.input_shape[2:4]
            print(f"receptive field: {field[0]} frequency bins x {field[1]} frames (input {bins} x {frames})")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
