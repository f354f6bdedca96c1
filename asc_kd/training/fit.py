"""The training command line: ``AscKdCLI`` (LightningCLI) and ``fit``, which ``python -m
asc_kd.fit`` and the pipeline run.

Configs compose left to right and any key can be overridden on the command line. Model
classes, callbacks and loggers may be given by their short names (``DistillationTask``,
``Mixup``) or import paths (``mytask.TinyKD``). Every run gets a ``CheckpointSelection``
(``last.ckpt``, plus the best by a held-out metric when asked), a ``ComplexityCheck`` and a
learning-rate log, configured under ``checkpoint:``, ``complexity:`` and ``lr_monitor:``. The
dataset's spec (one ``DatasetSpec``: classes, devices, device groups), its rate and window length
are linked into the task, so one recipe runs on TAU22, TAU20 or your own folders. The front-end
is the task's own option (``model.init_args.frontend``, ``frontend_kwargs``).

Each run has its own folder, ``<trainer.default_root_dir>/<name>-seed<seed>`` (the recipe's
``name:``, else the model's): checkpoints, ``config.yaml``, the W&B run and ``summary.json``
go there, so ``--ckpt_path last`` finds the last checkpoint of the same recipe and seed again.
"""

from __future__ import annotations

import difflib
import inspect
import json
import logging
import operator
import re
import shutil
import sys
from functools import reduce
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import yaml
from jsonargparse import ArgumentError, Namespace
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger

from asc_kd.augmentations import FreqMixStyle, Mixup  # noqa: F401  (short names in YAML)
from asc_kd.callbacks import (  # noqa: F401
    CheckpointSelection,
    ComplexityCheck,
    LearningRateLog,
    QuantizationExport,
)
from asc_kd.core.allocator import keep_freed_memory
from asc_kd.core.command_line import choices_of, given_on_command_line, program_name, unknown_choice
from asc_kd.core.errors import ConfigError, UsageError, UserError
from asc_kd.core.imports import import_object
from asc_kd.core.io import atomic_write
from asc_kd.core.noise import silence
from asc_kd.data.datamodule import SceneDataModule
from asc_kd.data.spec import DatasetSpec, is_demo_root
from asc_kd.deployment.quantize import run_label
from asc_kd.evaluation.tables import SUMMARY
from asc_kd.recipes import expand_config_args
from asc_kd.tasks import ClassificationTask, DistillationTask  # noqa: F401
from asc_kd.tasks.restore import CheckpointError, read_checkpoint
from asc_kd.tracking.lineage import record_fit
from asc_kd.tracking.loggers import AutoWandbLogger, LogConfigCallback, finish_wandb_run, wandb_run_dir  # noqa: F401

log = logging.getLogger(__name__)


class AscKdCLI(LightningCLI):
    """LightningCLI with the callbacks every run needs, a folder per run, and the links that
    carry the dataset's spec into the task."""

    #: What the fit made and where its files went (``run_summary``), once it is done (rank 0).
    summary: dict[str, Any] | None = None

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        keep_typed_ints(parser)
        parser.add_lightning_class_args(CheckpointSelection, "checkpoint")
        parser.add_lightning_class_args(ComplexityCheck, "complexity")
        parser.add_lightning_class_args(LearningRateLog, "lr_monitor")
        # One value, two consumers: the cache resamples to the rate and cuts the windows the
        # task's front-end expects.
        for key in ("sample_rate", "segment_seconds"):
            parser.link_arguments(f"data.{key}", f"model.init_args.{key}")
        # The spec is read from the dataset on disk, so it can only be linked once the
        # DataModule exists.
        parser.link_arguments("data", "model.init_args.spec", compute_fn=_spec_of, apply_on="instantiate")
        parser.add_argument(
            "--name", type=str | None, default=None, help="run name (recipes set it; default: the model)"
        )
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="resume: 'last' (this recipe and seed's last.ckpt in its run folder) or a checkpoint file",
        )
        parser.add_argument(
            "--test", type=bool, default=True, help="test the reported checkpoint after fitting"
        )
        parser.add_argument(
            "--overwrite",
            type=bool,
            default=False,
            help="empty a run folder holding a finished run and fit anew "
            "(default: refuse; resume with --ckpt_path last)",
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse as LightningCLI does, keeping the command line to tell a user's choice from a
        recipe's; a wrong key or value is one line naming its YAML file (or the command line)
        and the closest valid key, instead of the whole usage (which ``--help`` prints). One
        about the command line is a ``UsageError`` (exit code 2, as argparse's)."""
        self.command_line = list(args) if isinstance(args, list | tuple) else sys.argv[1:]
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as err:
            message = argument_error_message(str(err), self.command_line, parser)
            error = UsageError if message.startswith("command line: ") else ConfigError
            raise error(message) from None

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer, with a ``CSVLogger`` beside the configured loggers (W&B's log is binary):
        every logged value, readable offline, in ``<run folder>/csv/version_N/metrics.csv``."""
        trainer = super().instantiate_trainer(**kwargs)
        if not any(isinstance(logger, CSVLogger) for logger in trainer.loggers):
            trainer.loggers = [*trainer.loggers, CSVLogger(trainer.default_root_dir, name="csv")]
        return trainer

    def before_instantiate_classes(self) -> None:
        """Give the run its folder and name; when resuming, continue the checkpoint's W&B run.

        A recipe's ``data.generate_synthetic`` writes scenes only into the demo root: a root the
        user typed gets them only with ``--data.generate_synthetic true`` on the command line,
        so a mistyped path is an error, not a new synthetic dataset.
        """
        config = self.config
        if (
            config.get("data.generate_synthetic")
            and not is_demo_root(config.get("data.root"))
            and not given_on_command_line(self.command_line, "--data.generate_synthetic")
        ):
            config["data.generate_synthetic"] = False
        folder = run_folder(config)
        if (folder / SUMMARY).is_file() and not config.get("ckpt_path") and not config.get("overwrite"):
            raise ConfigError(
                f"{folder} holds a finished run ({SUMMARY}): resume it with --ckpt_path last, fit it "
                "anew with --overwrite true (empties the folder), or give another --name or --seed_everything"
            )
        config["trainer.default_root_dir"] = str(folder)
        if not config.get("checkpoint.dirpath"):
            config["checkpoint.dirpath"] = str(folder / "checkpoints")
        logger = config.get("trainer.logger")
        if isinstance(logger, Namespace) and str(logger.get("class_path", "")).endswith("WandbLogger"):
            logger.init_args.name = logger.init_args.get("name") or folder.name
            if not logger.init_args.get("save_dir") or logger.init_args.save_dir == "outputs":
                logger.init_args.save_dir = str(folder)
            # W&B's service process may have started in another working directory.
            logger.init_args.save_dir = str(Path(logger.init_args.save_dir).resolve())
            run_id = _resumed_wandb_run(config)
            if run_id:
                logger.init_args.id = run_id
                logger.init_args.resume = "allow"


def keep_typed_ints(parser: LightningArgumentParser) -> None:
    """Make every option typed "int or float" read a number typed without a point as an int.

    Lightning reads ``limit_train_batches: 1`` (an int) as one batch and ``1.0`` (a float) as the
    whole epoch; the same goes for the other batch limits, ``overfit_batches`` and
    ``val_check_interval``. jsonargparse tries a union's types in their order, and Python's typing
    caches unions as equal whatever their order, so Lightning's ``Optional[Union[int, float]]``
    comes out as ``Union[float, int, None]`` once an equal union was made first (importing
    Lightning does): ``1`` would then parse as ``1.0``, a whole epoch. Each such option's type is
    rebuilt with ``|``, which typing does not cache, as int first and the rest in their order.
    """
    for action in parser._actions:
        typehint = getattr(action, "_typehint", None)
        if get_origin(typehint) not in (Union, UnionType):
            continue
        members = get_args(typehint)
        if int in members and float in members and members.index(float) < members.index(int):
            action._typehint = reduce(operator.or_, [int, *(m for m in members if m is not int)])


def run_name(config: Namespace) -> str:
    """``<recipe name or model>-seed<seed>``: the run's folder and W&B name."""
    return run_label(
        config.get("name") or str(config.get("model.init_args.model") or "run"), config.get("seed_everything")
    )


def run_folder(config: Namespace) -> Path:
    """Where a run's outputs go: ``<trainer.default_root_dir>/<run name>``, said once."""
    root = Path(config.get("trainer.default_root_dir") or "outputs")
    name = run_name(config)
    return root if root.name == name else root / name


#: Keys that configs written by earlier versions hold under ``data:`` (a run's ``config.yaml``,
#: a pipeline's ``fit_config.yaml``) and that belong to the task: an error names where they go.
TASK_KEYS = ("data.frontend", "data.frontend_kwargs")


def argument_error_message(message: str, argv: list[str], parser: LightningArgumentParser) -> str:
    """One line for a parse error: where the wrong key or value was given, and for an unknown
    key the closest valid one."""
    key, valid = _unknown_key(message, parser)
    if key is None:
        bad_value = re.search(r'Parser key "([\w.]+)".*(?:Given|Got) value: (.*)', message, re.S)
        if not bad_value:  # the parser's own words, on one line
            return " ".join(line.strip() for line in message.splitlines() if line.strip())
        key, value = bad_value.groups()
        action = parser._option_string_actions.get(f"--{key}")
        if action is not None and (choices := choices_of(action)):  # a Literal's, a bool's
            where = _where(key, argv)
            return where + unknown_choice(
                f"--{key}" if where == "command line: " else key, value.strip(), choices
            )
        types = re.findall(r"Expected a <class '(\w+)'>", message)
        expected = " or ".join(t for t in dict.fromkeys(types) if t != "NoneType") or "another value"
        return f"{_where(key, argv)}{key} = {value.strip()} is not valid (expected {expected})"
    task_key = next((k for k in TASK_KEYS if key == k or key.startswith(f"{k}.")), None)
    if task_key is not None:
        if given_on_command_line(argv, f"--{key}"):
            return f"command line: --{key} is an option of the task: give it as --model.init_args.{key[5:]}"
        where = _where(key, argv)
        return f"{where}{task_key} is an option of the task: move it to model.init_args.{task_key[5:]}"
    group, _, name = key.rpartition(".")
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    on_command_line = given_on_command_line(argv, f"--{key}")
    if close:
        hint = f"; did you mean --{group}.{close[0]}?" if on_command_line else f"; did you mean {close[0]}?"
    else:
        hint = f"; valid keys: {', '.join(sorted(valid))}"
    if on_command_line:
        return f"command line: unknown option --{key}{hint}"
    return f"{_where(key, argv)}unknown key {name!r}" + (f" under {group!r}" if group else "") + hint


def _where(key: str, argv: list[str]) -> str:
    """``command line: `` or ``<the YAML file that sets key>: `` (empty when neither says)."""
    if given_on_command_line(argv, f"--{key}"):
        return "command line: "
    sources = [path for path in _config_files(argv) if _yaml_has(path, key.split("."))]
    return f"{sources[-1]}: " if sources else ""  # the last file wins


def _unknown_key(message: str, parser: LightningArgumentParser) -> tuple[str | None, list[str]]:
    """The dotted key a jsonargparse error rejects and the valid names beside it."""
    found = re.search(r"Group '([\w.]+)' does not accept option '(\w+)[\w.]*'", message)
    if found:
        group, name = found.groups()
    elif found := re.search(r"unrecognized arguments: --([\w.]+)", message):
        group, _, name = found.group(1).rpartition(".")
    elif found := re.search(
        r'Parser key "([\w.]+)".*?class_path \'([\w.:]+)\':\s+Option \'(\w+)\' is not accepted', message, re.S
    ):
        key, class_path, name = found.groups()
        key = key if key.endswith(".init_args") else f"{key}.init_args"
        return f"{key}.{name}", _init_parameters(import_object(class_path, "class"))
    else:
        return None, []
    prefix = f"{group}." if group else ""
    valid = [a.dest[len(prefix) :] for a in parser._actions if a.dest.startswith(prefix) and a.dest != group]
    return f"{prefix}{name}", [v for v in valid if "." not in v and v != "help"]


def _init_parameters(cls: type) -> list[str]:
    """The keyword arguments ``cls`` accepts, following ``**kwargs`` up its bases."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = list(inspect.signature(klass.__init__).parameters.values())[1:]
        names += [p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return names


def _config_files(argv: list[str]) -> list[str]:
    files = [value for flag, value in zip(argv, argv[1:], strict=False) if flag == "--config"]
    return files + [arg.split("=", 1)[1] for arg in argv if arg.startswith("--config=")]


def _yaml_has(path: str, keys: list[str]) -> bool:
    try:
        node: Any = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _holds_nothing(folder: Path) -> bool:
    return not folder.is_dir() or not any(folder.iterdir())


def _empty_finished_run(folder: Path) -> None:
    """``--overwrite``: remove a finished run's files (its W&B runs too) before fitting anew."""
    if not (folder / SUMMARY).is_file():
        return
    log.warning("--overwrite: deleting the finished run in %s", folder)
    (folder / SUMMARY).unlink()  # first: an interrupted deletion leaves no finished run behind
    for path in folder.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _spec_of(datamodule: SceneDataModule) -> DatasetSpec:
    return datamodule.spec


def _resumed_wandb_run(config: Namespace) -> str | None:
    path = config.get("ckpt_path")
    if path == "last":
        path = str(Path(config.get("checkpoint.dirpath")) / "last.ckpt")
    if not path or not Path(path).is_file():
        return None

    return read_checkpoint(path, mmap=True).get("asc_kd", {}).get("wandb_run_id")


def fit(args: list[str] | None = None, description: str | None = None) -> AscKdCLI:
    """Parse ``args`` (``sys.argv`` when None), fit, test the reported checkpoint, say where
    everything went. A ``--config`` may name a shipped recipe (``students/system1``)."""
    silence()
    keep_freed_memory()
    if args is None:  # recipe names become paths where DDP's relaunch reads them too
        sys.argv[1:] = expand_config_args(sys.argv[1:])
    cli_args = None if args is None else expand_config_args(list(args))
    cli = AscKdCLI(
        ClassificationTask,
        SceneDataModule,
        subclass_mode_model=True,
        run=False,
        args=cli_args,
        seed_everything_default=0,
        save_config_callback=LogConfigCallback,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={
            "prog": program_name("python -m asc_kd.fit"),
            "description": description or __doc__.split("\n\n")[0],
            "allow_abbrev": False,
            "exit_on_error": False,  # parse_arguments says what is wrong in one line
        },
    )
    seed = cli.config.get("seed_everything")
    cli.model.run_info = {"recipe": cli.config.get("name") or str(cli.model.hparams.model), "seed": seed}
    ckpt_path = cli.config["ckpt_path"]
    if ckpt_path == "last":
        ckpt_path = str(Path(cli.config["checkpoint.dirpath"]) / "last.ckpt")
        if not Path(ckpt_path).is_file():
            log.warning("no %s to resume from: this run starts from the first epoch", ckpt_path)
            ckpt_path = None
    folder = Path(cli.trainer.default_root_dir)
    new_folder = _holds_nothing(folder)
    try:
        refuse_before_writing(cli, ckpt_path)
        if cli.config["overwrite"] and not ckpt_path and cli.trainer.is_global_zero:
            _empty_finished_run(folder)
            new_folder = _holds_nothing(folder)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path, weights_only=True)
        if cli.config["test"]:
            selected = getattr(cli.trainer.checkpoint_callback, "selected_path", None)
            cli.trainer.test(
                cli.model, datamodule=cli.datamodule, ckpt_path=selected or None, weights_only=True
            )
        if cli.trainer.is_global_zero:
            summary = run_summary(cli)
            _report(cli, summary)
            cli.summary = summary
            record_fit(
                cli.trainer.loggers,
                summary,
                run_info=cli.model.run_info,
                teacher_logits=cli.datamodule.hparams.get("teacher_logits"),
                teacher_checkpoints=cli.model.hparams.get("teacher_checkpoints") or [],
            )
    except UserError:
        stopped_before_training = new_folder and not any(folder.rglob("*.ckpt"))
        if stopped_before_training and cli.trainer.is_global_zero:  # e.g. over the limits: no folder
            finish_wandb_run()
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        finish_wandb_run()  # otherwise the next fit in this process would log into this run
    return cli


def refuse_before_writing(cli: AscKdCLI, ckpt_path: str | None) -> None:
    """Run the checks that would refuse the fit only once the trainer has written to the run
    folder: a best-epoch selection without a fair split, a model over the complexity limits, a
    resume from another model's weights or on other data.

    Lightning starts the loggers (a CSV version folder, a W&B run) before it sets up the callbacks,
    reads the checkpoint or starts the fit, where these checks live for a bare ``Trainer``; run
    here first, a refused fit leaves the folder as it was. The data module's own checks (the data
    check, teacher logits, impulse responses) run in its ``prepare_data``, before the loggers.
    """
    trainer, datamodule = cli.trainer, cli.datamodule
    datamodule.trainer = trainer  # its held-out split lives in the run folder
    for callback in trainer.callbacks:
        if isinstance(callback, CheckpointSelection):
            callback.check_selection(datamodule.validation)
        elif isinstance(callback, ComplexityCheck):
            callback.check(cli.model)
    if ckpt_path:
        checkpoint = read_checkpoint(ckpt_path, mmap=True)
        _refuse_other_weights(cli.model, checkpoint, ckpt_path)
        if isinstance(trainer.checkpoint_callback, CheckpointSelection):
            trainer.checkpoint_callback.check_resumed_data(checkpoint, ckpt_path, datamodule)


def _refuse_other_weights(task: ClassificationTask, checkpoint: dict[str, Any], ckpt_path: str) -> None:
    """Refuse a checkpoint whose weights are not this task's (names and shapes), in one line
    instead of the load's list of every missing and unexpected key."""

    own = {key: tuple(value.shape) for key, value in task.state_dict().items()}
    saved = {key: tuple(value.shape) for key, value in checkpoint["state_dict"].items()}
    if own == saved:
        return
    key = min(set(own) ^ set(saved) or {k for k in own if own[k] != saved[k]})
    if key in own and key in saved:
        found = f"{key} is {saved[key]} there, {own[key]} here"
    else:
        found = f"{key} is only {'there' if key in saved else 'here'}"
    raise CheckpointError(
        f"--ckpt_path {ckpt_path} holds the weights of another model than this model "
        f"{task.hparams.model!r} ({found}); resume with the recipe and --model.* options it was "
        "trained with"
    )


def run_summary(cli: AscKdCLI) -> dict[str, Any]:
    """What a run made, as plain data: the data it was tested on, final metrics, complexity, int8
    report, config, files."""
    trainer = cli.trainer
    callbacks = trainer.callbacks
    complexity = next((c.result for c in callbacks if isinstance(c, ComplexityCheck) and c.result), None)
    export = next((c for c in callbacks if isinstance(c, QuantizationExport) and c.report), None)
    checkpoint = trainer.checkpoint_callback
    csv = next((lg for lg in trainer.loggers if isinstance(lg, CSVLogger)), None)
    return {
        "run": Path(trainer.default_root_dir).name,
        "precision": cli.model.precision_ran,  # what the model ran in: Table 2's float row
        # The tables' titles name the dataset and split the test metrics come from.
        "data": {"dataset": cli.datamodule.spec.name, "test_split": cli.datamodule.test_split()},
        "metrics": {k: float(v) for k, v in sorted(trainer.callback_metrics.items()) if v.numel() == 1},
        "complexity": complexity.summary() if complexity else None,
        "int8": {k: v for k, v in export.report.items() if k not in ("fp32", "int8")} if export else None,
        "int8_metrics": {k: v for k, v in export.report["int8"].items() if k != "confusion"}
        if export
        else None,
        "files": {
            "run_folder": trainer.default_root_dir,
            "checkpoints": getattr(checkpoint, "dirpath", None),
            "reported_checkpoint": getattr(checkpoint, "selected_path", None),
            "selection": getattr(checkpoint, "selection_label", None),
            "int8_artifact": str(export.artifact) if export else None,
            "config": str(Path(trainer.default_root_dir) / "config.yaml"),
            "metrics_csv": csv.experiment.metrics_file_path if csv is not None else None,
            "wandb_run": wandb_run_dir(trainer.loggers),
        },
        "config": json.loads(cli.parser.dump(cli.config, skip_unset=False, format="json")),
    }


def _report(cli: AscKdCLI, summary: dict[str, Any]) -> None:
    """Write ``summary`` to ``summary.json`` (a readable record beside the binary W&B log)."""
    folder = Path(cli.trainer.default_root_dir)
    with atomic_write(folder / SUMMARY) as handle:
        json.dump(summary, handle, indent=2)
    if summary["files"]["wandb_run"]:
        with atomic_write(Path(summary["files"]["wandb_run"]) / "asc_kd_summary.json") as handle:
            json.dump(summary, handle, indent=2)


def run_files(summary: dict[str, Any]) -> str:
    """Where a fit's files went (``run_summary``'s ``files``), in lines for the console."""
    files = summary["files"]
    folder = Path(files["run_folder"])
    lines = [
        f"run {summary['run']}: {folder}",
        f"  reported checkpoint ({files['selection']}): {files['reported_checkpoint']}",
        f"  config: {files['config']}",
        f"  summary: {folder / SUMMARY}",
    ]
    if files["metrics_csv"]:
        lines.append(f"  metrics CSV: {files['metrics_csv']}")
    if files["int8_artifact"]:
        lines.insert(2, f"  int8 artifact: {files['int8_artifact']}")
    if files["wandb_run"]:
        lines.append(f"  W&B run files: {files['wandb_run']}")
    return "\n".join(lines)
