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
import shutil
from collections.abc import Iterator
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
from asc_kd.core.command_line import (
    choices_of,
    expected_type,
    given_on_command_line,
    program_name,
    unknown_choice,
)
from asc_kd.core.errors import ConfigError, UsageError, UserError
from asc_kd.core.imports import import_object, is_import_path
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
        and the closest valid key (``config_problem``), instead of the whole usage (which
        ``--help`` prints). One about the command line is a ``UsageError`` (exit code 2)."""
        self.command_line = list(args)
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as err:
            raise refusal(err, parser, self.command_line) from None

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
#: The keys under a class given by ``class_path``, beside its ``init_args``' parameters.
_SUBCLASS_KEYS = ("class_path", "init_args", "dict_kwargs")


def refusal(
    err: ArgumentError, parser: LightningArgumentParser, argv: list[str], base: Namespace | None = None
) -> ConfigError:
    """The error that ends a fit whose ``argv`` jsonargparse refused: ``config_problem``'s line
    (jsonargparse's message on one line where it finds none); a ``UsageError`` for one on the
    command line."""
    message = config_problem(parser, argv, base) or " ".join(str(err).split())
    return (UsageError if message.startswith("command line: ") else ConfigError)(message)


def config_problem(
    parser: LightningArgumentParser, argv: list[str], base: Namespace | None = None
) -> str | None:
    """The one line for the first wrong key or value of the fit's ``argv``: where it was given
    (``command line: `` or its YAML file) and, for an unknown key, the closest valid one.

    Called when jsonargparse refused ``argv``; the line is found again from the sources in the
    order jsonargparse reads them (each ``--config``, the options typed between them) and the
    parser's own options, not from the words of jsonargparse's message. ``base`` holds class
    paths given before ``argv`` (a pipeline's recipes). None when no source holds a wrong key
    or value (jsonargparse's own message then says what is wrong).
    """
    classes: dict[str, str] = {}  # class_path given so far, by key (model, trainer.logger, ...)
    for where, items in _sources(argv):
        for key, value in items:
            problem = _key_problem(parser, key, value, where, classes, base)
            if problem is not None:
                return problem
    return None


def _sources(argv: list[str]) -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    """``argv``'s sources in order: each ``--config`` (its file, or inline YAML) with its
    flattened keys, and each run of typed options with theirs (values as typed)."""
    typed: list[tuple[str, Any]] = []
    i = 0
    while i < len(argv):
        name, equals, value = argv[i].partition("=")
        if not name.startswith("--"):
            i += 1
            continue
        if not equals:
            following = argv[i + 1] if i + 1 < len(argv) else None
            value = following if following is not None and not following.startswith("--") else ""
            i += 1 if following is None or following.startswith("--") else 2
        else:
            i += 1
        if name == "--config":
            if typed:
                yield "command line: ", typed
                typed = []
            path = Path(value)
            try:
                loaded = yaml.safe_load(path.read_text() if path.is_file() else value)
            except (OSError, yaml.YAMLError):
                continue
            if isinstance(loaded, dict):
                yield f"{value}: ", list(_flattened(loaded))
        elif name not in ("--print_config", "--help"):
            typed.append((name.removeprefix("--"), value))
    if typed:
        yield "command line: ", typed


def _flattened(mapping: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``{"trainer": {"max_epochs": 1}}`` as ``("trainer.max_epochs", 1)``; a class's
    ``{"class_path": ..., "init_args": {...}}`` as its ``class_path`` key, then its arguments."""
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _flattened(value, f"{dotted}.")
        else:
            yield dotted, value


def _key_problem(
    parser: LightningArgumentParser,
    key: str,
    value: Any,
    where: str,
    classes: dict[str, str],
    base: Namespace | None,
) -> str | None:
    """What is wrong with ``key`` set to ``value`` in ``where`` (None when nothing is)."""
    typed = where == "command line: "
    shown = f"--{key}" if typed else key
    task_key = next((k for k in TASK_KEYS if key == k or key.startswith(f"{k}.")), None)
    if task_key is not None:
        if typed:
            return f"{where}--{key} is an option of the task: give it as --model.init_args.{key[5:]}"
        return f"{where}{task_key} is an option of the task: move it to model.init_args.{task_key[5:]}"
    options = parser._option_string_actions
    action = options.get(f"--{key}")
    if action is not None:
        if key.endswith(".class_path") or (_takes_a_class(action) and isinstance(value, str)):
            classes[key.removesuffix(".class_path")] = str(value)
            return None
        choices = choices_of(action)
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if choices and value is not None and text not in choices:
            return where + unknown_choice(shown, text, choices)
        expected = expected_type(action, value, typed)
        return f"{where}{key} = {value} is not valid (expected {expected})" if expected else None
    parts = key.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # the longest part of the key the parser knows
        owner, rest = ".".join(parts[:cut]), parts[cut:]
        if rest[0] in _SUBCLASS_KEYS and f"--{owner}" in options:
            if rest[0] != "init_args" or len(rest) < 2:
                if rest == ["class_path"]:
                    classes[owner] = str(value)
                return None
            class_path = classes.get(owner) or (base.get(f"{owner}.class_path") if base is not None else None)
            cls = _class_named(str(class_path), options[f"--{owner}"]) if class_path else None
            parameters = _init_parameters(cls) if cls is not None else [rest[1]]
            if rest[1] in parameters:
                return None
            return _unknown(where, f"{owner}.init_args", rest[1], parameters, typed)
        names = {o[len(owner) + 3 :].split(".")[0] for o in options if o.startswith(f"--{owner}.")}
        if names:  # a group of options (trainer, data)
            return (
                None if rest[0] in names else _unknown(where, owner, rest[0], sorted(names - {"help"}), typed)
            )
        if f"--{owner}" in options:  # the keys of a value (a dict) are not the parser's
            return None
    names = {o[2:].split(".")[0] for o in options if o.startswith("--")}
    return None if parts[0] in names else _unknown(where, "", parts[0], sorted(names - {"help"}), typed)


def _unknown(where: str, group: str, name: str, valid: list[str], typed: bool) -> str:
    """``command line: unknown option --data.batchsize; did you mean --data.batch_size?``, or in
    a file ``unknown key 'max_epoch' under 'trainer'; did you mean max_epochs?``."""
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    prefix = f"{group}." if group else ""
    if close:
        hint = f"; did you mean --{prefix}{close[0]}?" if typed else f"; did you mean {close[0]}?"
    else:
        hint = f"; valid keys: {', '.join(valid)}"
    if typed:
        return f"{where}unknown option --{prefix}{name}{hint}"
    return f"{where}unknown key {name!r}" + (f" under {group!r}" if group else "") + hint


def _takes_a_class(action: Any) -> bool:
    """Whether an option's value is a class and its arguments (``model``, ``trainer.logger``)."""
    typehint = getattr(action, "_typehint", None)
    members = get_args(typehint) if get_origin(typehint) in (Union, UnionType) else (typehint,)
    return any(isinstance(m, type) and m.__module__ not in ("builtins", "pathlib") for m in members)


def _class_named(name: str, action: Any) -> type | None:
    """The class a ``class_path`` names: an import path, or a short name among the subclasses of
    the option's type (as jsonargparse resolves it)."""
    if is_import_path(name):
        try:
            return import_object(name, "class")
        except UserError:
            return None
    typehint = getattr(action, "_typehint", None)
    bases = [t for t in (get_args(typehint) or (typehint,)) if isinstance(t, type)]
    found: list[type] = []
    while bases:
        cls = bases.pop()
        if cls.__name__ == name:
            return cls
        found.append(cls)
        bases += [sub for sub in cls.__subclasses__() if sub not in found]
    return None


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


def fit(args: list[str], description: str | None = None) -> AscKdCLI:
    """Parse ``args``, fit, test the reported checkpoint, say where everything went. A
    ``--config`` may name a shipped recipe (``students/system1``).

    The arguments are handed over, never put into ``sys.argv``: a DDP relaunch (Lightning's
    ``python -m <__main__> sys.argv[1:]``) runs the command that was typed, which hands them over
    again, and a fit inside another command (the pipeline's) reads only its own."""
    silence()
    keep_freed_memory()
    cli = AscKdCLI(
        ClassificationTask,
        SceneDataModule,
        subclass_mode_model=True,
        run=False,
        args=expand_config_args(list(args)),
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
