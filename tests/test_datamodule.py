"""``TAU22DataModule`` on the tiny synthetic set: splits, batches, teacher logits, augmentation."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch

import asc_kd.data.datamodule as datamodule_module
from asc_kd.data.cache import fingerprint_files
from asc_kd.data.datamodule import TAU22DataModule
from asc_kd.data.logits import LogitsMismatchError, save_logits
from asc_kd.data.synthetic import SyntheticConfig, ensure_synthetic
from asc_kd.data.tau22 import DEVICES, DatasetError, read_split

#: Half an int16 step plus float32 resampling arithmetic (see test_audio_cache.py).
TOLERANCE = 0.5 / 32767 + 1e-5


def _module(tiny_root, cache_dir, **kwargs) -> TAU22DataModule:
    options = {"num_workers": 0, "batch_size": 16, "eval_batch_size": 32, **kwargs}
    module = TAU22DataModule(root=str(tiny_root), cache_dir=str(cache_dir), **options)
    module.setup("fit")
    return module


@pytest.fixture(scope="module")
def module(tiny_root, cache_dir) -> TAU22DataModule:
    return _module(tiny_root, cache_dir)


def _filenames(module: TAU22DataModule, split: str, batch: dict) -> list[str]:
    return list(module.datasets[split].frame["filename"].iloc[batch["index"].numpy()])


def test_train_batch(module):
    batch = next(iter(module.train_dataloader()))
    assert set(batch) == {"waveform", "target", "device", "city", "index"}
    assert batch["waveform"].shape == (16, 32000)
    assert batch["waveform"].dtype == torch.float32
    for key in ("target", "device", "city", "index"):
        assert batch[key].shape == (16,)
        assert batch[key].dtype == torch.int64
    frame = module.datasets["train"].frame.iloc[batch["index"].numpy()]
    assert batch["target"].tolist() == frame["target"].tolist()
    assert batch["device"].tolist() == frame["device_index"].tolist()
    assert batch["city"].tolist() == frame["city_index"].tolist()
    assert batch["index"].tolist() != sorted(batch["index"].tolist())  # shuffled


def test_splits(module, tiny_root):
    train = read_split(tiny_root, "train")
    test = read_split(tiny_root, "test")
    listing = pd.read_csv(tiny_root / "evaluation_setup" / "fold1_test.csv", sep="\t")
    assert list(module.datasets["train"].frame["filename"]) == list(train["filename"])
    assert list(module.datasets["val"].frame["filename"]) == list(test["filename"])
    assert list(module.datasets["test"].frame["filename"]) == list(test["filename"])
    assert list(module.datasets["predict"].frame["filename"]) == list(listing["filename"])


@pytest.mark.parametrize("split", ["val", "test", "predict"])
def test_eval_loaders_keep_order(module, split):
    loader = getattr(module, f"{split}_dataloader")()
    sizes = [len(batch["index"]) for batch in loader]
    assert sizes == [32] * 5 + [20]  # 180 clips, nothing dropped
    first = next(iter(loader))
    assert first["index"].tolist() == list(range(32))


def test_train_drops_the_last_partial_batch(module):
    loader = module.train_dataloader()
    sizes = [len(batch["index"]) for batch in loader]
    assert sizes == [16] * (180 // 16)
    assert len(loader) == 11


def test_same_seed_same_order(tiny_root, cache_dir, module):
    first = next(iter(module.train_dataloader()))["index"]
    again = next(iter(_module(tiny_root, cache_dir, seed=0).train_dataloader()))["index"]
    other = next(iter(_module(tiny_root, cache_dir, seed=1).train_dataloader()))["index"]
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_loader_before_setup(tiny_root, cache_dir):
    module = TAU22DataModule(root=str(tiny_root), cache_dir=str(cache_dir), num_workers=0)
    with pytest.raises(RuntimeError, match="call setup"):
        module.train_dataloader()


def test_wav_source_equals_cache(tiny_root, cache_dir, module):
    decoded = _module(tiny_root, cache_dir, use_cache=False)
    cached_batch = next(iter(module.val_dataloader()))
    decoded_batch = next(iter(decoded.val_dataloader()))
    assert torch.equal(cached_batch["index"], decoded_batch["index"])
    difference = (cached_batch["waveform"] - decoded_batch["waveform"]).abs().max().item()
    assert difference <= TOLERANCE


def test_teacher_logits_joined_by_filename(tiny_root, cache_dir, tmp_path):
    names = list(read_split(tiny_root, "train")["filename"].sample(frac=1.0, random_state=0))
    logits = torch.randn(len(names), 10, generator=torch.Generator().manual_seed(0))
    path = save_logits(
        tmp_path / "teacher.npz",
        names,
        logits,
        {"split": "train", "dataset_fingerprint": fingerprint_files(tiny_root, names)},
    )
    module = _module(tiny_root, cache_dir, teacher_logits=str(path))
    row_of = {name: row for row, name in enumerate(names)}
    for batch in list(module.train_dataloader())[:3]:
        rows = [row_of[name] for name in _filenames(module, "train", batch)]
        assert batch["teacher_logits"].shape == (16, 10)
        assert torch.equal(batch["teacher_logits"], logits[rows])
    assert "teacher_logits" not in next(iter(module.val_dataloader()))


def test_teacher_logits_missing_clips_are_refused(tiny_root, cache_dir, tmp_path):
    names = list(read_split(tiny_root, "train")["filename"])
    kept = names[:100] + names[101:]
    path = save_logits(
        tmp_path / "teacher.npz",
        kept,
        torch.zeros(len(kept), 10),
        {"split": "train", "dataset_fingerprint": fingerprint_files(tiny_root, kept)},
    )
    with pytest.raises(LogitsMismatchError, match="no logits for 1 training clip") as info:
        _module(tiny_root, cache_dir, teacher_logits=str(path))
    assert repr(names[100]) in str(info.value)


def test_teacher_logits_for_another_split_are_refused(tiny_root, cache_dir, tmp_path):
    names = list(read_split(tiny_root, "test")["filename"])
    path = save_logits(tmp_path / "teacher.npz", names, torch.zeros(len(names), 10), {"split": "test"})
    with pytest.raises(LogitsMismatchError, match="split 'test', expected 'train'"):
        _module(tiny_root, cache_dir, teacher_logits=str(path))


def test_dir_augmentation_changes_only_device_a(tiny_root, cache_dir, tmp_path):
    responses = tmp_path / "responses"
    responses.mkdir()
    generator = np.random.default_rng(0)
    for i, length in enumerate((80, 160)):
        response = np.zeros(length, dtype=np.float32)
        response[0] = 1.0
        response[1:] = 0.3 * generator.standard_normal(length - 1)
        soundfile.write(responses / f"device{i}.wav", response, 32000, subtype="FLOAT")
    module = _module(tiny_root, cache_dir, dir_folder=str(responses), dir_p=1.0, roll_seconds=0.0)
    batch = next(iter(module.train_dataloader()))
    is_a = batch["device"] == DEVICES.index("a")
    assert 0 < int(is_a.sum()) < 16
    augmented = module.augment(batch)
    assert augmented["waveform"].shape == batch["waveform"].shape
    assert torch.equal(augmented["waveform"][~is_a], batch["waveform"][~is_a])
    change = (augmented["waveform"] - batch["waveform"]).abs().amax(dim=1)
    assert bool((change[is_a] > 1e-3).all())
    for key in ("target", "device", "city", "index"):
        assert torch.equal(augmented[key], batch[key])


def test_time_roll_augmentation(module):
    batch = next(iter(module.train_dataloader()))
    torch.manual_seed(0)
    rolled = module.augment(batch)["waveform"]  # default roll_seconds=0.1: up to 3200 samples
    for out, row in zip(rolled[:4], batch["waveform"][:4], strict=True):
        assert any(torch.equal(out, torch.roll(row, s)) for s in range(-3200, 3201))


def test_outside_training_batches_are_not_augmented(module):
    batch = next(iter(module.val_dataloader()))
    assert module.on_after_batch_transfer(batch, 0) is batch


SMALL = SyntheticConfig(train_segments_per_scene=2, test_segments_per_scene=1, seed=3)


@pytest.fixture
def small_synthetic(monkeypatch):
    # The DataModule always generates the default config (~3000 clips, tens of seconds);
    # generate a small one instead, still through ensure_synthetic.
    monkeypatch.setattr(
        datamodule_module, "ensure_synthetic", functools.partial(ensure_synthetic, config=SMALL)
    )


def test_generate_synthetic_into_a_new_root(tmp_path, small_synthetic):
    root = tmp_path / "synthetic"
    module = _module(root, tmp_path / "cache", generate_synthetic=True)
    assert (root / "meta.csv").is_file()
    assert len(module.datasets["train"]) == 20  # 2 segments per scene, all on device a
    assert len(module.datasets["test"]) == 90  # 1 segment per scene on 9 devices


def test_generate_synthetic_into_an_empty_root(tmp_path, small_synthetic):
    root = tmp_path / "synthetic"
    root.mkdir()
    module = _module(root, tmp_path / "cache", generate_synthetic=True)
    assert len(module.datasets["test"]) == 90


@pytest.mark.parametrize("exists", [True, False], ids=["empty", "missing"])
def test_empty_root_names_the_archive(tmp_path, exists):
    root = tmp_path / "tau22"
    if exists:
        root.mkdir()
    module = TAU22DataModule(root=str(root), cache_dir=str(tmp_path / "cache"), num_workers=0)
    with pytest.raises(DatasetError, match="TAU Urban Acoustic Scenes 2022 Mobile") as info:
        module.setup("fit")
    assert str(root) in str(info.value)
    assert "generate_synthetic" in str(info.value)
    assert not root.exists() or not any(root.iterdir())
