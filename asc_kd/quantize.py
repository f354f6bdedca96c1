"""``python -m asc_kd.quantize CHECKPOINT --data.root DATA``: int8 student, evaluated like fp32.

    python -m asc_kd.quantize outputs/system1-seed0/checkpoints/last.ckpt --data.root DATA

writes ``outputs/system1-seed0/checkpoints/system1-seed0.int8.pt``: an int8 artifact is named after
its run (``asc_kd.deployment.quantize.int8_name``), whichever command writes it.

Calibrates int8 post-training static quantization on a subset of the training split (or
fine-tunes with ``--qat-epochs``), writes the self-contained TorchScript artifact, evaluates
fp32 and int8 on the test split with the same per-device metrics, and writes a
JSON report beside the artifact (``*.int8.json``). The work is
``asc_kd.deployment.quantize.quantize_stage``, which the pipeline's quantize stage runs too. The
data options are the fit's (``--data.layout``, ``--data.cache_dir``, ...; see
``asc_kd.data.options``) and default to those the checkpoint's fit recorded
(``asc_kd.data.options.fit_defaults``).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from asc_kd.core.command_line import CommandParser, cli_parser, run_command
from asc_kd.data.options import add_datamodule_arguments, given_data
from asc_kd.deployment.quantize import QUANTIZE_DATA_DEFAULTS, quantize_stage
from asc_kd.tracking.lineage import add_wandb_arguments, wandb_target


def build_parser() -> CommandParser:
    parser = cli_parser("python -m asc_kd.quantize", __doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="student checkpoint (any asc_kd task)")
    parser.add_argument(
        "--out",
        default=None,
        help="artifact path (default: <run>.int8.pt beside CHECKPOINT, <run> the name of the fit that wrote "
        "it, as the fit's own QuantizationExport names it)",
    )
    parser.add_argument(
        "--calibration-batches", type=int, default=20, help="most training batches to calibrate on"
    )
    parser.add_argument(
        "--backend", choices=["x86", "fbgemm", "qnnpack"], default="x86", help="quantized engine"
    )
    parser.add_argument(
        "--qat-epochs", type=int, default=0, help="quantization-aware fine-tuning epochs (0: PTQ)"
    )
    parser.add_argument("--qat-lr", type=float, default=1e-4, help="learning rate of the QAT fine-tuning")
    add_wandb_arguments(parser, default=False)
    add_datamodule_arguments(parser, QUANTIZE_DATA_DEFAULTS, required=["root"])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = quantize_stage(
        args.checkpoint,
        given_data(parser, argv),
        args.out,
        calibration_batches=args.calibration_batches,
        backend=args.backend,
        qat_epochs=args.qat_epochs,
        qat_lr=args.qat_lr,
        wandb=wandb_target(args),
    )
    for precision in ("fp32", "int8"):
        metrics = report[precision]
        groups = "  ".join(f"{g} {metrics[f'acc_{g}']:.4f}" for g in report["device_groups"])
        print(f"{precision}: acc {metrics['acc']:.4f}  log loss {metrics['log_loss']:.4f}  {groups}".rstrip())
    print(
        f"MEM {report['mem_bytes']:,} bytes (parameters x 1 byte; the artifact's weights take "
        f"{report['artifact_bytes']:,}); MACs {report['macs']:,}; "
        f"calibrated on {report['calibration_batches']} batches"
    )
    print(f"artifact: {report['artifact']}\nreport: {Path(report['artifact']).with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
