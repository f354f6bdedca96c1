"""Which clips each loader serves under each ``data.validation`` setting, read from the batches.

The loaders are what Lightning iterates, so the clips are taken from the batches they yield
(their ``index`` into the loader's own dataset), and the expected clips straight from the split
files with pandas: ``fold1_train.csv`` (180 clips) and ``fold1_evaluate.csv`` (180 clips).

==============  =========================  ==========================  ====================
validation      train loader               val loader                  test loader
==============  =========================  ==========================  ====================
``test``        fold1_train                fold1_evaluate              fold1_evaluate
``holdout``     fold1_train − held out     the held-out clips          fold1_evaluate
``none``        fold1_train                no loader (``[]``)          fold1_evaluate
==============  =========================  ==========================  ====================
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from torch.utils.data import DataLoader

from asc_kd.data.datamodule import TAU22DataModule
from asc_kd.data.tau import SCENES


def _listed(root: Path, name: str) -> dict[str, int]:
    """Filename -> class index of a split file, read without asc_kd."""
    frame = pd.read_csv(root / "evaluation_setup" / name, sep="\t")
    return {f: SCENES.index(s) for f, s in zip(frame["filename"], frame["scene_label"], strict=True)}


def _served(loader: DataLoader) -> dict[str, int]:
    """Filename -> label of every clip the loader yields (each clip once)."""
    frame = loader.dataset.frame
    served: dict[str, int] = {}
    for batch in loader:
        names = frame["filename"].iloc[batch["index"].numpy()]
        for name, target in zip(names, batch["target"].tolist(), strict=True):
            assert name not in served, f"{name} served twice"
            served[name] = target
    return served


def _module(root: Path, cache_dir: Path, **kwargs: object) -> TAU22DataModule:
    module = TAU22DataModule(
        root=str(root),
        cache_dir=str(cache_dir),
        num_workers=0,
        batch_size=16,
        eval_batch_size=64,
        check_data=False,
        **kwargs,
    )
    module.prepare_data()
    module.setup("fit")
    return module


def _train_served(module: TAU22DataModule) -> set[str]:
    # The training loader shuffles and drops the last partial batch: read its dataset in order.
    return set(_served(module.loader("train")))


def test_validation_test_monitors_the_development_test_split(tiny_root: Path, cache_dir: Path) -> None:
    train, evaluate = _listed(tiny_root, "fold1_train.csv"), _listed(tiny_root, "fold1_evaluate.csv")
    assert len(train) == len(evaluate) == 180
    module = _module(tiny_root, cache_dir, validation="test")
    assert _served(module.val_dataloader()) == evaluate
    assert _served(module.test_dataloader()) == evaluate
    assert _train_served(module) == set(train)
    assert len(module.train_dataloader()) == 180 // 16


def test_validation_holdout_takes_val_out_of_train_and_tests_on_test(
    tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    train, evaluate = _listed(tiny_root, "fold1_train.csv"), _listed(tiny_root, "fold1_evaluate.csv")
    holdout = tmp_path / "holdout.csv"
    module = _module(
        tiny_root, cache_dir, validation="holdout", holdout_fraction=0.25, holdout_file=str(holdout)
    )
    held = list(pd.read_csv(holdout, sep="\t")["filename"])
    val = _served(module.val_dataloader())
    assert set(val) == set(held) and 0 < len(val) < 180
    assert val == {name: train[name] for name in held}  # training clips with their own labels
    assert not set(val) & set(evaluate)
    fitted = _train_served(module)
    assert fitted == set(train) - set(held)  # the held-out clips are not trained on
    assert len(module.train_dataloader()) == (180 - len(held)) // 16
    assert _served(module.test_dataloader()) == evaluate


def test_validation_none_has_no_val_loader(tiny_root: Path, cache_dir: Path) -> None:
    train, evaluate = _listed(tiny_root, "fold1_train.csv"), _listed(tiny_root, "fold1_evaluate.csv")
    module = _module(tiny_root, cache_dir, validation="none")
    assert module.val_dataloader() == []
    assert _served(module.test_dataloader()) == evaluate
    assert _train_served(module) == set(train)


@pytest.mark.parametrize("validation", ["test", "holdout", "none"])
def test_the_training_clips_carry_their_own_labels(
    validation: str, tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    train = _listed(tiny_root, "fold1_train.csv")
    module = _module(tiny_root, cache_dir, validation=validation, holdout_file=str(tmp_path / "h.csv"))
    served = _served(module.loader("train"))
    assert served == {name: train[name] for name in served}
