"""``python -m asc_kd.export CHECKPOINT --format onnx``: a student for runtimes without PyTorch.

    python -m asc_kd.export last.ckpt --format onnx --out system1.onnx

Writes front-end + model as one ONNX graph and checks it against PyTorch with onnxruntime
(see ``asc_kd.deployment.export``).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from asc_kd.core.command_line import CommandParser, cli_parser, run_command
from asc_kd.deployment.export import OPSET, export_onnx, onnx_parity


def build_parser() -> CommandParser:
    parser = cli_parser("python -m asc_kd.export", __doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="student checkpoint (any asc_kd task)")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="export format")
    parser.add_argument("--out", default=None, help="output path (default: CHECKPOINT with .onnx)")
    parser.add_argument("--opset", type=int, default=OPSET, help="ONNX opset (17+ has STFT)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out, window, rate = export_onnx(
        args.checkpoint, args.out or Path(args.checkpoint).with_suffix(".onnx"), args.opset
    )
    print(
        f"wrote {out} (opset {args.opset}): input 'waveform' (batch, {window}) = one "
        f"{window / rate:g}-s window at {rate} Hz, output 'logits'; score longer audio window by window"
    )
    try:
        parity = onnx_parity(args.checkpoint, out)
    except ImportError:
        print("onnxruntime is not installed: parity not checked (pip install asc_kd[onnx])")
        return 0
    print(
        f"onnxruntime vs PyTorch on {parity['clips']} clips: max abs logit diff "
        f"{parity['max_abs_diff']:.2e}, top-1 agreement {parity['top1_agreement']:.0%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
