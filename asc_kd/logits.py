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
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import torch

from asc_kd.core.command_line import command_parser, run_command
from asc_kd.core.errors import ConfigError
from asc_kd.data.options import add_data_arguments, build_datamodule, fit_defaults
from asc_kd.evaluation.tables import display_frame, to_markdown
from asc_kd.recipes import resolve_recipe
from asc_kd.tasks.restore import fit_data_options
from asc_kd.tracking.lineage import add_wandb_arguments, record_logits, stage_run
from asc_kd.training.logits import describe, export_logits


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("python -m asc_kd.logits", __doc__.split("\n\n")[0])
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
    # Batches of 64 clips for both splits, read in this process (no loader workers).
    add_data_arguments(parser, {"batch_size": 64, "eval_batch_size": 64, "num_workers": 0}, required=["root"])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.names and len(args.names) != len(args.teachers):
        raise ConfigError(f"--names gives {len(args.names)} names for {len(args.teachers)} teachers")
    # Weights files (--recipe) record no fit; checkpoints give the data options their fits read.
    fits = {} if args.recipe else {source: fit_data_options(source) for source in args.teachers}
    datamodule = build_datamodule(args, fit_defaults(args, fits))
    runs = [
        describe(source, args.names[i] if args.names else None, args.recipe and resolve_recipe(args.recipe))
        for i, source in enumerate(args.teachers)
    ]
    if args.ensemble:
        unknown = sorted(set(args.ensemble) - {r.name for r in runs})
        if unknown:
            raise ConfigError(
                f"--ensemble names {unknown} match no teacher; names are {sorted({r.name for r in runs})}"
            )
        for run in runs:
            run.in_ensemble = run.name in args.ensemble
    device = args.device
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun: one shard per rank
        cuda = torch.cuda.is_available() and device != "cpu"
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
        if cuda:
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local_rank)
            device = f"cuda:{local_rank}"
    frame = export_logits(
        runs, datamodule, args.out, args.split, args.table or None, device, precision=args.precision
    )
    if args.wandb and frame is not None:  # rank 0 (the one that wrote the files)
        with stage_run(
            "logits", "logits", Path(args.out).parent, args.wandb_project, args.wandb_group
        ) as run:
            teachers = [r.source for r in runs if r.in_ensemble]
            record_logits(run, teachers, args.out, args.table or None, frame)
    if frame is not None:
        print(to_markdown(display_frame(frame)))
        print(f"\nlogits: {args.out}\nTable 1: {args.table}.md, {args.table}.csv, {args.table}_seeds.csv")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
