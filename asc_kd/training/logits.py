"""Teacher ensembles: every teacher's logits, their average for distillation, and Table 1.

A teacher is a task checkpoint (``.ckpt``) or, with a recipe, a plain weights file such as
CP-JKU's released PaSST teachers (``passt_253.pt`` ...): the recipe builds the model and its
front-end, the file fills it. The teachers that make up the distillation ensemble are chosen
apart from the rows of Table 1 (the report's Table 1 lists five teachers; its students learn
from the PaSST ensemble only). The ensemble's logits over the training split are saved keyed
by clip, with their provenance, for ``SceneDataModule(teacher_logits=...)``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from asc_kd import __version__
from asc_kd.core.errors import ConfigError
from asc_kd.core.io import check_writable
from asc_kd.data.datamodule import SceneDataModule
from asc_kd.data.options import GivenData, build_datamodule, fit_defaults
from asc_kd.data.spec import is_demo_root
from asc_kd.data.synthetic import SYNTHETIC_NOTE, is_synthetic
from asc_kd.data.teacher_logits import save_logits
from asc_kd.evaluation.inference import Precision, predict_logits, rank_and_world, resolve_device, uses_bf16
from asc_kd.evaluation.metrics import file_logits, scene_metrics
from asc_kd.evaluation.tables import TABLE1_BY, seed_row, summarize, table1_record, table_title, write_results
from asc_kd.models.pretrained import load_pretrained, trained_weights_follow
from asc_kd.recipes import read_recipe
from asc_kd.tasks.classification import ClassificationTask
from asc_kd.tasks.restore import fit_data_options, load_task, read_checkpoint
from asc_kd.tracking.lineage import WandbTarget, record_logits, stage_run

log = logging.getLogger(__name__)


@dataclass
class TeacherRun:
    """One teacher: where its weights are, its Table 1 row, and whether the ensemble uses it.

    Attributes:
        source: a task checkpoint, or a weights file when ``recipe`` is given.
        name: its row in Table 1 (runs of one name are summarised over seeds).
        seed: the seed it was trained with, if known.
        selection: how the checkpoint was chosen (``last``, ``best-val-holdout`` ...).
        in_ensemble: whether its logits enter the distillation ensemble.
        recipe: YAML recipe that builds the model for a plain weights file.
    """

    source: str
    name: str
    seed: int | None = None
    selection: str = "-"
    in_ensemble: bool = True
    recipe: str | None = None


def load_teacher(run: TeacherRun, datamodule: SceneDataModule | None = None) -> ClassificationTask:
    """The teacher of ``run`` in eval mode: its checkpoint, or its recipe filled with its weights."""
    if run.recipe is None:
        return load_task(run.source)
    arguments = read_recipe(run.recipe)
    kwargs = dict(arguments.get("model_kwargs") or {})
    kwargs["checkpoint"] = None  # the weights file replaces the recipe's pretrained weights
    spec = datamodule.spec if datamodule is not None else None
    with trained_weights_follow():  # the weights file fills the model below
        task = ClassificationTask(**{**arguments, "model_kwargs": kwargs}, spec=spec)
    load_pretrained(task.model, run.source, fine_tuned=True)
    return task.eval()


def describe(source: str | Path, name: str | None = None, recipe: str | None = None) -> TeacherRun:
    """A ``TeacherRun`` named from the checkpoint's record (recipe, seed, selection) when it has one."""
    if recipe is not None:
        return TeacherRun(str(source), name or Path(recipe).stem, recipe=str(recipe))
    record = read_checkpoint(source).get("asc_kd", {})
    run = record.get("run") or {}
    return TeacherRun(
        str(source),
        name or run.get("recipe") or str(record.get("model", Path(source).stem)),
        run.get("seed"),
        record.get("selection", "-"),
    )


def export_logits(
    teachers: list[TeacherRun],
    datamodule: SceneDataModule,
    out: str | Path,
    split: str = "train",
    table: str | Path | None = None,
    device: str = "auto",
    title: str | None = None,
    progress: bool = True,
    precision: Precision = "fp32",
) -> pd.DataFrame | None:
    """Save the ensemble's logits over ``split`` and return Table 1 (or None without ``table``).

    Every teacher is scored on the test split for Table 1; only ``in_ensemble`` teachers are
    run over ``split`` and averaged into the logits file. The default ``fp32`` gives the same
    logits on every host; ``bf16`` runs the teachers under bf16 autocast, and ``auto`` does so
    only where the device does bf16 fast (``asc_kd.evaluation.inference.fast_bf16``), which makes the
    numbers depend on the host's CPU or GPU. The logits file and Table 1's ``precision`` column
    record which ran. Table 1's rows go into the logits file too (``table1``), where
    ``asc_kd.evaluation.tables.tables_from_runs`` reads them; its title (by default ``table_title``) names
    the dataset and test split.
    """
    members = [t for t in teachers if t.in_ensemble]
    if not members:
        raise ConfigError("no teacher is in the ensemble; choose at least one")
    for output in (out, table):  # both outputs' folders, before the teachers run and one is written
        if output is not None:
            check_writable(output)
    target = resolve_device(device)
    rank, world = rank_and_world()
    if rank == 0:  # one process builds the cache; the others wait and read it
        datamodule.prepare_data()
    if world > 1:
        torch.distributed.barrier()
    datamodule.setup()  # every split: the export and Table 1 read train and test
    spec = datamodule.spec
    export_loader = datamodule.loader(split)
    test_loader = datamodule.loader("test")
    labels = test_loader.dataset.labels
    window = round(datamodule.hparams.segment_seconds * datamodule.hparams.sample_rate)
    ran_at = "bf16" if uses_bf16(target, precision) else "fp32"
    ensemble: torch.Tensor | float = 0.0
    ensemble_test: torch.Tensor | float = 0.0
    rows: list[dict[str, Any]] = []
    scored: list[str | None] = []  # the checkpoint of each row
    for run in teachers:
        task = load_teacher(run, datamodule)
        if list(task.classes) != list(spec.classes):
            raise ConfigError(
                f"teacher {run.source} predicts {len(task.classes)} classes "
                f"({', '.join(task.classes[:3])}, ...), the dataset at {datamodule.root} has "
                f"{len(spec.classes)} ({', '.join(spec.classes[:3])}, ...)"
            )
        label = f"{run.name}" + (f" (seed {run.seed})" if run.seed is not None else "")
        if run.in_ensemble:
            logits = predict_logits(
                task,
                export_loader,
                target,
                window,
                f"{label} on {split}" if progress else "",
                precision=precision,
            )
            ensemble = ensemble + logits / len(members)
        if table is not None:
            test_logits = predict_logits(
                task, test_loader, target, window, f"{label} on test" if progress else "", precision=precision
            )
            if run.in_ensemble:
                ensemble_test = ensemble_test + test_logits / len(members)
            metrics = scene_metrics(test_logits, labels["target"], labels["device"], spec)
            rows.append(
                seed_row(metrics, teacher=run.name, precision=ran_at, seed=run.seed, selection=run.selection)
            )
            scored.append(run.source)
    dataset = export_loader.dataset
    keys = dataset.keys
    filenames = list(dict.fromkeys(dataset.frame["filename"]))
    metadata = {
        "teachers": [
            {"checkpoint": t.source, "name": t.name, "seed": t.seed, "recipe": t.recipe} for t in members
        ],
        "split": split,
        "split_file": datamodule.hparams.train_split_file if split == "train" else None,
        **datamodule.data_record(filenames),  # its sampled fingerprint and full content hash
        "windowed": dataset.starts is not None,  # keys are filename#k, one per window
        "segment_seconds": datamodule.hparams.segment_seconds,
        "classes": list(spec.classes),
        "precision": ran_at,
        "asc_kd_version": __version__,
    }
    synthetic = is_synthetic(datamodule.root) or is_demo_root(datamodule.root)
    if table is not None:
        assert isinstance(ensemble_test, torch.Tensor)
        metrics = scene_metrics(ensemble_test, labels["target"], labels["device"], spec)
        names = list(dict.fromkeys(t.name for t in members))
        selections = ", ".join(sorted({t.selection for t in members}))
        ensemble_name = f"ensemble of {len(members)} ({', '.join(names)})"
        rows.append(
            seed_row(metrics, teacher=ensemble_name, precision=ran_at, seed=None, selection=selections)
        )
        scored.append(None)
        metadata["table1"] = table1_record(rows, scored, datamodule.test_split(), synthetic)
    assert isinstance(ensemble, torch.Tensor)
    if rank == 0:  # every rank holds the gathered logits; one writes
        save_logits(out, keys, file_logits(ensemble), metadata)
        log.info("wrote ensemble logits of %d teachers for %d examples to %s", len(members), len(keys), out)
    if table is None:
        return None
    frame = pd.DataFrame(rows)
    if rank == 0:
        if title is None:
            title = table_title(1, "teachers", [datamodule.test_split()], synthetic)
        elif synthetic and SYNTHETIC_NOTE not in title:
            title += SYNTHETIC_NOTE
        summary, written = write_results(frame, TABLE1_BY, table, title)
        log.info("wrote Table 1 to %s", ", ".join(map(str, written)))
        return summary
    return summarize(frame, TABLE1_BY)  # the same table, unwritten


#: The logits stage's own data defaults: batches of 64 clips for both splits, read in this
#: process (no loader workers). The command's ``--help`` shows them; the pipeline's stage uses them.
LOGITS_DATA_DEFAULTS = {"batch_size": 64, "eval_batch_size": 64, "num_workers": 0}


def ensemble_members(names: Iterable[str], ensemble: Iterable[str] | None) -> set[str]:
    """The teacher names whose logits are averaged: ``ensemble`` (default: all of ``names``);
    a ``ConfigError`` naming those of ``ensemble`` that are none of ``names``."""
    names = set(names)
    if not ensemble:
        return names
    unknown = sorted(set(ensemble) - names)
    if unknown:
        raise ConfigError(f"--ensemble names {unknown} match no teacher; names are {sorted(names)}")
    return set(ensemble)


def stage_datamodule(teachers: Sequence[TeacherRun], data: GivenData) -> SceneDataModule:
    """The data of the logits stage: the ``--data.*`` options in ``data`` over those the
    teachers' fits recorded (``asc_kd.data.options.fit_defaults``; a weights file records
    none), over ``LOGITS_DATA_DEFAULTS``. The logits so cover the clips the students' fit reads."""
    fits = {t.source: fit_data_options(t.source) for t in teachers if t.recipe is None}
    return build_datamodule(data, {**LOGITS_DATA_DEFAULTS, **fit_defaults(data, fits)})


@contextmanager
def torchrun_device(device: str) -> Iterator[str]:
    """The device of this rank under torchrun (``WORLD_SIZE`` > 1), with the process group set up
    for the while (NCCL on CUDA, else gloo) and torn down after; ``device`` as it is in a single
    process or where a group exists already."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.distributed.is_initialized():
        yield device
        return
    cuda = torch.cuda.is_available() and device != "cpu"
    torch.distributed.init_process_group("nccl" if cuda else "gloo")
    try:
        if cuda:
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local_rank)
            device = f"cuda:{local_rank}"
        yield device
    finally:
        torch.distributed.destroy_process_group()


def logits_stage(
    teachers: Sequence[TeacherRun],
    data: GivenData,
    out: str | Path,
    *,
    ensemble: Iterable[str] | None = None,
    split: str = "train",
    table: str | Path | None = None,
    device: str = "auto",
    precision: Precision = "fp32",
    progress: bool = True,
    wandb: WandbTarget | None = None,
) -> pd.DataFrame | None:
    """The logits stage, as ``python -m asc_kd.logits`` and the pipeline run it: the ensemble's
    logits file and Table 1 (``export_logits``), and the stage's W&B run (``wandb``).

    ``ensemble`` names the teachers whose logits are averaged (default: all); the data is
    ``stage_datamodule``'s. Under torchrun each rank exports its shard (``torchrun_device``)
    and rank 0 writes the files and logs the run. Returns Table 1 (None without ``table``).
    """
    members = ensemble_members([t.name for t in teachers], ensemble)
    runs = [replace(t, in_ensemble=t.name in members) for t in teachers]
    datamodule = stage_datamodule(runs, data)
    with torchrun_device(device) as device:
        frame = export_logits(
            runs, datamodule, out, split, table, device, progress=progress, precision=precision
        )
        writer = rank_and_world()[0] == 0
    if wandb is not None and writer:
        with stage_run("logits", "logits", Path(out).parent, wandb.project, wandb.group) as run:
            record_logits(run, [r.source for r in runs if r.in_ensemble], out, table, frame)
    return frame
