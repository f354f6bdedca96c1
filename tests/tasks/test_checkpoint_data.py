"""What a checkpoint records about the data it was trained on, so that a resume or a restore can
check it: the sampled fingerprint and the full content hash of the train and test clips (over
the names the split files list, computed here from the CSVs), and the dataset's spec, whole.
Checkpoints written before the spec was kept whole are refused in one line by ``load_task`` and
``load_from_checkpoint`` (which goes through it); a fit still resumes from them."""

from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from fit_helpers import content_hash_by_hand, make_cpu_trainer
from tiny_checkpoints import eval_logits, fit_checkpoint

from asc_kd.data.cache import fingerprint_files
from asc_kd.data.datamodule import TAU22DataModule
from asc_kd.data.tau import DEVICE_GROUPS, DEVICES, SCENES, TAU22
from asc_kd.tasks import ClassificationTask, DistillationTask
from asc_kd.tasks.restore import CheckpointError, load_task, read_checkpoint


def _names(root: Path, split_file: str) -> list[str]:
    return list(pd.read_csv(root / "evaluation_setup" / split_file, sep="\t")["filename"])


@pytest.fixture(scope="module")
def checkpoint(tiny_root: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("checkpoint_data")
    L.seed_everything(0, verbose=False)
    task = ClassificationTask(model="debug", spec=TAU22)
    datamodule = TAU22DataModule(
        root=str(tiny_root), cache_dir=str(cache_dir), num_workers=0, batch_size=16, check_data=False
    )
    trainer = make_cpu_trainer(folder, max_steps=1, limit_val_batches=0)
    trainer.fit(task, datamodule=datamodule)
    path = folder / "one_step.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def student_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    task = DistillationTask(model="debug", spec=TAU22, temperature=2.0)
    return fit_checkpoint(task, tmp_path_factory.mktemp("student") / "student.ckpt")


def _old_style(checkpoint: Path, folder: Path) -> Path:
    """``checkpoint`` as asc_kd wrote it before tasks took the spec: classes, devices and groups as
    hyperparameters of their own, no ``spec``."""
    stored = read_checkpoint(checkpoint)
    loose = {
        "classes": list(SCENES),
        "devices": list(DEVICES),
        "device_groups": {k: list(v) for k, v in DEVICE_GROUPS.items()},
    }
    del stored["hyper_parameters"]["spec"], stored["asc_kd"]["spec"]
    stored["asc_kd"].update(loose)
    stored["hyper_parameters"].update(loose)
    old = folder / "old.ckpt"
    torch.save(stored, old)
    return old


def test_the_checkpoint_records_the_fingerprint_of_the_train_and_test_clips(
    checkpoint: Path, tiny_root: Path
) -> None:
    train, test = _names(tiny_root, "fold1_train.csv"), _names(tiny_root, "fold1_evaluate.csv")
    assert len(train) == len(test) == 180 and not set(train) & set(test)
    record = read_checkpoint(checkpoint)["asc_kd"]
    recorded = record["dataset_fingerprint"]
    assert recorded == fingerprint_files(tiny_root, train + test)
    assert record["dataset_content_hash"] == content_hash_by_hand(tiny_root, train + test)
    # The record would tell a dataset that lost its test split, or its training clips, apart.
    assert recorded != fingerprint_files(tiny_root, train)
    assert recorded != fingerprint_files(tiny_root, test)


def test_the_fingerprint_changes_with_one_clip_of_other_audio(tiny_root: Path, tmp_path: Path) -> None:
    """What a resume on changed data would compare: a copy elsewhere gives the same fingerprint,
    the same names with one clip grown by two bytes another."""
    train, test = _names(tiny_root, "fold1_train.csv"), _names(tiny_root, "fold1_evaluate.csv")
    names = train + test
    copy = tmp_path / "copy"
    for name in names:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes((tiny_root / name).read_bytes())
    assert fingerprint_files(copy, names) == fingerprint_files(
        tiny_root, names
    )  # a copy elsewhere checks out
    with open(copy / test[0], "ab") as handle:
        handle.write(b"\0\0")
    assert fingerprint_files(copy, names) != fingerprint_files(tiny_root, names)


def test_the_checkpoint_records_the_dataset_spec_and_restores_with_it(checkpoint: Path) -> None:
    stored = read_checkpoint(checkpoint)
    assert stored["asc_kd"]["spec"] == TAU22.as_dict()
    assert stored["hyper_parameters"]["spec"] == TAU22.as_dict()  # plain data, whole
    assert "classes" not in stored["hyper_parameters"]
    task = load_task(checkpoint)
    assert task.spec == TAU22
    assert task.classes == tuple(SCENES) and task.devices == tuple(DEVICES)
    assert ClassificationTask.load_from_checkpoint(checkpoint, weights_only=True).spec == TAU22


def _no_spec(source: Path | str) -> str:
    return (
        f"^{re.escape(str(source))} holds no dataset spec \\(hyper_parameters.spec\\): "
        "an earlier asc_kd wrote it, with classes and devices of their own; fit it again with this one$"
    )


@pytest.mark.parametrize("cls", [ClassificationTask, DistillationTask])
def test_a_checkpoint_without_the_spec_is_refused_in_one_line(
    checkpoint: Path, student_checkpoint: Path, tmp_path: Path, cls: type[ClassificationTask]
) -> None:
    """Checkpoints written before tasks took the spec (loose classes, devices and groups) are
    refused by ``load_task`` and ``load_from_checkpoint`` alike, rather than built on the default spec."""
    old = _old_style(student_checkpoint if cls is DistillationTask else checkpoint, tmp_path)
    with pytest.raises(CheckpointError, match=_no_spec(old)):
        load_task(old)
    with pytest.raises(CheckpointError, match=_no_spec(old)):
        cls.load_from_checkpoint(old)


def test_load_from_checkpoint_gives_what_load_task_gives(checkpoint: Path, student_checkpoint: Path) -> None:
    for cls, path in [(ClassificationTask, checkpoint), (DistillationTask, student_checkpoint)]:
        loaded = cls.load_from_checkpoint(path, weights_only=True)
        assert type(loaded) is cls and loaded.spec == TAU22
        assert torch.equal(eval_logits(loaded), eval_logits(load_task(path)))


@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before the epoch ended")
def test_a_fit_resumes_from_a_checkpoint_without_the_spec_and_tests_it(
    checkpoint: Path, tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """``--ckpt_path`` restores weights and training state into the task the config builds (its
    spec comes from the data), so a checkpoint without the spec resumes and tests like a new one."""
    old = _old_style(checkpoint, tmp_path)
    datamodule = TAU22DataModule(
        root=str(tiny_root), cache_dir=str(cache_dir), num_workers=0, batch_size=16, check_data=False
    )
    task = ClassificationTask(model="debug", spec=TAU22)
    trainer = make_cpu_trainer(tmp_path, max_steps=2, limit_val_batches=0)
    trainer.fit(task, datamodule=datamodule, ckpt_path=old, weights_only=True)
    assert trainer.global_step == 2  # one step after the checkpoint's one
    tester = make_cpu_trainer(tmp_path, limit_test_batches=2)
    resumed = tester.test(task, datamodule=datamodule, ckpt_path=old, weights_only=True)[0]
    restored = tester.test(load_task(checkpoint), datamodule=datamodule)[0]  # the same weights
    assert resumed["test/acc"] == restored["test/acc"]
