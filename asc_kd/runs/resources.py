"""What each run of the pipeline asks for (time, GPUs, CPUs, memory, SLURM partition, account,
quality of service, setup lines, other sbatch options), read from the command line and checked
before anything is submitted.

sbatch misreads or refuses some values only when a job is submitted: a negative time limit
became a limit of millions of days, a partition or option it does not know ended in submitit's
traceback, and a bad value for the students only after the teachers' stage had run.
``check_resources`` (the pipeline calls it when it is built, before any stage) refuses each such
value in one line, asking the cluster's own tools where they answer; ``sbatch_refusals`` turns
what sbatch still refuses at submission into one line.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import io
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from submitit.core.utils import FailedJobError
from submitit.slurm.slurm import _make_sbatch_string

from asc_kd.core.errors import ConfigError

log = logging.getLogger(__name__)

EXECUTORS = ("inline", "local", "slurm")
#: Resource kinds: teacher fits and the logits export; student fits and their int8 copies.
KINDS = ("teacher", "student")
#: A run's time limit when none is given (minutes): submitit's own default is 5.
DEFAULT_TIME_MIN = 24 * 60
#: The least of each number a run may ask for.
MINIMUM = {"time_min": 1, "gpus": 0, "cpus": 1, "tasks": 1}
#: SLURM's memory sizes (sbatch --mem): megabytes, or a whole number with a unit K, M, G or T
#: (sbatch also takes a B after the unit).
MEMORY = re.compile(r"(\d+)(?:([KMGT])B?)?", re.IGNORECASE)
#: Seconds before a job's time limit at which submitit has SLURM send it USR2, its cue to
#: checkpoint and requeue (submitit's default, which the pipeline keeps).
SIGNAL_DELAY_S: int = inspect.signature(_make_sbatch_string).parameters["signal_delay_s"].default
#: SLURM may send that signal up to 60 s earlier than asked (sbatch(1), --signal).
SIGNAL_EARLY_S = 60
#: Seconds a SLURM tool may take to answer a check before the check is skipped.
TOOL_TIMEOUT_S = 10
#: The names a run may choose that the cluster lists: (option, what they are, the tool that
#: lists them, whether SLURM ignores their case, as it does for accounts and QoS).
CLUSTER_NAMES = {
    "partition": ("--slurm-partition", "partitions", ("sinfo", "--all", "--noheader", "--format=%R"), False),
    "account": (
        "--slurm-account",
        "accounts",
        ("sacctmgr", "--noheader", "--parsable2", "show", "account", "format=account"),
        True,
    ),
    "qos": (
        "--slurm-qos",
        "QoS",
        ("sacctmgr", "--noheader", "--parsable2", "show", "qos", "format=name"),
        True,
    ),
}


@dataclass
class Resources:
    """What one run asks for; ``None`` leaves the choice to the cluster (or the recipe)."""

    time_min: int = DEFAULT_TIME_MIN
    gpus: int = 0
    cpus: int | None = None
    mem: str | None = None
    tasks: int | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    setup: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)

    def slurm_parameters(self) -> dict[str, Any]:
        """The ``submitit.SlurmExecutor`` parameters of these resources."""
        values = {
            "time": self.time_min,
            "gpus_per_node": self.gpus or None,
            "ntasks_per_node": self.tasks or max(1, self.gpus),
            "cpus_per_task": self.cpus,
            "mem": self.mem,
            "partition": self.partition,
            "account": self.account,
            "qos": self.qos,
            "setup": list(self.setup),
            "additional_parameters": dict(self.params),
        }
        return {key: value for key, value in values.items() if value not in (None, [], {})}


@dataclass
class ExecutorConfig:
    """How and where the pipeline runs its fits; ``python -m asc_kd.pipeline --help`` documents each."""

    executor: str = "inline"
    max_parallel: int | None = None
    resources: dict[str, Resources] = field(default_factory=lambda: {kind: Resources() for kind in KINDS})
    poll_s: float = 2.0
    #: On SIGTERM/SIGINT, leave the running jobs for a later driver (a detached driver) instead of
    #: cancelling them.
    leave_jobs: bool = False

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ConfigError(f"--executor {self.executor!r} is not one of {', '.join(EXECUTORS)}")
        if self.max_parallel is not None and self.max_parallel < 1:
            raise ConfigError(f"--max-parallel {self.max_parallel} must be at least 1")


# -- checks before submission --------------------------------------------------------------------
def check_resources(config: ExecutorConfig) -> None:
    """Refuse, before anything is submitted or written, a resource value that sbatch would
    misread or refuse, naming the option as typed and what is right; warn of a time limit that
    leaves a SLURM run no time to checkpoint.

    Numbers and memory sizes are checked for every executor; partitions, accounts, QoS and
    ``--slurm-param`` options only for ``slurm``, by asking ``sinfo``, ``sacctmgr`` and ``sbatch``.
    A tool that is missing or does not answer (``sacctmgr`` without job accounting) skips its
    check, with a debug line: sbatch still refuses at submission what it does not take.
    """
    resources = config.resources
    for kind, wanted in resources.items():
        for option, name, _, _ in RESOURCE_OPTIONS:
            value = getattr(wanted, name)
            if name in MINIMUM and value is not None and value < MINIMUM[name]:
                typed = _typed(resources, kind, option, name)
                raise ConfigError(f"{typed}: must be {_unit(name)}, at least {MINIMUM[name]}")
        if wanted.mem is not None and not MEMORY.fullmatch(wanted.mem):
            raise ConfigError(
                f"{_typed(resources, kind, '--mem-per-run', 'mem')}: not a SLURM memory size; give "
                "megabytes or a whole number with a unit K, M, G or T, e.g. 500M, 32G, 1T or 4096"
            )
    if config.executor != "slurm":
        return
    _tool_output.cache_clear()  # the cluster's answers of now
    _listed.cache_clear()
    for kind, wanted in resources.items():
        for name, (option, what, command, fold) in CLUSTER_NAMES.items():
            value = getattr(wanted, name)
            if value is None:
                continue
            known = _listed(command)
            for part in value.split(","):
                if known is not None and _folded(part, fold) not in {_folded(k, fold) for k in known}:
                    raise ConfigError(
                        f"{_typed(resources, kind, option, name)}: {part!r} is not one of this "
                        f"cluster's {what}; {_closest(part, known, command[0])}"
                    )
        _check_memory_fits(resources, kind)
        for param, setting in wanted.params.items():
            _check_sbatch_option(resources, kind, param, setting)
    _warn_of_short_limits(resources)


def _megabytes(mem: str) -> int:
    """A SLURM memory size in megabytes, as sbatch reads it (a K size rounded up)."""
    number, unit = MEMORY.fullmatch(mem).groups()  # type: ignore[union-attr]  # checked before
    return -(-int(number) * 1024 ** "KMGT".index((unit or "M").upper()) // 1024)


def _check_memory_fits(resources: dict[str, Resources], kind: str) -> None:
    """sbatch takes a job that asks more memory than any node of its partition has, and SLURM
    fails it at once (BadConstraints): refuse it here, naming the largest node's memory."""
    wanted = resources[kind]
    if wanted.mem is None or _megabytes(wanted.mem) == 0:  # 0: all of a node's memory
        return
    scope = [f"--partition={wanted.partition}"] if wanted.partition else ["--all"]  # sinfo takes one
    nodes = _listed(("sinfo", "--noheader", "--format=%m", *scope))
    sizes = [int(match.group()) for match in map(re.compile(r"\d+").match, nodes or ()) if match]
    if sizes and _megabytes(wanted.mem) > max(sizes):
        where = f"partition {wanted.partition}" if wanted.partition else "this cluster"
        raise ConfigError(
            f"{_typed(resources, kind, '--mem-per-run', 'mem')}: no node of {where} has that much "
            f"memory; the largest has {max(sizes)}M (sinfo)"
        )


def _unit(name: str) -> str:
    return {
        "time_min": "a time limit in whole minutes",
        "gpus": "a number of GPUs",
        "cpus": "a number of CPUs",
        "tasks": "a number of tasks",
    }[name]


def _typed(resources: dict[str, Resources], kind: str, option: str, name: str) -> str:
    """An option as typed: ``--mem-per-run 32G`` when every kind has its value, else
    ``--mem-per-run teacher=32G``."""
    value = getattr(resources[kind], name)
    same = all(getattr(other, name) == value for other in resources.values())
    return f"{option} {value}" if same else f"{option} {kind}={value}"


def _folded(name: str, fold: bool) -> str:
    return name.lower() if fold else name


def _closest(value: str, known: frozenset[str], tool: str) -> str:
    """The known names nearest ``value`` (else the first few), for a refusal's advice."""
    same = [name for name in sorted(known) if name.lower() == value.lower()]
    close = same or difflib.get_close_matches(value, sorted(known), n=3)
    if close:
        return f"did you mean {', '.join(close)}? ({tool} lists {len(known)})"
    shown = sorted(known)[:8]
    return f"{tool} lists {', '.join(shown)}{', ...' if len(known) > len(shown) else ''}"


@functools.cache
def _tool_output(command: tuple[str, ...]) -> tuple[int, str, str] | None:
    """A SLURM tool's exit code, stdout and stderr; None (logged) where it is missing or too
    slow, so that the check it serves is skipped rather than failed. Kept for one
    ``check_resources`` (both kinds ask the same), which clears it first."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as error:
        log.debug("%s did not answer (%s): its resource check is skipped", command[0], error)
        return None
    return done.returncode, done.stdout, done.stderr


@functools.cache
def _listed(command: tuple[str, ...]) -> frozenset[str] | None:
    """The names a tool lists, one a line; None (logged once) where it fails or lists none."""
    answer = _tool_output(command)
    if answer is None:
        return None
    code, stdout, stderr = answer
    names = {line.strip() for line in stdout.splitlines() if line.strip()}
    if code != 0 or not names:
        said = (stderr or stdout).strip().replace("\n", " ")
        log.debug("%s did not answer (exit %d: %s): its resource check is skipped", command[0], code, said)
        return None
    return frozenset(names)


def sbatch_error(text: str) -> str:
    """The line of sbatch's stderr that says why: its first ``error:`` line, without prefixes."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = next((line for line in lines if "error:" in line), lines[0] if lines else "no reason given")
    for prefix in ("sbatch:", "error:", "Batch job submission failed:"):
        line = line.removeprefix(prefix).strip()
    return line


def _sbatch_options() -> set[str]:
    """The long options sbatch lists in its help and usage (for the closest spelling of an
    unknown one; sbatch takes some that neither lists, so it is asked about each itself)."""
    names: set[str] = set()
    for flag in ("--help", "--usage"):
        answer = _tool_output(("sbatch", flag))
        if answer is not None:
            names.update(re.findall(r"--([a-z][a-z0-9-]*)", answer[1]))
    return names


def _check_sbatch_option(resources: dict[str, Resources], kind: str, param: str, setting: str) -> None:
    """Ask sbatch whether it takes ``--NAME=VALUE`` as submitit writes it into the job's
    script: ``--help`` after it ends sbatch once its options are read, so nothing is submitted."""
    flag = param.replace("_", "-")
    same = all(other.params.get(param) == setting for other in resources.values())
    typed = f"--slurm-param {'' if same else kind + '='}{param}={setting}"
    answer = _tool_output(("sbatch", f"--{flag}={setting}", "--help"))
    if answer is None or answer[0] == 0:
        return
    said = sbatch_error(answer[2] or answer[1])
    if "unrecognized option" not in said:
        raise ConfigError(f"{typed}: sbatch refuses it: {said}")
    close = difflib.get_close_matches(flag, sorted(_sbatch_options()), n=3)
    advice = f"; did you mean {', '.join(close)}?" if close else "; sbatch --help lists its options"
    if "=" in setting:
        advice += f" (a KIND= before it is one of {', '.join(KINDS)})"
    raise ConfigError(f"{typed}: sbatch has no option --{flag}{advice}")


def _warn_of_short_limits(resources: dict[str, Resources]) -> None:
    """A run is asked to checkpoint ``SIGNAL_DELAY_S`` (up to ``SIGNAL_EARLY_S`` more) before
    its time limit; with a limit no longer than that, the signal comes as the run starts, so it
    is stopped and requeued before it can write a checkpoint, until submitit gives up."""
    warned = set()
    for kind, wanted in resources.items():
        typed = _typed(resources, kind, "--time-per-run", "time_min")
        if wanted.time_min * 60 <= SIGNAL_DELAY_S + SIGNAL_EARLY_S and typed not in warned:
            warned.add(typed)
            log.warning(
                "%s: SLURM signals a run %d-%d s before its time limit to checkpoint it, so this "
                "run will be stopped before it can checkpoint; give more than %d minutes",
                typed,
                SIGNAL_DELAY_S,
                SIGNAL_DELAY_S + SIGNAL_EARLY_S,
                (SIGNAL_DELAY_S + SIGNAL_EARLY_S) // 60,
            )


@contextlib.contextmanager
def sbatch_refusals(label: str, kind: str, resources: Resources) -> Iterator[None]:
    """Around a submission: sbatch refusing the job (e.g. a partition this user may not use) ends it
    with one line, sbatch's reason and the run's resource options, instead of submitit's
    traceback and sbatch's stderr, which submitit prints as well (held back here)."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            yield
    except FailedJobError as error:
        log.debug("sbatch refused %s:\n%s", label, printed.getvalue())
        options = " ".join(_resource_options(resources)) or "the cluster's defaults"
        raise ConfigError(
            f"sbatch refused the job of {label}: {sbatch_error(str(error))} (its {kind} resources: {options})"
        ) from error
    except BaseException:
        sys.stderr.write(printed.getvalue())
        raise
    sys.stderr.write(printed.getvalue())


def _resource_options(resources: Resources) -> list[str]:
    """The resource options that give ``resources`` (those not left at their default)."""
    default = Resources()
    options = [
        f"{option} {getattr(resources, name)}"
        for option, name, _, _ in RESOURCE_OPTIONS
        if getattr(resources, name) != getattr(default, name)
    ]
    return options + [f"--slurm-param {name}={value}" for name, value in resources.params.items()]


# -- command-line options -----------------------------------------------------------------------
#: Resource options: (option, Resources field, type, help). Each takes VALUE (every kind) and/or
#: KIND=VALUE (teacher: teacher fits and the logits export; student: student fits and int8).
RESOURCE_OPTIONS = (
    ("--time-per-run", "time_min", int, f"time limit of a run in minutes (default {DEFAULT_TIME_MIN})"),
    ("--gpus-per-run", "gpus", int, "GPUs of a run (local: its own CUDA_VISIBLE_DEVICES; default 0)"),
    ("--cpus-per-run", "cpus", int, "CPUs of a run (slurm --cpus-per-task; default: the cluster's)"),
    ("--mem-per-run", "mem", str, "memory of a run, e.g. 32G (slurm --mem; default: the cluster's)"),
    ("--tasks-per-run", "tasks", int, "tasks of a run, one per device (default: --gpus-per-run or 1)"),
    ("--slurm-partition", "partition", str, "SLURM partition (default: the cluster's default)"),
    ("--slurm-account", "account", str, "SLURM account (default: the user's default)"),
    ("--slurm-qos", "qos", str, "SLURM quality of service (default: the account's default)"),
)


def add_executor_arguments(parser: Any) -> None:
    """The ``--executor`` option and the resource options of each run, per kind (the defaults
    of ``executor`` and ``max_parallel`` are ``ExecutorConfig``'s)."""
    defaults = ExecutorConfig()
    parser.add_argument(
        "--executor",
        default=defaults.executor,
        choices=EXECUTORS,
        help="where runs execute: this process (inline), local processes, or SLURM jobs (submitit)",
    )
    parser.add_argument(
        "--max-parallel",
        type=int | None,
        default=defaults.max_parallel,
        help="runs at once (default: local 1, or one per GPU set; slurm: every run of a stage)",
    )
    for option, _, _, text in RESOURCE_OPTIONS:
        parser.add_argument(option, nargs="+", default=[], metavar="[KIND=]VALUE", help=text)
    parser.add_argument(
        "--slurm-setup",
        nargs="+",
        default=[],
        metavar="[KIND=]LINE",
        help="shell lines run before each job, e.g. 'module load cuda' (default: none)",
    )
    parser.add_argument(
        "--slurm-param",
        nargs="+",
        default=[],
        metavar="[KIND=]NAME=VALUE",
        help="extra #SBATCH parameters, e.g. constraint=a100, student=mail_type=END (default: none)",
    )


def _split_kind(value: str, option: str, strict: bool = True) -> tuple[list[str], str]:
    """``student=4`` -> (["student"], "4"); ``4`` -> (every kind, "4")."""
    kind, sep, rest = value.partition("=")
    if sep and kind in KINDS:
        return [kind], rest
    if sep and strict:
        raise ConfigError(
            f"{option} {value!r}: {kind!r} is not a kind; write VALUE or KIND=VALUE, KIND one of {KINDS}"
        )
    return list(KINDS), value


def executor_config(args: Any) -> ExecutorConfig:
    """The ``ExecutorConfig`` of parsed ``add_executor_arguments`` options."""
    resources = {kind: Resources() for kind in KINDS}
    for option, name, convert, _ in RESOURCE_OPTIONS:
        for value in getattr(args, option.lstrip("-").replace("-", "_")):
            kinds, text = _split_kind(value, option)
            try:
                converted = convert(text)
            except ValueError:
                raise ConfigError(f"{option} {value!r}: {text!r} is not a whole number") from None
            for kind in kinds:
                setattr(resources[kind], name, converted)
    for value in args.slurm_setup:
        kinds, line = _split_kind(value, "--slurm-setup", strict=False)
        for kind in kinds:
            resources[kind].setup.append(line)
    for value in args.slurm_param:
        kinds, pair = _split_kind(value, "--slurm-param", strict=False)
        name, sep, setting = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--slurm-param {value!r}: write NAME=VALUE, e.g. constraint=a100")
        for kind in kinds:
            resources[kind].params[name.replace("-", "_")] = setting
    return ExecutorConfig(args.executor, args.max_parallel, resources)
