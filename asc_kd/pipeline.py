"""``python -m asc_kd.pipeline``: the report's whole system in one command (``make demo``).

    python -m asc_kd.pipeline                       # synthetic scenes, tiny teachers, CPU
    python -m asc_kd.pipeline --seeds 3             # every teacher and student run 3 times
    python -m asc_kd.pipeline --executor slurm --gpus-per-run 1 --time-per-run 720 student=240
    python -m asc_kd.pipeline --data.root DATA --no-demo \\
        --teachers teachers/passt teachers/ast ... \\
        --teacher-seeds 4 --ensemble passt
    python -m asc_kd.pipeline --data.root my_scenes --data.layout folders --data.validation holdout

    python -m asc_kd.pipeline --executor slurm --detach   # submit, return; the driver is a job
    python -m asc_kd.pipeline --status --out outputs/pipeline   # or: asc-kd status outputs/pipeline
    python -m asc_kd.pipeline --cancel --out outputs/pipeline

Stages: teachers, logits (+ Table 1), students, quantize, tables (Table 2). Every run has a
record with its resolved configuration; a rerun reuses what is done under the same
configuration, resumes what stopped, adopts what still runs, and refuses a changed configuration
(``--force`` redoes the chosen stages). See ``asc_kd.runs.pipeline``. Every
(recipe, seed) run keeps its config, checkpoints and W&B run under ``--out``. With the default
synthetic scenes every accuracy is synthetic. The data options are the fit's (``--data.root``,
``--data.layout``, ``--data.cache_dir``, ...; see ``asc_kd.data.options``): every fit and the
logits and quantize stages read the data they give. Options after ``--`` go to every fit; data
options belong before it (one given after ``--`` is refused).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

from asc_kd.core.command_line import command_parser, run_command
from asc_kd.core.noise import quiet_console
from asc_kd.data.options import add_data_arguments, given_data_values
from asc_kd.data.spec import DEMO_ROOT
from asc_kd.runs.driver import LEAVE_JOBS, detach, drive
from asc_kd.runs.pipeline import STAGES, SYSTEMS, PipelineConfig
from asc_kd.runs.resources import add_executor_arguments, executor_config
from asc_kd.tracking.lineage import add_wandb_arguments

DEMO_TEACHERS = ["demo/teachers/cnn_tiny", "demo/teachers/ast_tiny"]


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("python -m asc_kd.pipeline", __doc__.split("\n\n")[0])
    parser.add_argument("--out", default="outputs/pipeline", help="folder of every run, manifest and table")
    parser.add_argument(
        "--demo",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="synthetic scenes and CPU-sized recipes (--no-demo for the full recipes)",
    )
    parser.add_argument(
        "--teachers",
        nargs="+",
        default=None,
        help="teacher recipes (names such as teachers/passt, or YAML); a recipe listed twice runs twice "
        "(default: the demo's two small teachers)",
    )
    parser.add_argument(
        "--ensemble",
        nargs="+",
        default=None,
        help="teacher recipe names whose runs make up the distillation ensemble (default: all teachers)",
    )
    parser.add_argument(
        "--seeds", type=int, default=1, help="runs of every teacher and student recipe, seeds 0..N-1"
    )
    parser.add_argument(
        "--teacher-seeds", type=int, default=None, help="runs of every teacher recipe (default: --seeds)"
    )
    parser.add_argument(
        "--student-seeds", type=int, default=None, help="runs of every student system (default: --seeds)"
    )
    parser.add_argument(
        "--teacher-logits",
        default=None,
        help="existing logits file when skipping the teacher stages (default: the logits stage's)",
    )
    parser.add_argument("--student-config", default="students/kd", help="distillation recipe (name or YAML)")
    parser.add_argument(
        "--systems",
        nargs="+",
        default=None,
        choices=SYSTEMS,
        help="packaged student systems (default: all four, unless --students is given)",
    )
    parser.add_argument(
        "--students",
        nargs="+",
        default=[],
        help="your own student recipes (names or YAML, composed after --student-config; rows named by "
        "their name:), beside --systems; a recipe listed twice runs twice",
    )
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES, help="stages to run")
    parser.add_argument(
        "--max-epochs", type=int, default=None, help="override every recipe's epochs (default: the recipes')"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="redo the chosen stages even when their runs are done, or made under another configuration",
    )
    parser.add_argument(
        "--detach",
        action="store_true",
        help="start the driver away from this terminal (slurm: as a job) and return; "
        "--status follows it, the records hold its state",
    )
    parser.add_argument(
        "--status",
        action="store_true",
        help="print one row per run of --out and exit (0 when all are done and no driver works)",
    )
    parser.add_argument(
        "--cancel", action="store_true", help="stop the driver and every running job of --out, and exit"
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print only the stage, decision and per-job lines and errors (no progress bars, W&B, tables)",
    )
    add_executor_arguments(parser)
    add_wandb_arguments(
        parser, default=True, group_help="W&B group of every run (default: --out's name and the start time)"
    )
    add_data_arguments(parser, {"root": DEMO_ROOT})  # the synthetic scenes unless --data.root
    parser.add_argument(
        "fit_args", nargs=argparse.REMAINDER, help="extra `asc_kd.fit` options after -- (not --data.*)"
    )
    return parser


def parse_args(argv: list[str] | None = None) -> PipelineConfig:
    args = build_parser().parse_args(argv)
    return PipelineConfig(
        data=given_data_values(args),
        out=args.out,
        demo=args.demo,
        teachers=args.teachers if args.teachers is not None else DEMO_TEACHERS,
        ensemble=args.ensemble,
        teacher_seeds=args.teacher_seeds or args.seeds,
        student_seeds=args.student_seeds or args.seeds,
        teacher_logits=args.teacher_logits,
        student_config=args.student_config,
        systems=args.systems if args.systems is not None else ([] if args.students else list(SYSTEMS)),
        students=args.students,
        stages=args.stages,
        max_epochs=args.max_epochs,
        force=args.force,
        quiet=args.quiet,
        wandb=args.wandb,
        wandb_project=args.wandb_project,
        wandb_group=args.wandb_group,
        fit_args=[a for a in args.fit_args if a != "--"],
        executor=executor_config(args),
        detach=args.detach,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.status or args.cancel:
        from asc_kd.runs.status import cancel, status

        if args.status:
            text, code = status(Path(args.out))
            print(text)
            return code
        print("\n".join(cancel(Path(args.out))))
        return 0
    config = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with (
        quiet_console(
            "asc_kd.runs.pipeline", "asc_kd.runs.executors", "asc_kd.runs.driver", "asc_kd.runs.resources"
        )
        if config.quiet
        else contextlib.nullcontext()
    ):
        if os.environ.get(LEAVE_JOBS) == "1":  # a detached driver (asc_kd.runs.driver.detach)
            config.executor.leave_jobs = True
        return (
            detach(config, sys.argv[1:] if argv is None else argv) if config.detach else drive(config, print)
        )


if __name__ == "__main__":
    sys.exit(run_command(main))
