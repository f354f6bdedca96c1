"""DCASE 2023 Task 1 submission packages: the system outputs and meta files of up to four student
runs, and their zip, laid out as the organisers' validator reads a package.

System ``n`` of the label ``Lastname_INST_task1`` is one student run (a finished fit with an
int8 artifact), or several runs of one recipe with other seeds: the first run's int8 model
makes the output file, and the development results are the mean over all of them. The package
folder ``DIR`` holds::

    task1/Lastname_INST_task1_1/Lastname_INST_task1_1.output.csv
    task1/Lastname_INST_task1_1/Lastname_INST_task1_1.meta.yaml
    ...

and ``DIR.zip`` holds the same ``task1/`` tree (the DCASE 2023 Task 1 validator takes the
system label from each file's folder). Nothing here re-implements a number: the output file is
``asc_kd.deployment.predict``'s (``asc-kd predict``), the complexity is
``asc_kd.deployment.complexity``'s on the checkpoint the artifact was quantized from (``asc-kd
complexity``), and the development results are the int8 metrics the runs' ``summary.json``
files recorded on the development-test split. What the runs cannot know (authors, e-mail,
institute, the system's name, energy use, the source code's address) is written as a text that
starts with ``TODO:`` and listed by ``placeholders``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import statistics
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from asc_kd.augmentations import InputAugmentation, Mixup
from asc_kd.core.errors import ConfigError
from asc_kd.core.imports import ImportPathError, import_object
from asc_kd.core.io import check_writable, remove_stale_partials
from asc_kd.data.synthetic import is_synthetic
from asc_kd.data.teacher_logits import load_logits
from asc_kd.deployment.complexity import count_complexity, model_for_counting
from asc_kd.deployment.predict import Scorer, folder_files, load_scorer, predict_files, write_submission
from asc_kd.evaluation.tables import SUMMARY
from asc_kd.tasks.restore import read_checkpoint

#: The blocks and fields a DCASE 2023 Task 1 meta file must have: those the organisers'
#: submission validator checks (https://github.com/toni-heittola/dcase2023_task1_submission_validator,
#: main.py), for the template of the task's submission section
#: (https://dcase.community/challenge2023/task-low-complexity-acoustic-scene-classification#submission).
#: A list gives the fields of each of its items; ``"*"`` stands for every class or device.
DCASE2023_TASK1_META_KEYS: dict[str, Any] = {
    "submission": {
        "label": None,
        "name": None,
        "abbreviation": None,
        "authors": [{"lastname": None, "firstname": None, "email": None, "affiliation": None}],
    },
    "system": {
        "description": dict.fromkeys(
            (
                "input_sampling_rate",
                "acoustic_features",
                "embeddings",
                "data_augmentation",
                "machine_learning_method",
                "ensemble_method_subsystem_count",
                "decision_making",
                "external_data_usage",
                "complexity_management",
                "pipeline",
                "framework",
            )
        ),
        "complexity": dict.fromkeys(
            ("total_model_size", "total_parameters", "total_parameters_non_zero", "memory_use", "macs")
        ),
        "energy_consumption": dict.fromkeys(("training", "inference", "baseline_inference")),
        "external_datasets": [dict.fromkeys(("name", "url", "total_audio_length"))],
        "source_code": None,
    },
    "results": {
        "development_dataset": {
            "overall": dict.fromkeys(("accuracy", "logloss")),
            "class_wise": {"*": dict.fromkeys(("accuracy", "logloss"))},
            "device_wise": {"*": dict.fromkeys(("accuracy", "logloss"))},
        }
    },
}
#: A submission label without its system index: the corresponding author's last name, the
#: institute's abbreviation and the task, joined by ``_`` (the validator splits the label there).
SUBMISSION_LABEL = re.compile(r"(?P<lastname>[^\W_]+(?:-[^\W_]+)*)_(?P<institute>[^\W_]+)_task1")
#: Systems one submission may hold.
MAX_SYSTEMS = 4
#: The start of a meta value the runs cannot know, to be written by hand.
PLACEHOLDER = "TODO: "
#: The augmentation callbacks' names in DCASE reports.
_AUGMENTATION_NAMES = {"Mixup": "mixup", "FreqMixStyle": "Freq-MixStyle"}
#: The front-end's settings that describe the features (the others are training augmentations).
_FEATURE_SETTINGS = (
    "n_mels",
    "n_fft",
    "win_length",
    "hop_length",
    "fmin",
    "fmax",
    "preemphasis",
    "mel_scale",
)


@dataclass(frozen=True)
class StudentRun:
    """A finished student fit: its folder, ``summary.json``, int8 artifact and the checkpoint the
    artifact was quantized from."""

    folder: Path
    summary: dict[str, Any]
    artifact: Path
    checkpoint: Path

    @property
    def config(self) -> dict[str, Any]:
        return self.summary.get("config") or {}

    @property
    def recipe(self) -> str:
        return self.config.get("name") or str(self.summary["run"]).rsplit("-seed", 1)[0]

    @property
    def model(self) -> str:
        return str(((self.config.get("model") or {}).get("init_args") or {}).get("model"))

    @property
    def distilled(self) -> bool:
        return str((self.config.get("model") or {}).get("class_path", "")).endswith("DistillationTask")

    @property
    def seed(self) -> Any:
        return self.config.get("seed_everything")

    @property
    def int8_metrics(self) -> dict[str, float]:
        """The int8 model's metrics on the development-test split; per file where clips were
        scored in several windows (the submission's rule)."""
        metrics = self.summary["int8_metrics"]
        prefix = "file/" if "file/acc" in metrics else ""
        return {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)}


@dataclass
class SubmissionPackage:
    """What ``write_package`` wrote: the folder, its zip, each system's files and the meta values
    left to write by hand (dotted keys, one ``*`` for every class or device)."""

    folder: Path
    archive: Path
    systems: list[tuple[str, list[StudentRun]]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    rows: int = 0
    placeholders: list[str] = field(default_factory=list)
    synthetic: bool = False


def check_label(label: str) -> dict[str, str]:
    """The last name and institute of a label like ``Lastname_INST_task1``, or a ``ConfigError``."""
    match = SUBMISSION_LABEL.fullmatch(label)
    if match is None:
        index = " (without the system index: systems are numbered 1..N)" if re.search(r"_\d$", label) else ""
        raise ConfigError(
            f"--label {label!r}: a DCASE Task 1 label is Lastname_INST_task1{index}, the corresponding "
            "author's last name and the institute's abbreviation (letters and digits) and task1, joined by _"
        )
    return match.groupdict()


def _in_run(folder: Path, recorded: str | None, run_folder: str | None) -> Path | None:
    """A file a run recorded, looked up in ``folder`` when the run's folder was recorded under
    another name (moved, copied, or relative to another working directory)."""
    if not recorded:
        return None
    path = Path(recorded)
    if not path.is_file() and run_folder:
        try:
            return folder / path.relative_to(run_folder)
        except ValueError:
            pass
    return path


def read_run(folder: str | Path) -> StudentRun:
    """The student run in ``folder``, refused unless it finished with an int8 artifact and its
    checkpoint."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(2, "No such directory", str(folder))
    if not (folder / SUMMARY).is_file():
        if (folder / "pipeline.json").is_file():
            raise ConfigError(
                f"{folder} is a pipeline's folder: give its student run folders "
                f"({folder / 'students'}/<system>-seed<n>)"
            )
        raise ConfigError(f"{folder}: no {SUMMARY}; give the folder of a finished student fit")
    summary = json.loads((folder / SUMMARY).read_text())
    files = summary.get("files") or {}
    artifact = _in_run(folder, files.get("int8_artifact"), files.get("run_folder"))
    if artifact is None or not summary.get("int8_metrics"):
        raise ConfigError(
            f"{folder}: the run made no int8 artifact ({SUMMARY} has no files.int8_artifact); fit it "
            "with the QuantizationExport callback, as the students/systemN recipes do"
        )
    if not artifact.is_file():
        raise FileNotFoundError(f"{folder}: its int8 artifact {artifact} is missing")
    source = (summary.get("int8") or {}).get("source_checkpoint") or files.get("reported_checkpoint")
    checkpoint = _in_run(folder, source, files.get("run_folder"))
    if checkpoint is None or not checkpoint.is_file():
        raise FileNotFoundError(
            f"{folder}: the checkpoint its int8 artifact was made from ({source}) is missing; "
            "the complexity is counted on it"
        )
    return StudentRun(folder, summary, artifact, checkpoint)


def read_systems(systems: Sequence[Sequence[str | Path]]) -> list[list[StudentRun]]:
    """Each system's runs, refused when there are more systems than DCASE takes, a run is given
    twice, or a system's runs are not seeds of one recipe."""
    if not 1 <= len(systems) <= MAX_SYSTEMS:
        raise ConfigError(f"{len(systems)} systems given; a DCASE submission holds 1 to {MAX_SYSTEMS}")
    runs = [[read_run(folder) for folder in system] for system in systems]
    seen: dict[Path, int] = {}
    for n, system in enumerate(runs, 1):
        first = system[0]
        for run in system:
            key = run.folder.resolve()
            if key in seen:
                raise ConfigError(f"{run.folder} is given twice (systems {seen[key]} and {n})")
            seen[key] = n
            if (run.recipe, run.model) != (first.recipe, first.model):
                raise ConfigError(
                    f"system {n}: {run.folder} is {run.recipe} ({run.model}), {first.folder} is "
                    f"{first.recipe} ({first.model}); the runs of one system are seeds of one recipe"
                )
        seeds = [run.seed for run in system]
        if len(set(map(str, seeds))) != len(seeds):
            raise ConfigError(f"system {n}: seeds {seeds} repeat; its runs must be different seeds")
    return runs


# -- the meta file ---------------------------------------------------------------------------------
def _todo(what: str) -> str:
    return PLACEHOLDER + what


def _mean(runs: list[StudentRun], key: str) -> float | None:
    """The mean over ``runs`` of an int8 metric; None where a run lacks it or it is NaN (a device
    without clips)."""
    values = [run.int8_metrics.get(key) for run in runs]
    if any(v is None or math.isnan(v) for v in values):
        return None
    return statistics.fmean(values)


def _percent(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _results(runs: list[StudentRun]) -> dict[str, Any]:
    """The development results of one system: accuracy (%) and log loss, overall, per class and
    per device, each the mean over the system's seeds."""
    first = runs[0].int8_metrics

    def per(kind: str) -> dict[str, Any]:
        names = [key.removeprefix(f"acc_{kind}_") for key in first if key.startswith(f"acc_{kind}_")]
        return {
            name: {
                "accuracy": _percent(_mean(runs, f"acc_{kind}_{name}")),
                "logloss": _rounded(_mean(runs, f"log_loss_{kind}_{name}")),
            }
            for name in names
        }

    log_loss = _mean(runs, "log_loss")
    return {
        "development_dataset": {
            "overall": {
                "accuracy": _percent(_mean(runs, "acc")),
                "logloss": _rounded(log_loss),
            },
            "class_wise": per("class"),
            "device_wise": per("device"),
        }
    }


def _callback_class(path: Any) -> type | None:
    if not path:
        return None
    path = str(path) if "." in str(path) or ":" in str(path) else f"asc_kd.augmentations.{path}"
    try:
        found = import_object(path, "callback")
    except ImportPathError:
        return None
    return found if isinstance(found, type) else None


def _augmentations(config: dict[str, Any], frontend: dict[str, Any]) -> list[str]:
    """The training augmentations of a resolved fit config and its front-end, with their settings."""

    found = []
    for callback in (config.get("trainer") or {}).get("callbacks") or []:
        cls = _callback_class(callback.get("class_path")) if isinstance(callback, dict) else None
        if cls is None or not issubclass(cls, (Mixup, InputAugmentation)):
            continue
        settings = ", ".join(f"{k}={v}" for k, v in (callback.get("init_args") or {}).items())
        name = _AUGMENTATION_NAMES.get(cls.__name__, cls.__name__)
        found.append(f"{name} ({settings})" if settings else name)
    data = config.get("data") or {}
    if data.get("roll_seconds"):
        found.append(f"time rolling (up to {data['roll_seconds']} s)")
    if data.get("dir_folder"):
        found.append(f"device impulse responses (p={data.get('dir_p')})")
    if frontend.get("freqm"):
        found.append(f"frequency masking (up to {frontend['freqm']} mel bins)")
    if frontend.get("timem"):
        found.append(f"time masking (up to {frontend['timem']} frames)")
    jitter = [
        f"{edge} range {frontend[key]} Hz"
        for edge, key in (("fmin", "fmin_aug_range"), ("fmax", "fmax_aug_range"))
        if (frontend.get(key) or 1) > 1
    ]
    if jitter:
        found.append(f"mel filterbank jitter ({', '.join(jitter)})")
    return found


def _teachers(config: dict[str, Any]) -> str:
    """The teachers a distilled student learned from: the ensemble its logits file records, or
    the online teachers' checkpoints."""
    online = ((config.get("model") or {}).get("init_args") or {}).get("teacher_checkpoints") or []
    if online:
        return "online teachers " + ", ".join(Path(str(c)).name for c in online)
    logits = (config.get("data") or {}).get("teacher_logits")
    if not logits or not Path(logits).is_file():
        return f"the ensemble logits {logits} (file not found: its teachers are unknown)"

    _, _, metadata = load_logits(logits)
    names = [f"{t.get('name')} (seed {t.get('seed')})" for t in metadata.get("teachers") or []]
    return "an ensemble of " + ", ".join(names) if names else f"the ensemble logits {logits}"


def _description(run: StudentRun, frontend: dict[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    config = run.config
    init_args = (config.get("model") or {}).get("init_args") or {}
    distilled = run.distilled
    rate = frontend.get("sample_rate")
    settings = ", ".join(f"{k}={frontend[k]}" for k in _FEATURE_SETTINGS if frontend.get(k) is not None)
    kind = "log-mel energies" if "n_mels" in frontend else str(frontend.get("name"))
    convolutional = any(isinstance(m, torch.nn.Conv1d | torch.nn.Conv2d) for m in model.modules())
    method = f"{'CNN' if convolutional else type(model).__name__} ({run.model})"
    teachers = _teachers(config) if distilled else ""
    if distilled:
        method += (
            f", knowledge distillation from {teachers} (temperature {init_args.get('temperature')}, "
            f"label weight {init_args.get('label_weight')})"
        )
    qat = (run.summary.get("int8") or {}).get("qat_epochs") or 0
    quantization = "int8 quantization-aware training" if qat else "int8 post-training static quantization"
    return {
        "input_sampling_rate": f"{rate / 1000:g}kHz" if rate else None,
        "acoustic_features": f"{kind} ({settings})" if settings else kind,
        "embeddings": None,
        "data_augmentation": ", ".join(_augmentations(config, frontend)) or None,
        "machine_learning_method": method,
        "ensemble_method_subsystem_count": None,
        "decision_making": None,
        "external_data_usage": _todo(f"the external data behind {teachers} (e.g. pre-trained model)")
        if distilled
        else None,
        "complexity_management": quantization,
        "pipeline": f"{'knowledge distillation' if distilled else 'training'}, {quantization}",
        "framework": "pytorch",
    }


def system_meta(label: str, runs: list[StudentRun]) -> dict[str, Any]:
    """The meta information of one system, in the template's order (``DCASE2023_TASK1_META_KEYS``).

    The complexity is that of the checkpoint the submitted int8 artifact was quantized from,
    counted as ``asc-kd complexity CHECKPOINT`` counts it (int8 parameters, batch 1).
    """
    first = runs[0]
    names = check_label(label.rsplit("_", 1)[0])
    classes = len((first.summary.get("int8") or {}).get("classes") or []) or 10
    model, shape = model_for_counting(str(first.checkpoint), classes)
    counted = count_complexity(model, shape, "int8")
    frontend = (read_checkpoint(first.checkpoint, mmap=True).get("asc_kd") or {}).get("frontend") or {}
    return {
        "submission": {
            "label": label,
            "name": _todo(f"the system's name in the results tables (recipe {first.recipe})"),
            "abbreviation": _todo("at most 10 characters"),
            "authors": [
                {
                    "lastname": names["lastname"],
                    "firstname": _todo("first name"),
                    "email": _todo("e-mail address"),
                    "corresponding": True,
                    "affiliation": {
                        "abbreviation": names["institute"],
                        "institute": _todo("institute"),
                        "department": _todo("department"),
                        "location": _todo("city, country"),
                    },
                }
            ],
        },
        "system": {
            "description": _description(first, frontend, model),
            "complexity": {
                "total_model_size": counted.mem_bytes,
                "total_parameters": counted.params,
                "total_parameters_non_zero": sum(int(p.count_nonzero()) for p in model.parameters()),
                "memory_use": round(counted.mem_bytes / 1024, 2),
                "macs": counted.macs,
            },
            "energy_consumption": {
                key: _todo("kWh, measured as the task page describes")
                for key in ("training", "inference", "baseline_inference")
            },
            "external_datasets": [
                {
                    "name": _todo("a dataset the teachers were trained on"),
                    "url": _todo("its address"),
                    "total_audio_length": _todo("hours"),
                }
            ]
            if first.distilled
            else None,
            "source_code": _todo("the address of the system's source code"),
        },
        "results": _results(runs),
    }


def _on_synthetic(run: StudentRun) -> bool:
    root = (run.config.get("data") or {}).get("root")
    return bool(root) and is_synthetic(root)


def meta_text(meta: dict[str, Any], runs: list[StudentRun]) -> str:
    """The meta file: a header saying where each number comes from, then the blocks as YAML."""
    seeds = ", ".join(str(run.seed) for run in runs)
    header = [
        "# DCASE 2023 Task 1 system meta information, written by `asc-kd package`.",
        f"# Write every value that starts with {PLACEHOLDER.strip()!r} before submitting.",
        f"# Outputs: the int8 model of {runs[0].folder} (seed {runs[0].seed}).",
        "# complexity: counted as `asc-kd complexity CHECKPOINT` on the checkpoint it was quantized from",
        "#   (NeSsi, batch 1); total_model_size in bytes and memory_use in KB of int8 parameters.",
        f"# results: int8 on the development-test split, mean over seed(s) {seeds}; accuracy in percent.",
    ]
    if any(_on_synthetic(run) for run in runs):
        header.append("# SYNTHETIC scenes: these results say nothing about TAU22.")
    blocks = [
        yaml.safe_dump({key: block}, sort_keys=False, allow_unicode=True, width=100)
        for key, block in meta.items()
    ]
    return "\n".join(header) + "\n\n" + "\n".join(blocks)


def placeholders(meta: Any, prefix: str = "") -> list[str]:
    """The dotted keys of the values still to be written by hand (``PLACEHOLDER``), one ``*`` for
    every class or device."""
    if isinstance(meta, dict):
        found = [p for k, v in meta.items() for p in placeholders(v, f"{prefix}.{k}" if prefix else str(k))]
    elif isinstance(meta, list):
        found = [p for i, v in enumerate(meta) for p in placeholders(v, f"{prefix}[{i}]")]
    else:
        found = [prefix] if isinstance(meta, str) and meta.startswith(PLACEHOLDER) else []
    return list(dict.fromkeys(re.sub(r"\b(class_wise|device_wise)\.[^.]+\.", r"\1.*.", p) for p in found))


# -- the package -----------------------------------------------------------------------------------
def _check_out(out: Path, archive: Path, force: bool) -> None:
    if out.name in ("", ".", ".."):
        raise ConfigError(f"--out {out}: name the package's folder (e.g. --out submission)")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give the folder the package goes to")
    if not force:
        if out.is_dir() and any(out.iterdir()):
            raise ConfigError(f"--out {out} is not empty; give --force to replace it and {archive.name}")
        if archive.exists():
            raise ConfigError(f"{archive} exists; give --force to replace it")
    check_writable(out)


def _zip(folder: Path, archive: Path) -> None:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                bundle.write(path, path.relative_to(folder).as_posix())


def write_package(
    systems: Sequence[Sequence[str | Path]],
    label: str,
    folder: str | Path,
    out: str | Path,
    force: bool = False,
) -> SubmissionPackage:
    """Write the submission package of ``systems`` (each a list of run folders: one run, or
    seeds of one recipe) for the evaluation audio in ``folder`` to ``out`` and ``out.zip``.

    Everything that can be refused is refused before anything is written; the package is
    written beside ``out`` under a temporary name and takes its place only when complete, so
    a failure leaves ``out`` and its zip as they were.
    """
    check_label(label)
    out = Path(out)
    archive = out.parent / f"{out.name}.zip"
    _check_out(out, archive, force)
    runs = read_systems(systems)
    root, filenames = folder_files(folder)
    labels = [f"{label}_{n}" for n in range(1, len(runs) + 1)]
    metas = [system_meta(name, system) for name, system in zip(labels, runs, strict=True)]
    scorers: list[Scorer] = [load_scorer(system[0].artifact) for system in runs]
    package = SubmissionPackage(out, archive, list(zip(labels, runs, strict=True)))
    remove_stale_partials(out.parent, f".{out.name}")
    stage = out.with_name(f".{out.name}.partial-{os.getpid()}")
    staged_archive = out.with_name(f".{archive.name}.partial-{os.getpid()}")
    try:
        for name, system, meta, scorer in zip(labels, runs, metas, scorers, strict=True):
            system_folder = stage / "task1" / name
            frame = predict_files(scorer, root, filenames)
            write_submission(frame, system_folder / f"{name}.output.csv")
            (system_folder / f"{name}.meta.yaml").write_text(meta_text(meta, system))
            package.rows = len(frame)
        _zip(stage, staged_archive)
        package.files = [out / path.relative_to(stage) for path in sorted(stage.rglob("*")) if path.is_file()]
        replaced = out.with_name(f".{out.name}.replaced.partial-{os.getpid()}")
        if out.exists():
            os.replace(out, replaced)
        os.replace(stage, out)
        os.replace(staged_archive, archive)
        shutil.rmtree(replaced, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        staged_archive.unlink(missing_ok=True)
    package.placeholders = list(dict.fromkeys(p for meta in metas for p in placeholders(meta)))
    package.synthetic = any(_on_synthetic(run) for system in runs for run in system)
    return package


__all__ = [
    "DCASE2023_TASK1_META_KEYS",
    "MAX_SYSTEMS",
    "PLACEHOLDER",
    "SUBMISSION_LABEL",
    "StudentRun",
    "SubmissionPackage",
    "check_label",
    "meta_text",
    "placeholders",
    "read_run",
    "read_systems",
    "system_meta",
    "write_package",
]
