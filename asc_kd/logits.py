"""``python -m asc_kd.logits``: ensemble teacher logits for distillation, and Table 1.

    python -m asc_kd.logits T1.ckpt T2.ckpt ... --data.root DATA
    python -m asc_kd.logits passt_253.pt passt_254.pt passt_255.pt passt_256.pt \\
        --recipe teachers/passt --data.root DATA                     # published weights files
    python -m asc_kd.logits passt*.ckpt ast.ckpt --ensemble passt --data.root DATA

Runs the ensemble's teachers over the training split (no augmentation), averages their
logits and writes them keyed by clip with their provenance (teachers, classes, split, dataset
fingerprint and content hash): ``SceneDataModule(teacher_logits=...)`` refuses a file made for
other clips.
Then scores every teacher and the ensemble on the test split and writes Table 1
(mean ± std over seeds of each teacher) and the per-seed rows. The data options are the fit's
(``--data.layout``, ``--data.train_split_file``, ``--data.cache_dir``, ...; see
``asc_kd.data.options``), so the logits cover the clips the students' fit reads; they default to
those the teachers' fits recorded, which must agree (``asc_kd.data.options.fit_defaults``).
Under torchrun each process exports its shard. The work is ``asc_kd.training.logits.logits_stage``,
which the pipeline's logits stage runs too.
"""

from __future__ import annotations

import logging
import sys

from asc_kd.core.command_line import CommandParser, cli_parser, run_command
from asc_kd.core.errors import ConfigError
from asc_kd.data.options import add_datamodule_arguments, given_data
from asc_kd.evaluation.tables import display_frame, to_markdown
from asc_kd.recipes import resolve_recipe
from asc_kd.tracking.lineage import add_wandb_arguments, wandb_target
from asc_kd.training.logits import LOGITS_DATA_DEFAULTS, describe, logits_stage


def build_parser() -> CommandParser:
    parser = cli_parser("python -m asc_kd.logits", __doc__.split("\n\n")[0])
    parser.add_argument(
        "teachers", nargs="+", help="teacher checkpoints (.ckpt), or weights files with --recipe"
    )
    parser.add_argument(
        "--recipe",
        default=None,
        help="teacher recipe (a name such as teachers/passt, or YAML) that builds the model of weights files",
    )
    parser.add_argument("--names", nargs="+", default=None, help="Table 1 row names, one per teacher")
    parser.add_argument(
        "--ensemble",
        nargs="+",
        default=None,
        help="names of the teachers whose logits are averaged (default: all)",
    )
    parser.add_argument(
        "--split", choices=["train", "test"], default="train", help="split whose logits are saved"
    )
    parser.add_argument("--out", default="outputs/teachers/ensemble_train.npz", help="logits file to write")
    parser.add_argument("--table", default="outputs/teachers/table1", help="Table 1 stem ('' to skip)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="fp32",
        help="fp32 (the same logits on every host), bf16 autocast, or auto: bf16 where the device "
        "does it fast (GPU, AVX512-BF16/AMX CPU; $ASC_KD_FAST_BF16=0|1 overrides the detection)",
    )
    add_wandb_arguments(parser, default=False)
    add_datamodule_arguments(parser, LOGITS_DATA_DEFAULTS, required=["root"])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.names and len(args.names) != len(args.teachers):
        raise ConfigError(f"--names gives {len(args.names)} names for {len(args.teachers)} teachers")
    recipe = args.recipe and resolve_recipe(args.recipe)
    runs = [
        describe(source, args.names[i] if args.names else None, recipe)
        for i, source in enumerate(args.teachers)
    ]
    frame = logits_stage(
        runs,
        given_data(parser, argv),
        args.out,
        ensemble=args.ensemble,
        split=args.split,
        table=args.table or None,
        device=args.device,
        precision=args.precision,
        wandb=wandb_target(args),
    )
    if frame is not None:
        print(to_markdown(display_frame(frame)))
        print(f"\nlogits: {args.out}\nTable 1: {args.table}.md, {args.table}.csv, {args.table}_seeds.csv")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
