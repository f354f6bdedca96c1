"""W&B lineage: every stage's output is an artifact of the run that made it, and every run
declares the artifacts it consumed, so a dashboard shows teacher runs -> logits -> students ->
int8 models.

Artifact types and names (names come from what the files record, so the run that consumes a
file names the artifact the producing run logged, in another process, without a server):

==================  ======================================  ====================================
type                name                                    logged by
==================  ======================================  ====================================
``model``           ``model-<recipe>-seed<seed>``           the fit (teacher or student)
``teacher-logits``  ``teacher-logits-<split>``              the logits stage / command
``int8-model``      ``int8-<recipe>-seed<seed>``            ``QuantizationExport`` or ``quantize``
``results-table``   ``table1`` / ``table2``                 the logits / tables stage
==================  ======================================  ====================================

Each version carries the alias ``sha256-<16 hex>`` of its main file's content: two runs that
log or consume the same file agree on the version. A file over ``UPLOAD_LIMIT_BYTES`` (a PaSST
checkpoint is ~1 GB) is recorded by reference (its ``file://`` path and checksum) instead of
being copied into W&B's staging folder and uploaded.

Online, a consumer calls ``use_artifact("<name>:sha256-...")`` and W&B draws the edge. Offline
(the default without a login) W&B refuses ``use_artifact``; the inputs are then recorded in the
run's config (``asc_kd_inputs``) and in each output artifact's metadata (``inputs``), and
``python -m asc_kd.relink ENTITY/PROJECT`` draws the edges after ``wandb sync``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from asc_kd.core.io import torch_load
from asc_kd.data.teacher_logits import load_logits
from asc_kd.tracking.loggers import AutoWandbLogger

log = logging.getLogger(__name__)

ARTIFACT_TYPES = ("model", "teacher-logits", "int8-model", "results-table")
#: Larger files are recorded by reference (path + checksum), not uploaded.
UPLOAD_LIMIT_BYTES = 100 * 2**20
#: Run config key holding a run's inputs (read by ``relink``).
INPUTS_KEY = "asc_kd_inputs"


@dataclass(frozen=True)
class ArtifactRef:
    """An artifact version named from a file: enough to log it, or to declare it as an input."""

    name: str
    type: str
    alias: str
    path: str

    @property
    def qualified(self) -> str:
        """``name:alias``, what ``use_artifact`` takes."""
        return f"{self.name}:{self.alias}"


@dataclass
class Output:
    """An artifact to log: its main file, extra files and metadata."""

    ref: ArtifactRef
    metadata: dict[str, Any] = field(default_factory=dict)
    extra_files: list[str] = field(default_factory=list)


def safe_name(text: str) -> str:
    """W&B artifact names take letters, digits, ``-``, ``_`` and ``.``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "unnamed"


def content_alias(path: str | Path) -> str:
    """``sha256-<first 16 hex digits>`` of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**22), b""):
            digest.update(block)
    return f"sha256-{digest.hexdigest()[:16]}"


def checkpoint_run(path: str | Path) -> str:
    """``<recipe>-seed<seed>`` recorded in an asc_kd checkpoint (the file is memory-mapped, not
    read); the file's stem when it records none."""

    try:
        loaded = torch_load(path, mmap=True)
    except (OSError, ValueError):  # a weights file (safetensors, a plain state dict)
        loaded = {}
    record = loaded.get("asc_kd", {}) if isinstance(loaded, dict) else {}
    run = record.get("run") or {}
    if run.get("recipe") is not None:
        return f"{run['recipe']}-seed{run.get('seed')}"
    return Path(path).stem


def model_ref(checkpoint: str | Path) -> ArtifactRef:
    """The ``model`` artifact of a checkpoint."""
    name = safe_name(f"model-{checkpoint_run(checkpoint)}")
    return ArtifactRef(name, "model", content_alias(checkpoint), str(Path(checkpoint).resolve()))


def int8_ref(artifact: str | Path, checkpoint: str | Path) -> ArtifactRef:
    """The ``int8-model`` artifact made from ``checkpoint``."""
    name = safe_name(f"int8-{checkpoint_run(checkpoint)}")
    return ArtifactRef(name, "int8-model", content_alias(artifact), str(Path(artifact).resolve()))


def logits_ref(path: str | Path) -> ArtifactRef:
    """The ``teacher-logits`` artifact of a logits file."""

    split = load_logits(path)[2].get("split", "train")
    return ArtifactRef(
        safe_name(f"teacher-logits-{split}"), "teacher-logits", content_alias(path), str(Path(path).resolve())
    )


def table_ref(stem: str | Path) -> ArtifactRef:
    """The ``results-table`` artifact of a table written by ``asc_kd.evaluation.tables.write_results``."""
    csv = Path(f"{stem}.csv")
    return ArtifactRef(safe_name(Path(stem).name), "results-table", content_alias(csv), str(csv.resolve()))


def is_offline(run: Any) -> bool:
    return bool(getattr(run, "offline", False)) or getattr(run.settings, "mode", "") in ("offline", "dryrun")


def declare_inputs(run: Any, inputs: Sequence[ArtifactRef]) -> list[dict[str, str]]:
    """Record ``inputs`` in the run's config and, online, as used artifacts (lineage edges)."""
    described = [asdict(ref) for ref in inputs]
    if not described:
        return described
    run.config.update({INPUTS_KEY: described}, allow_val_change=True)
    if not is_offline(run):
        for ref in inputs:
            try:
                run.use_artifact(ref.qualified, type=ref.type)
            except Exception as err:  # not logged online (yet): the config keeps the input
                log.warning(
                    "W&B: cannot use artifact %s (%s); recorded in the run config", ref.qualified, err
                )
    return described


def log_outputs(run: Any, outputs: Iterable[Output], inputs: Sequence[ArtifactRef] = ()) -> list[Any]:
    """Log each output as an artifact version of ``run``, aliased by its content, carrying the
    producing run's id and the inputs in its metadata."""
    import wandb

    described = [asdict(ref) for ref in inputs]
    logged = []
    for output in outputs:
        ref = output.ref
        metadata = {**output.metadata, "inputs": described, "run_id": run.id, "path": ref.path}
        artifact = wandb.Artifact(ref.name, type=ref.type, metadata=_plain(metadata))
        for path in [ref.path, *output.extra_files]:
            _add_file(artifact, Path(path))
        run.log_artifact(artifact, aliases=[ref.alias, "latest"])
        logged.append(artifact)
    return logged


def _add_file(artifact: Any, path: Path) -> None:
    if path.stat().st_size > UPLOAD_LIMIT_BYTES:
        artifact.add_reference(path.resolve().as_uri(), name=path.name)
    else:
        artifact.add_file(str(path), name=path.name)


def _plain(value: Any) -> Any:
    """JSON-safe metadata (W&B stores it as JSON)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def log_table(run: Any, key: str, frame: Any) -> None:
    """A pandas frame as a ``wandb.Table`` under ``key`` (NaN cells become empty)."""
    import wandb

    frame = frame.astype(object).where(frame.notna(), None)
    run.log({key: wandb.Table(columns=[str(c) for c in frame.columns], data=frame.values.tolist())})


@contextmanager
def stage_run(
    job_type: str, name: str, save_dir: str | Path, project: str = "asc_kd", group: str | None = None
) -> Iterator[Any]:
    """A W&B run for a stage outside ``asc_kd.fit`` (logits, quantize, tables), online or offline
    as ``AutoWandbLogger`` decides; finished on exit."""

    logger = AutoWandbLogger(
        project=project, save_dir=str(Path(save_dir).resolve()), name=name, group=group, job_type=job_type
    )
    run = logger.experiment
    try:
        yield run
    finally:
        run.finish()


def record_fit(
    loggers: Iterable[Any],
    summary: dict[str, Any],
    run_info: dict[str, Any],
    teacher_logits: str | Path | None = None,
    teacher_checkpoints: Sequence[str | Path] = (),
) -> None:
    """A fit's run: the teacher logits and online teachers in; the reported checkpoint and the
    int8 artifact (``summary``'s files, as ``asc_kd.fit`` writes them) out. Nothing without a
    W&B logger among ``loggers``."""

    logger = next((lg for lg in loggers if isinstance(lg, AutoWandbLogger)), None)
    if logger is None:
        return
    run = logger.experiment
    inputs = [logits_ref(teacher_logits)] if teacher_logits else []
    inputs += [model_ref(path) for path in teacher_checkpoints]
    declare_inputs(run, inputs)
    checkpoint = summary["files"]["reported_checkpoint"]
    outputs = []
    if checkpoint:
        metadata = {
            "selection": summary["files"]["selection"],
            "run": run_info,
            "metrics": summary["metrics"],
            "complexity": summary["complexity"],
        }
        outputs.append(Output(model_ref(checkpoint), metadata))
    if checkpoint and summary["files"]["int8_artifact"]:
        artifact = Path(summary["files"]["int8_artifact"])
        outputs.append(
            Output(
                int8_ref(artifact, checkpoint),
                {**summary["int8"], "metrics": summary["int8_metrics"]},
                [str(artifact.with_suffix(".json"))],
            )
        )
    log_outputs(run, outputs, inputs)


def record_logits(
    run: Any, teachers: Sequence[str], logits: str | Path, table_stem: str | Path | None, frame: Any
) -> None:
    """The logits run: teacher checkpoints in; the logits file and Table 1 out."""

    inputs = [model_ref(path) for path in teachers]
    declare_inputs(run, inputs)
    metadata = {k: v for k, v in load_logits(logits)[2].items() if k != "table1"}  # Table 1 is its own output
    outputs = [Output(logits_ref(logits), metadata)]
    if table_stem is not None and frame is not None:
        outputs.append(_table_output(table_stem))
        log_table(run, "table1", frame)
    log_outputs(run, outputs, inputs)


def record_quantize(run: Any, checkpoint: str | Path, artifact: str | Path, report: dict[str, Any]) -> None:
    """A quantize run: the student checkpoint in; the int8 artifact and its report out."""
    inputs = [model_ref(checkpoint)]
    declare_inputs(run, inputs)
    metadata = {k: v for k, v in report.items() if k not in ("fp32", "int8")}
    metadata["metrics"] = {k: v for k, v in report.get("int8", {}).items() if k != "confusion"}
    json_report = Path(artifact).with_suffix(".json")
    extra = [str(json_report)] if json_report.is_file() else []
    log_outputs(run, [Output(int8_ref(artifact, checkpoint), metadata, extra)], inputs)


def record_tables(run: Any, students: Sequence[tuple[str, str]], table_stem: str | Path, frame: Any) -> None:
    """The tables run: each student's checkpoint and int8 artifact in; Table 2 out."""
    inputs = [model_ref(checkpoint) for checkpoint, _ in students]
    inputs += [int8_ref(artifact, checkpoint) for checkpoint, artifact in students]
    declare_inputs(run, inputs)
    log_table(run, "table2", frame)
    log_outputs(run, [_table_output(table_stem)], inputs)


def _table_output(stem: str | Path) -> Output:
    extra = [str(path) for path in (Path(f"{stem}.md"), Path(f"{stem}_seeds.csv")) if path.is_file()]
    return Output(table_ref(stem), {"title": Path(f"{stem}.md").read_text().splitlines()[0]}, extra)


@dataclass(frozen=True)
class WandbTarget:
    """Where a stage outside ``asc_kd.fit`` logs its W&B run: the project and the group."""

    project: str = "asc_kd"
    group: str | None = None


def wandb_target(args: Any) -> WandbTarget | None:
    """The ``WandbTarget`` of a command's ``add_wandb_arguments`` options; None with ``--no-wandb``."""
    return WandbTarget(args.wandb_project, args.wandb_group) if args.wandb else None


def add_wandb_arguments(
    parser: Any, default: bool, group_help: str = "W&B group of the run (default: none)"
) -> None:
    """``--wandb/--no-wandb``, ``--wandb-project`` (default: ``WandbTarget``'s) and
    ``--wandb-group`` of a command."""
    from jsonargparse import ActionYesNo

    parser.add_argument(
        "--wandb",
        action=ActionYesNo(no_prefix="no-"),
        default=default,
        help="log a W&B run with the outputs as artifacts (offline without a login)",
    )
    parser.add_argument("--wandb-project", default=WandbTarget.project, help="W&B project")
    parser.add_argument("--wandb-group", default=None, help=group_help)


def results_from_wandb(
    path: str, table_files: Sequence[str], api: Any = None
) -> tuple[dict[str, dict[str, Any]], dict[str, pd.DataFrame]]:
    """The int8 reports (by run: ``system1-seed0``) and the tables (by name) that the runs of
    ``ENTITY/PROJECT[/GROUP]`` logged as ``int8-model`` and ``results-table`` artifacts, read
    through W&B's public API (a login and network; ``api`` stands in for ``wandb.Api()``)."""
    parts = path.strip("/").split("/")
    if len(parts) not in (2, 3):
        raise ValueError(f"give wandb:ENTITY/PROJECT or wandb:ENTITY/PROJECT/GROUP, got wandb:{path}")
    if api is None:
        import wandb

        api = wandb.Api()
    filters = {"group": parts[2]} if len(parts) == 3 else None
    reports: dict[str, dict[str, Any]] = {}
    tables: dict[str, pd.DataFrame] = {}
    for run in api.runs("/".join(parts[:2]), filters=filters):
        for artifact in run.logged_artifacts():
            if artifact.type == "int8-model":
                folder = Path(artifact.download())
                (report,) = folder.glob("*.int8.json")
                reports[artifact.name.split(":")[0].removeprefix("int8-")] = json.loads(report.read_text())
            elif artifact.type == "results-table":
                folder = Path(artifact.download())
                for name in table_files:
                    if (folder / f"{name}.csv").is_file():
                        tables[name] = pd.read_csv(folder / f"{name}.csv")
    if not reports and not tables:
        raise ValueError(f"no int8-model or results-table artifacts in W&B {path}")
    return reports, tables


def relink(project_path: str, group: str | None = None, api: Any = None, init: Any = None) -> int:
    """Draw the lineage edges of offline runs after ``wandb sync``: resume each run of
    ``ENTITY/PROJECT`` (of ``group``) that recorded inputs and ``use_artifact`` them. Returns the
    number of edges drawn."""
    import wandb

    api = api or wandb.Api()
    init = init or wandb.init
    entity, _, project = project_path.partition("/")
    if not project:
        raise ValueError(f"give ENTITY/PROJECT, got {project_path!r}")
    filters = {"group": group} if group else None
    edges = 0
    for remote in api.runs(project_path, filters=filters):
        inputs = remote.config.get(INPUTS_KEY) or []
        if not inputs:
            continue
        run = init(entity=entity, project=project, id=remote.id, resume="must")
        try:
            for item in inputs:
                run.use_artifact(f"{entity}/{project}/{item['name']}:{item['alias']}", type=item["type"])
                edges += 1
        finally:
            run.finish()
    return edges
