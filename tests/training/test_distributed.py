"""Two CPU processes (gloo) give the same metrics and exported logits as one process."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from fit_helpers import make_cpu_trainer

from asc_kd.data.datamodule import TAU22DataModule
from asc_kd.data.tau import TAU22
from asc_kd.evaluation.metrics import SceneMetrics
from asc_kd.tasks import ClassificationTask
from asc_kd.training.logits import TeacherRun, export_logits

pytestmark = pytest.mark.slow

WORLD = 2


def _teacher_checkpoint(tmp_path: Path, root: Path, cache_dir: Path) -> Path:
    L.seed_everything(0, verbose=False)
    task = ClassificationTask(model="debug", spec=TAU22)
    trainer = make_cpu_trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(task, datamodule=_datamodule(root, cache_dir))
    path = tmp_path / "teacher.ckpt"
    trainer.save_checkpoint(path)
    return path


def _datamodule(root: Path, cache_dir: Path) -> TAU22DataModule:
    return TAU22DataModule(root=str(root), cache_dir=str(cache_dir), num_workers=0, eval_batch_size=16)


def _worker(rank: int, init_file: str, root: str, cache_dir: str, checkpoint: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        out = Path(out_dir)
        frame = export_logits(
            [TeacherRun(checkpoint, "debug")],
            _datamodule(Path(root), Path(cache_dir)),
            out / "ddp.npz",
            "train",
            out / "ddp_table",
            device="cpu",
        )
        frame.to_csv(out / f"table_rank{rank}.csv", index=False)
        # Each rank sees half of a fixed batch; compute() must reduce to the full-batch result.
        generator = torch.Generator().manual_seed(0)
        logits = torch.randn(40, 10, generator=generator)
        target = torch.randint(0, 10, (40,), generator=generator)
        device = torch.randint(0, 9, (40,), generator=generator)
        metric = SceneMetrics(TAU22)
        metric.update(logits[rank::WORLD], target[rank::WORLD], device[rank::WORLD])
        torch.save({k: v for k, v in metric.compute().items()}, out / f"metrics_rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_match_one(tiny_root: Path, cache_dir: Path, tmp_path: Path) -> None:
    checkpoint = _teacher_checkpoint(tmp_path, tiny_root, cache_dir)
    single = export_logits(
        [TeacherRun(str(checkpoint), "debug")],
        _datamodule(tiny_root, cache_dir),
        tmp_path / "single.npz",
        "train",
        tmp_path / "single_table",
        device="cpu",
    )
    mp.spawn(
        _worker,
        args=(str(tmp_path / "init"), str(tiny_root), str(cache_dir), str(checkpoint), str(tmp_path)),
        nprocs=WORLD,
        join=True,
    )
    with np.load(tmp_path / "single.npz") as a, np.load(tmp_path / "ddp.npz") as b:
        assert list(a["filenames"]) == list(b["filenames"])  # same clips, same order, none twice
        np.testing.assert_allclose(a["logits"], b["logits"], rtol=0, atol=1e-5)
    for rank in range(WORLD):
        table = __import__("pandas").read_csv(tmp_path / f"table_rank{rank}.csv")
        np.testing.assert_allclose(table["accuracy_mean"].to_numpy(), single["accuracy_mean"].to_numpy())

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 10, generator=generator)
    target = torch.randint(0, 10, (40,), generator=generator)
    device = torch.randint(0, 9, (40,), generator=generator)
    full = SceneMetrics(TAU22)
    full.update(logits, target, device)
    expected = full.compute()
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"metrics_rank{rank}.pt")
        for key, value in expected.items():
            torch.testing.assert_close(got[key], value, equal_nan=True, msg=key)
