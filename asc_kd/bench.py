"""``python -m asc_kd.bench``: throughput figures measured in one run, printed as ratios.

    python -m asc_kd.bench data [--data.root DIR] [--json]   # wav decode+resample vs cache
    python -m asc_kd.bench train [--compile] [--cpjku DIR] [--json]   # KD step, clips/s vs CP-JKU's
    python -m asc_kd.bench train --epoch --clips N [--device cuda]   # one epoch from the memmap
    python -m asc_kd.bench train --fit [--data.root DIR]   # a KD epoch of asc_kd.fit vs the bare step
    python -m asc_kd.bench quant [--json]                # fp32 vs int8 accuracy and CPU clips/s
    python -m asc_kd.bench eval [--batch-size 256]       # eval clips/s: malloc default vs kept memory
    python -m asc_kd.bench teacher [--model passt] [--cpjku DIR]   # teacher train (recipe batch)/eval clips/s
    python -m asc_kd.bench attention                     # PaSST's bf16 attention: fused kernel vs matmuls
    python -m asc_kd.bench keys --data.root DIR          # seconds of cache keys + fingerprint
    python -m asc_kd.bench precision [--seeds 3]        # system1's accuracy fitted in fp32 vs bf16
    python -m asc_kd.bench demo                          # make demo from an empty folder, by stage
    python -m asc_kd.bench report [--out docs/performance.md] [--cpjku DIR]   # the above, as a page

Numbers depend on the machine: ``report`` writes them into that machine's section of the page,
with the versions and each row's date, and keeps the other machines' sections. The
benchmarks that read a dataset (``data``, ``train --fit``, ``quant``, ``keys``) take the fit's
``--data.*`` options (``asc_kd.data.options``); without ``--data.root`` they generate synthetic
scenes in a temporary folder.
See ``asc_kd.benchmarks`` for what each one measures, ``asc_kd.benchmarks.report`` for the page.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from asc_kd.benchmarks import (
    bench_attention,
    bench_data,
    bench_demo,
    bench_epoch,
    bench_eval,
    bench_fit_epoch,
    bench_keys,
    bench_precision,
    bench_quant,
    bench_teacher,
    bench_train,
)
from asc_kd.benchmarks.report import performance_report
from asc_kd.core.command_line import CommandParser, cli_parser, run_command, subcommand_parser
from asc_kd.data.options import GivenData, add_datamodule_arguments, given_data

#: Where CP-JKU's code is (asc_kd.benchmarks.cpjku); nothing of it ships with asc_kd.
CPJKU_HELP = "a checkout of github.com/fschmid56/cpjku_dcase23: also time CP-JKU's own code"


def _print(results: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(results))
        return
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")


def build_parser() -> CommandParser:
    parser = cli_parser("python -m asc_kd.bench", __doc__.split("\n\n")[0])
    commands = parser.add_subcommands(dest="what", required=True)

    def command(name: str, text: str) -> CommandParser:
        sub = subcommand_parser(text)
        commands.add_subcommand(name, sub, help=text)
        return sub

    def teacher_batches(sub: CommandParser, seconds: float) -> None:
        # the teacher benchmarks' two batches (defaults: asc_kd.benchmarks.teacher._batch_sizes)
        sub.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="clips per training step (default: the teacher recipe's)",
        )
        sub.add_argument(
            "--eval-batch-size",
            type=int,
            default=None,
            help="clips per eval forward (default: the logits export's eval_batch_size)",
        )
        sub.add_argument("--threads", type=int, default=2, help="torch CPU threads")
        sub.add_argument("--seconds", type=float, default=seconds, help="minimum measuring time per variant")

    data = command("data", "clips/s loading batches: wav decode + resample vs the memmap cache")
    data.add_argument("--seconds", type=float, default=5.0, help="minimum measuring time per variant")
    train = command("train", "KD training-step clips/s of system1: CP-JKU's components vs asc_kd")
    train.add_argument(
        "--batch-size", type=int, default=64, help="clips per step (--fit: unless --data.batch_size gives it)"
    )
    train.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    train.add_argument("--seconds", type=float, default=10.0, help="minimum measuring time per variant")
    train.add_argument("--compile", action="store_true", help="also measure torch.compile")
    train.add_argument("--device", default="cpu", help="cpu or cuda (bf16 autocast on cuda)")
    train.add_argument("--epoch", action="store_true", help="time one epoch from a memmap cache instead")
    train.add_argument("--clips", type=int, default=139_620, help="clips of --epoch (TAU22 train: 139,620)")
    train.add_argument(
        "--fit",
        action="store_true",
        help="time a KD epoch through asc_kd.fit (DataModule, Lightning loop, Mixup, Freq-MixStyle, "
        "logging) against the bare step and a plain loop doing the same work, instead",
    )
    train.add_argument("--num-workers", type=int, default=2, help="DataLoader workers of --epoch")
    train.add_argument("--cpjku", metavar="DIR", default=None, help=CPJKU_HELP)
    quant = command("quant", "fp32 vs int8 accuracy and CPU clips/s")
    quant.add_argument("--checkpoint", default=None, help="student checkpoint (default: train system1)")
    quant.add_argument("--epochs", type=int, default=8, help="training epochs when no checkpoint is given")
    quant.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    quant.add_argument("--seconds", type=float, default=5.0, help="minimum measuring time per variant")
    evaluation = command(
        "eval", "eval forward clips/s of a student with glibc's default malloc vs asc_kd's kept memory"
    )
    evaluation.add_argument("--model", default="system1", help="student model name")
    evaluation.add_argument("--batch-size", type=int, default=256, help="clips per batch (eval_batch_size)")
    evaluation.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    evaluation.add_argument("--seconds", type=float, default=5.0, help="measuring time per variant and round")
    evaluation.add_argument("--rounds", type=int, default=2, help="alternating runs of each variant")
    teacher = command("teacher", "a teacher's training step and eval forward: recipe baseline vs asc_kd")
    teacher.add_argument(
        "--model",
        default="passt",
        help="teacher: a shipped teacher's name (passt, ast, convnext, ...), a recipe name or a YAML path",
    )
    teacher_batches(teacher, seconds=10.0)
    teacher.add_argument("--device", default="cpu", help="cpu or cuda")
    teacher.add_argument("--cpjku", metavar="DIR", default=None, help=CPJKU_HELP)
    teacher.add_argument("--compile", action="store_true", help="compile asc_kd's network (torch.compile)")
    attention = command(
        "attention", "PaSST's attention in bf16 on the CPU: the fused kernel vs matmul, softmax, matmul"
    )
    teacher_batches(attention, seconds=5.0)
    keys = command("keys", "seconds to compute the cache keys and dataset fingerprint of a set")
    precision = command(
        "precision", "system1's synthetic-scenes accuracy over seeds, fitted in fp32 and in bf16"
    )
    precision.add_argument("--seeds", type=int, default=3, help="fits per precision")
    precision.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    demo = command("demo", "make demo from an empty folder, stage by stage")
    report = command("report", "run the benchmarks below into this machine's section of a page")
    report.add_argument("--out", default="docs/performance.md", help="markdown page to write")
    report.add_argument(
        "--only",
        nargs="+",
        default=None,
        help="benchmarks to run (default: all); the section keeps the others' rows",
    )
    report.add_argument("--seconds", type=float, default=5.0, help="minimum measuring time per variant")
    report.add_argument("--cpjku", metavar="DIR", default=None, help=CPJKU_HELP)
    for sub_parser in (data, train, quant, evaluation, teacher, attention, keys, precision, demo):
        sub_parser.add_argument("--json", action="store_true", help="print one JSON object")
    # The benchmarks that read a dataset take the fit's data options (SceneDataModule's own).
    for sub_parser in (data, quant):
        add_datamodule_arguments(sub_parser, {"num_workers": 0})  # loaders in this process
    add_datamodule_arguments(train)  # --fit: the fit's own defaults
    add_datamodule_arguments(keys, required=["root"])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parsed = parser.parse_args(argv)
    args = parsed[parsed.what]
    args.what = parsed.what
    logging.basicConfig(level=logging.WARNING)
    if parsed.what in ("data", "quant", "keys") or (parsed.what == "train" and args.fit):
        data = given_data(parser, argv, parsed.what)
        if parsed.what in ("data", "quant"):  # their loaders run in this process, unless told otherwise
            data = GivenData({"num_workers": 0, **data.values})
    if args.what == "report":
        print(performance_report(args.out, args.only, args.seconds, cpjku=args.cpjku))
        return 0
    if args.what == "data":
        results = bench_data(data, args.seconds)
    elif args.what == "teacher":
        results = bench_teacher(
            args.model,
            args.batch_size,
            args.eval_batch_size,
            args.threads,
            args.seconds,
            args.device,
            cpjku=args.cpjku,
            compile_model=args.compile,
        )
    elif args.what == "attention":
        results = bench_attention(args.batch_size, args.eval_batch_size, args.threads, args.seconds)
    elif args.what == "eval":
        results = bench_eval(args.model, args.batch_size, args.seconds, args.threads, args.rounds)
    elif args.what == "keys":
        results = bench_keys(data)
    elif args.what == "precision":
        results = bench_precision(args.seeds, args.threads)
    elif args.what == "demo":
        results = bench_demo()
    elif args.what == "quant":
        results = bench_quant(data, args.checkpoint, args.epochs, args.threads, args.seconds)
    elif args.fit:
        results = bench_fit_epoch(data, args.batch_size, args.threads)
    elif args.epoch:
        results = bench_epoch(
            args.clips, args.batch_size, args.threads, args.num_workers, args.compile, args.device
        )
    else:
        results = bench_train(
            args.batch_size, args.seconds, args.threads, args.compile, args.device, cpjku=args.cpjku
        )
    _print(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
