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

import contextlib
import logging
import os
import sys
from pathlib import Path

from jsonargparse import ActionYesNo

from asc_kd.core.command_line import CommandParser, cli_parser, run_command
from asc_kd.core.noise import quiet_console
from asc_kd.data.options import add_datamodule_arguments, given_data
from asc_kd.data.spec import DEMO_ROOT
from asc_kd.runs.driver import LEAVE_JOBS, detach, drive
from asc_kd.runs.pipeline import STAGES, SYSTEMS, PipelineConfig
from asc_kd.runs.resources import add_executor_arguments, executor_config
from asc_kd.tracking.lineage import add_wandb_arguments

DEMO_TEACHERS = ["demo/teachers/cnn_tiny", "demo/teachers/ast_tiny"]


def build_parser() -> CommandParser:
    """The pipeline's options. Each one that sets a ``PipelineConfig`` field (or an
    ``ExecutorConfig`` one) takes its default from that class; ``--teachers`` (the demo's),
    ``--seeds`` (both seed counts) and ``--systems`` (all four unless ``--students`` is given) are
    the command's own."""
    defaults = PipelineConfig()
    parser = cli_parser("python -m asc_kd.pipeline", __doc__.split("\n\n")[0])
    parser.epilog = "-- FIT_OPTIONS: extra asc_kd.fit options for every fit, after -- (not --data.*)"
    parser.add_argument("--out", default=defaults.out, help="folder of every run, manifest and table")
    parser.add_argument(
        "--demo",
        action=ActionYesNo(no_prefix="no-"),
        default=defaults.demo,
        help="synthetic scenes and CPU-sized recipes (--no-demo for the full recipes)",
    )
    parser.add_argument(
        "--teachers",
        nargs="+",
        default=DEMO_TEACHERS,
        help="teacher recipes (names such as teachers/passt, or YAML); a recipe listed twice runs twice",
    )
    parser.add_argument(
        "--ensemble",
        nargs="+",
        default=defaults.ensemble,
        help="teacher recipe names whose runs make up the distillation ensemble (default: all teachers)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=defaults.teacher_seeds,
        help="runs of every teacher and student recipe, seeds 0..N-1",
    )
    parser.add_argument(
        "--teacher-seeds",
        type=int | None,
        default=None,
        help="runs of every teacher recipe (default: --seeds)",
    )
    parser.add_argument(
        "--student-seeds",
        type=int | None,
        default=None,
        help="runs of every student system (default: --seeds)",
    )
    parser.add_argument(
        "--teacher-logits",
        type=str | None,
        default=defaults.teacher_logits,
        help="existing logits file when skipping the teacher stages (default: the logits stage's)",
    )
    parser.add_argument(
        "--student-config", default=defaults.student_config, help="distillation recipe (name or YAML)"
    )
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
        default=defaults.students,
        help="your own student recipes (names or YAML, composed after --student-config; rows named by "
        "their name:), beside --systems; a recipe listed twice runs twice",
    )
    parser.add_argument("--stages", nargs="+", default=defaults.stages, choices=STAGES, help="stages to run")
    parser.add_argument(
        "--max-epochs",
        type=int | None,
        default=defaults.max_epochs,
        help="override every recipe's epochs (default: the recipes')",
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
        parser,
        default=defaults.wandb,
        group_help="W&B group of every run (default: --out's name and the start time)",
    )
    add_datamodule_arguments(parser, {"root": DEMO_ROOT})  # the synthetic scenes unless --data.root
    return parser


def parse_args(argv: list[str] | None = None) -> PipelineConfig:
    """The ``PipelineConfig`` of a command line: the pipeline's options, then after ``--`` the
    options of every fit (``fit_args``), which the pipeline hands on as they were typed."""
    argv = sys.argv[1:] if argv is None else list(argv)
    own, fit_args = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = build_parser()
    args = parser.parse_args(own)
    return PipelineConfig(
        data=dict(given_data(parser, own).values),
        out=args.out,
        demo=args.demo,
        teachers=args.teachers,
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
        fit_args=fit_args,
        executor=executor_config(args),
        detach=args.detach,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
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
        return detach(config, argv) if config.detach else drive(config, print)


if __name__ == "__main__":
    sys.exit(run_command(main))
