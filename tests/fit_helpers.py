"""Helpers for tests that run ``asc_kd.fit`` / ``asc_kd.pipeline`` end to end.

W&B offline runs keep their config only in the run's transaction log ``run-<id>.wandb``
(wandb 0.31 writes no ``files/config.yaml`` offline). That file is a LevelDB-style record log
of ``wandb.proto.wandb_internal_pb2.Record`` messages; ``wandb_records`` reads it, since the
SDK no longer ships a reader (``wandb.sdk.internal.datastore`` is gone).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import wandb
from google.protobuf.message import DecodeError
from wandb.proto import wandb_internal_pb2

from asc_kd.recipes import RECIPES

REPO = Path(__file__).resolve().parent.parent
CONF = Path(__file__).resolve().parent / "conf"
#: Configs of a tiny debug teacher and of system 1 shrunk to a few CPU seconds.
TINY_TEACHER = (RECIPES / "base.yaml", CONF / "teacher.yaml")
TINY_SYSTEM1 = (
    RECIPES / "base.yaml",
    RECIPES / "students" / "kd.yaml",
    RECIPES / "students" / "system1.yaml",
    CONF / "student.yaml",
)


def make_cpu_trainer(root: Path, **overrides: Any) -> L.Trainer:
    """A quiet CPU Trainer writing under ``root``: no logger, checkpoints, bars or summary."""
    settings: dict[str, Any] = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": root,
    }
    return L.Trainer(**{**settings, **overrides})


def fit_args(tiny_root: Path, cache_dir: Path, out: Path, *configs: Path | str) -> list[str]:
    """``asc_kd.fit`` arguments: ``configs`` on the tiny scenes, every output under ``out``
    (a run's folder, its W&B files included, is ``out/<name>-seed<seed>``)."""
    args = [arg for config in configs for arg in ("--config", str(config))]
    return [
        *args,
        "--data.root",
        str(tiny_root),
        "--data.cache_dir",
        str(cache_dir),
        "--trainer.default_root_dir",
        str(out),
    ]


def content_hash_by_hand(root: Path, names: list[str]) -> str:
    """The full content hash as docs/data.md defines it, without asc_kd: SHA-256 of the sorted
    ``name<TAB>sha256 of the file's bytes`` lines."""
    import hashlib

    lines = sorted(f"{name}\t{hashlib.sha256((root / name).read_bytes()).hexdigest()}\n" for name in names)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def counted(function: Callable[..., Any], marks: Path, seconds: float = 1.0) -> Callable[..., Any]:
    """``function``, after it appends this process's pid to ``marks`` and sleeps ``seconds``: long
    enough for a process started with this one to find the lock taken while it builds."""

    def count(*args: Any, **kwargs: Any) -> Any:
        with marks.open("a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(seconds)
        return function(*args, **kwargs)

    return count


def _started_together(target: Callable[..., None], args: tuple, start: Any, log: Path) -> None:
    logging.basicConfig(filename=log, level=logging.INFO, format="%(message)s", force=True)
    torch.set_num_threads(1)
    start.wait()
    target(*args)


def run_together(target: Callable[..., None], args: tuple, logs: list[Path]) -> list[int]:
    """Run ``target(*args)`` in one forked process per log file, all released at one moment (as
    the jobs of a SLURM stage start), each logging to its file; their pids, once all ended well."""
    context = multiprocessing.get_context("fork")
    start = context.Barrier(len(logs))
    children = [context.Process(target=_started_together, args=(target, args, start, log)) for log in logs]
    for child in children:
        child.start()
    for child, log in zip(children, logs, strict=True):
        child.join(60)
        assert child.exitcode == 0, log.read_text() if log.exists() else "no log"
    return [child.pid for child in children]


def other_audio_in(path: Path) -> None:
    """The clip at ``path`` played backwards: same length and size, other samples."""
    import soundfile

    info = soundfile.info(path)
    audio, rate = soundfile.read(path, dtype="float64")
    soundfile.write(path, audio[::-1], rate, subtype=info.subtype)


def other_audio(tiny_root: Path, copy: Path) -> Path:
    """A copy of the tiny set whose clips are played backwards: same names, classes and sizes,
    other audio (another dataset fingerprint)."""
    shutil.copytree(tiny_root, copy)
    for path in copy.rglob("*.wav"):
        other_audio_in(path)
    return copy


def write_teacher_logits(tiny_root: Path, path: Path) -> Path:
    """A logits file for the tiny train split, as ``python -m asc_kd.logits`` would write it."""
    from asc_kd.data.cache import fingerprint_files
    from asc_kd.data.tau import SCENES, read_split
    from asc_kd.data.teacher_logits import save_logits

    filenames = list(read_split(tiny_root, "train")["filename"])
    logits = torch.randn(len(filenames), len(SCENES), generator=torch.Generator().manual_seed(0))
    metadata = {
        "split": "train",
        "dataset_fingerprint": fingerprint_files(tiny_root, filenames),
        "classes": list(SCENES),
    }
    return save_logits(path, filenames, 3 * logits, metadata)


@contextmanager
def command_line(prog: str) -> Iterator[None]:
    """Run a command's ``main`` in-process as if it were its own process.

    ``sys.argv`` loses pytest's options (LightningCLI warns when it sees both them and
    ``args``, and names the program after ``sys.argv[0]``), and no W&B run is active before or
    after it: Lightning's ``WandbLogger`` would attach a fit to a run left over.
    """
    wandb.finish()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", [prog])
        try:
            yield
        finally:
            wandb.finish()


def tree_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every file under ``folder``, by relative path."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# -- W&B offline runs ---------------------------------------------------------------------------
_FILE_HEADER = 7  # b":W&B", uint16 magic, uint8 version
_RECORD_HEADER = 7  # uint32 crc, uint16 length, uint8 type
_BLOCK = 32 * 1024  # records never straddle a block header; short tails are zero padding
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def offline_runs(save_dir: Path) -> list[Path]:
    """The W&B offline run directories under ``save_dir``."""
    return sorted((save_dir / "wandb").glob("offline-run-*"))


def wandb_records(run_dir: Path, timeout: float = 30.0) -> Iterator[wandb_internal_pb2.Record]:
    """Every record of an offline run's ``run-*.wandb`` log, in order.

    W&B's writer process can still be appending after ``wandb.finish()`` returns, so the log is
    read again until it parses whole and ends with the ``exit`` record (or ``timeout`` passes).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            records = _read_wandb_log(run_dir)
            if records and records[-1].WhichOneof("record_type") == "exit":
                return iter(records)
            problem = "no exit record yet"
        except DecodeError as err:
            problem = f"a record does not parse yet ({err})"
        if time.monotonic() > deadline:
            raise AssertionError(f"{run_dir}: the W&B log is incomplete after {timeout:.0f} s: {problem}")
        time.sleep(0.2)


def _read_wandb_log(run_dir: Path) -> list[wandb_internal_pb2.Record]:
    (path,) = run_dir.glob("run-*.wandb")
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B transaction log (starts with {data[:7]!r})")
    records = []
    position, pending = _FILE_HEADER, b""
    while position + _RECORD_HEADER <= len(data):
        left_in_block = _BLOCK - position % _BLOCK
        if left_in_block < _RECORD_HEADER:
            position += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + _RECORD_HEADER])
        if kind == 0:  # zero padding: nothing more was written
            break
        if position + _RECORD_HEADER + length > len(data):  # a record still being written
            break
        payload = data[position + _RECORD_HEADER : position + _RECORD_HEADER + length]
        position += _RECORD_HEADER + length
        pending = payload if kind in (_FULL, _FIRST) else pending + payload
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def wandb_config(run_dir: Path) -> dict[str, Any]:
    """The run config as W&B stored it: the run record's config updated by every config record."""
    config: dict[str, Any] = {}
    for record in wandb_records(run_dir):
        kind = record.WhichOneof("record_type")
        items = (
            record.run.config.update if kind == "run" else record.config.update if kind == "config" else []
        )
        for item in items:
            config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return config


@dataclass
class OfflineRun:
    """What an offline W&B run recorded: its identity, config and logged artifacts."""

    folder: Path
    name: str
    group: str
    job_type: str
    config: dict[str, Any]
    #: type, name, aliases and metadata of each logged artifact
    artifacts: list[dict[str, Any]]


def offline_run(run_dir: Path) -> OfflineRun:
    run, artifacts = None, []
    for record in wandb_records(run_dir):
        kind = record.WhichOneof("record_type")
        if kind == "run" and run is None:
            run = record.run
        elif kind == "artifact":
            artifact = record.artifact
            artifacts.append(
                {
                    "type": artifact.type,
                    "name": artifact.name,
                    "aliases": list(artifact.aliases),
                    "metadata": json.loads(artifact.metadata or "{}"),
                    "files": [entry.path for entry in artifact.manifest.contents],
                }
            )
    assert run is not None, f"{run_dir} holds no run record"
    return OfflineRun(
        run_dir, run.display_name, run.run_group, run.job_type, wandb_config(run_dir), artifacts
    )


# -- the tiny pipeline --------------------------------------------------------------------------
PIPELINE_SYSTEM = "system1"
PIPELINE_TEACHERS = (CONF / "teacher.yaml", CONF / "teacher_small.yaml")


def copy_pipeline(source: Path, out: Path) -> Path:
    """A copy of a pipeline's ``--out`` at ``out`` whose manifest and run records (results, fit
    configs) name the copy's files, as if it had been run there."""
    shutil.copytree(source, out)
    for path in [out / "pipeline.json", *out.glob("*/*/run.json"), *out.glob("*/*/fit_config.yaml")]:
        if path.is_file():
            path.write_text(path.read_text().replace(str(source), str(out)))
    for path in out.glob("stages/*.json"):
        path.write_text(path.read_text().replace(str(source), str(out)))
    return out


def pipeline_argv(tiny_root: Path, cache_dir: Path, out: Path, *extra: str) -> list[str]:
    """Two tiny teachers (the first alone in the ensemble), one student system with two seeds,
    one short epoch each."""
    return [
        "--data.root",
        str(tiny_root),
        "--data.cache_dir",
        str(cache_dir),
        "--data.batch_size",
        "16",
        "--out",
        str(out),
        "--teachers",
        *map(str, PIPELINE_TEACHERS),
        "--ensemble",
        PIPELINE_TEACHERS[0].stem,
        "--systems",
        PIPELINE_SYSTEM,
        "--student-seeds",
        "2",
        "--max-epochs",
        "1",
        "--quiet",
        *extra,
        "--",
        "--trainer.limit_train_batches",
        "2",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.enable_model_summary",
        "false",
    ]


@dataclass(frozen=True)
class TinyPipeline:
    """One finished ``asc_kd.pipeline`` run: its arguments, output and dataset (as it was before),
    and the lines its driver said (``asc_kd.runs``' log: stage, decision and job lines)."""

    argv: list[str]
    out: Path
    root: Path
    cache_dir: Path
    root_before: dict[str, tuple[int, int]]
    said: tuple[str, ...] = ()


@contextmanager
def said_by(name: str) -> Iterator[list[str]]:
    """The messages logger ``name`` logs at INFO and above while the block runs."""
    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def fit_on_noise(
    task: L.LightningModule, trainer: L.Trainer, clips: int = 8, batch_size: int = 4
) -> L.Trainer:
    """Fit ``task`` on ``clips`` labelled 1-s noise clips (no dataset on disk) with ``trainer``."""
    import warnings

    from torch.utils.data import DataLoader

    generator = torch.Generator().manual_seed(5)
    samples = getattr(task, "segment_samples", 32_000)
    data = [
        {
            "waveform": 0.1 * torch.randn(samples, generator=generator),
            "target": torch.tensor(i % 10),
            "device": torch.tensor(0),
            "teacher_logits": torch.randn(10, generator=generator),
        }
        for i in range(clips)
    ]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "You defined a `validation_step` but have no `val_dataloader`")
        trainer.fit(task, train_dataloaders=DataLoader(data, batch_size=batch_size))
    return trainer


# -- SLURM ----------------------------------------------------------------------------------------
def slurm_or_skip() -> None:
    """Skip the test when no SLURM cluster answers here (under ``CI=true``: fail, CI starts one
    with tests/cluster/start.sh)."""
    reason = None
    if shutil.which("sbatch") is None:
        reason = "no SLURM here (sbatch not found); tests/cluster/start.sh starts a one-node cluster"
    else:
        listed = subprocess.run(
            ["sinfo", "--noheader", "--responding", "-o", "%t"], capture_output=True, text=True
        )
        if not {"idle", "mix", "alloc"} & set(listed.stdout.split()):
            said = listed.stdout.strip() or listed.stderr.strip()
            reason = f"SLURM has no node up (sinfo: {said}); run tests/cluster/start.sh"
    if reason and os.environ.get("CI") == "true":
        pytest.fail(f"CI=true needs SLURM: {reason}")
    if reason:
        pytest.skip(reason)
