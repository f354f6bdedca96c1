"""Teachers fine-tune through the same task and DataModule as students (report section 3)."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import pytest
import torch

from asc_kd.data.datamodule import TAU22DataModule
from asc_kd.data.tau import TAU22
from asc_kd.tasks import ClassificationTask

SMALL = {"embed_dim": 32, "depth": 1, "num_heads": 2}


@pytest.mark.parametrize(
    ("model", "model_kwargs", "frontend"),
    [
        ("passt", {**SMALL, "s_patchout_f": 2}, "passt_mel"),
        ("ast", SMALL, "ast_fbank"),
    ],
)
def test_teacher_fine_tune_fast_dev_run(
    model: str, model_kwargs: dict, frontend: str, tiny_root: Path, cache_dir: Path, cpu_trainer
) -> None:
    L.seed_everything(0, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "random weights" warning: no pretrained file here
        task = ClassificationTask(
            model=model, model_kwargs=model_kwargs, frontend=frontend, lr=1e-3, spec=TAU22
        )
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    datamodule = TAU22DataModule(
        root=str(tiny_root), cache_dir=str(cache_dir), num_workers=0, batch_size=8, eval_batch_size=32
    )
    trainer = cpu_trainer(fast_dev_run=2)
    trainer.fit(task, datamodule=datamodule)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    changed = [
        k
        for k, v in task.model.state_dict().items()
        if v.dtype.is_floating_point and not torch.equal(v, before[k])
    ]
    assert changed, "no teacher weight was updated"
    trainer.test(task, datamodule=datamodule, verbose=False)
    assert 0.0 <= trainer.callback_metrics["test/acc"].item() <= 1.0
