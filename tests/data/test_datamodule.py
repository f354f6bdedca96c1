"""``SceneDataModule`` on the tiny synthetic sets: splits, held-out validation, windows of long
clips, batches, teacher logits, what the clips are (content hash, sampled fingerprint),
augmentation, synthetic generation."""

from __future__ import annotations

import functools
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
from fit_helpers import content_hash_by_hand

import asc_kd.data.datamodule as datamodule_module
from asc_kd.core.errors import ConfigError
from asc_kd.data.cache import _content_sample, fingerprint_files
from asc_kd.data.datamodule import (
    FolderDataModule,
    SceneDataModule,
    TAU20DataModule,
    TAU22DataModule,
    dataset_fingerprint,
)
from asc_kd.data.folders import DEFAULT_RECORDING_PATTERN
from asc_kd.data.spec import DatasetError
from asc_kd.data.synthetic import SyntheticConfig, ensure_synthetic
from asc_kd.data.tau import DEVICES, SCENES, TAU22, read_split
from asc_kd.data.teacher_logits import LogitsMismatchError, save_logits

#: The 10-s TAU20 set takes seconds to generate: its tests share one xdist worker.
TAU20_GROUP = pytest.mark.xdist_group(name="tau20")

#: Half an int16 step plus float32 resampling arithmetic (see data/test_cache.py).
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
    assert set(batch) == {"waveform", "target", "device", "index"}
    assert batch["waveform"].shape == (16, 32000)
    assert batch["waveform"].dtype == torch.float32
    for key in ("target", "device", "index"):
        assert batch[key].shape == (16,)
        assert batch[key].dtype == torch.int64
    frame = module.datasets["train"].frame.iloc[batch["index"].numpy()]
    assert batch["target"].tolist() == frame["target"].tolist()
    assert batch["device"].tolist() == frame["device_index"].tolist()
    assert batch["index"].tolist() != sorted(batch["index"].tolist())  # shuffled


def test_splits(module, tiny_root):
    train = read_split(tiny_root, "train")
    test = read_split(tiny_root, "test")
    assert list(module.datasets["train"].frame["filename"]) == list(train["filename"])
    assert list(module.datasets["val"].frame["filename"]) == list(test["filename"])
    assert list(module.datasets["test"].frame["filename"]) == list(test["filename"])
    assert set(module.datasets) == {"train", "val", "test"}  # unlabelled files: asc_kd.predict's


@pytest.mark.parametrize("split", ["val", "test"])
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
        {
            "split": "train",
            "dataset_fingerprint": fingerprint_files(tiny_root, names),
            "classes": list(SCENES),
        },
    )
    module = _module(tiny_root, cache_dir, teacher_logits=str(path))  # rows are in another order
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
    with pytest.raises(LogitsMismatchError, match="no logits for 1 training example") as info:
        _module(tiny_root, cache_dir, teacher_logits=str(path))
    assert repr(names[100]) in str(info.value)
    assert str(path) in str(info.value) and "does not match the dataset" in str(info.value)


def test_teacher_logits_of_other_audio_say_so(tiny_root, cache_dir, tmp_path):
    names = list(read_split(tiny_root, "train")["filename"])
    path = save_logits(
        tmp_path / "teacher.npz",
        names,
        torch.zeros(len(names), 10),
        {"split": "train", "dataset_fingerprint": "0" * 64},
    )
    with pytest.raises(LogitsMismatchError) as info:
        _module(tiny_root, cache_dir, teacher_logits=str(path))
    message = str(info.value)
    assert str(path) in message and str(tiny_root) in message and "does not match the dataset" in message
    assert "not found" not in message  # not sent off to download data


# -- what the clips are: the content hash with the cache, the sampled fingerprint without ----


def _split_names(root: Path) -> list[str]:
    """The train and test clips as the split files list them."""
    files = ("fold1_train.csv", "fold1_evaluate.csv")
    return [n for f in files for n in pd.read_csv(root / "evaluation_setup" / f, sep="\t")["filename"]]


def _rewrite(path: Path) -> None:
    """The same clip played backwards: same length, same size, other samples."""
    info = soundfile.info(path)
    audio, rate = soundfile.read(path, dtype="float64")
    size = path.stat().st_size
    soundfile.write(path, audio[::-1], rate, subtype=info.subtype)
    assert path.stat().st_size == size


def test_a_run_records_the_content_hash_from_the_cache_and_the_sampled_one_without(
    tiny_root, cache_dir, module
):
    names = _split_names(tiny_root)
    assert len(set(names)) == len(names) == 360
    content, sampled = content_hash_by_hand(tiny_root, names), fingerprint_files(tiny_root, names)
    assert dataset_fingerprint(module) == {"kind": "content", "hash": content}
    assert module.data_record() == {"dataset_fingerprint": sampled, "dataset_content_hash": content}
    train = names[:180]
    assert module.data_record(train) == {
        "dataset_fingerprint": fingerprint_files(tiny_root, train),
        "dataset_content_hash": content_hash_by_hand(tiny_root, train),
    }
    decoded = TAU22DataModule(root=str(tiny_root), cache_dir=str(cache_dir), use_cache=False, num_workers=0)
    assert dataset_fingerprint(decoded) == {"kind": "sampled", "hash": sampled}  # set up on the way
    assert decoded.data_record() == {"dataset_fingerprint": sampled, "dataset_content_hash": None}


def test_without_a_cache_the_sampled_fingerprint_still_tells_changed_clips(tiny_root, cache_dir, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(tiny_root, root)
    names = _split_names(root)
    record = _module(root, cache_dir, use_cache=False).data_record()
    assert record["dataset_content_hash"] is None
    assert _module(root, cache_dir, use_cache=False).data_change(record) is None
    _rewrite(root / _content_sample(names)[0])  # one of the clips whose bytes it reads
    now = fingerprint_files(root, names)
    change = _module(root, cache_dir, use_cache=False).data_change(record)
    assert change == (
        f"dataset fingerprint {record['dataset_fingerprint'][:12]} then, {now[:12]} now; sampled: names, "
        "sizes and the bytes of 64 clips"
    )


def test_teacher_logits_of_another_sampled_fingerprint_are_refused(tiny_root, cache_dir, tmp_path):
    """Without a content hash on either side, the join compares the sampled fingerprints."""
    names = list(read_split(tiny_root, "train")["filename"])
    metadata = {"split": "train", "classes": list(SCENES), "dataset_fingerprint": "beef" * 16}
    path = save_logits(tmp_path / "teacher.npz", names, torch.zeros(len(names), 10), metadata)
    with pytest.raises(LogitsMismatchError) as info:
        _module(tiny_root, cache_dir, use_cache=False, teacher_logits=str(path))
    now = fingerprint_files(tiny_root, names)
    assert str(info.value) == (
        f"teacher logits file {path} does not match the dataset at {tiny_root}: its clips hold other "
        f"audio than when the logits were made (dataset fingerprint beefbeefbeef then, {now[:12]} now; "
        "sampled: names, sizes and the bytes of 64 clips); rebuild it with `python -m asc_kd.logits`"
    )


def test_teacher_logits_of_a_clip_rewritten_at_the_same_size_are_refused(tiny_root, tmp_path):
    """The sampled fingerprint misses it; the content hash the cache build took names the clip."""
    root, cache_dir = tmp_path / "copy", tmp_path / "cache"
    shutil.copytree(tiny_root, root)
    names = list(read_split(root, "train")["filename"])
    made_on = _module(root, cache_dir)
    metadata = {"split": "train", "classes": list(SCENES), **made_on.data_record(names)}
    path = save_logits(tmp_path / "teacher.npz", names, torch.zeros(len(names), 10), metadata)
    _module(root, cache_dir, teacher_logits=str(path))  # joins
    rewritten = next(name for name in names if name not in _content_sample(names))
    _rewrite(root / rewritten)
    assert fingerprint_files(root, names) == metadata["dataset_fingerprint"]
    with pytest.raises(LogitsMismatchError) as info:
        _module(root, cache_dir, teacher_logits=str(path))
    now = content_hash_by_hand(root, names)
    assert str(info.value) == (
        f"teacher logits file {path} does not match the dataset at {root}: its clips hold other audio "
        f"than when the logits were made (dataset content hash {metadata['dataset_content_hash'][:12]} "
        f"then, {now[:12]} now; 1 of {len(names)} clips hold other audio: {rewritten}); rebuild it with "
        "`python -m asc_kd.logits`"
    )


@pytest.mark.parametrize(
    ("logits", "expected"),
    [
        (torch.zeros(180, 527), "527 classes, the dataset has 10"),
        (torch.zeros(180), "expected \\(clips, classes\\)"),
    ],
    ids=["527-classes", "1-d"],
)
def test_teacher_logits_of_the_wrong_shape_are_refused_at_load(
    tiny_root, cache_dir, tmp_path, logits, expected
):
    names = list(read_split(tiny_root, "train")["filename"])
    path = tmp_path / "teacher.npz"
    np.savez(
        path, filenames=np.asarray(names), logits=logits.numpy(), metadata=np.asarray('{"split": "train"}')
    )
    with pytest.raises(LogitsMismatchError, match=expected) as info:
        _module(tiny_root, cache_dir, teacher_logits=str(path))
    assert str(path) in str(info.value)


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
    for key in ("target", "device", "index"):
        assert torch.equal(augmented[key], batch[key])


#: torch.manual_seed(0), then randint(-3200, 3201, (16, 1)): the shift of each row of a batch.
SEED0_SHIFTS = [3000, -2350, -147, 872, -281, 712, 1820, -1989, 32, -2318, -83, 2553, 2743, 2559, -1687, -77]


def test_time_roll_augmentation(module):
    """Default roll_seconds=0.1 at 32 kHz: each row rolled by its own shift in -3200..3200
    samples, the seeded draws; a roll never applied (every shift 0) fails."""
    torch.manual_seed(0)
    assert torch.randint(-3200, 3201, (16, 1)).flatten().tolist() == SEED0_SHIFTS
    batch = next(iter(module.train_dataloader()))
    torch.manual_seed(0)
    rolled = module.augment(batch)["waveform"]
    for out, row, shift in zip(rolled, batch["waveform"], SEED0_SHIFTS, strict=True):
        assert torch.equal(out, torch.roll(row, shift))
        assert out[shift] == row[0] and not torch.equal(out, row)


def test_outside_training_batches_are_not_augmented(module):
    batch = next(iter(module.val_dataloader()))
    assert module.on_after_batch_transfer(batch, 0) is batch


SMALL = SyntheticConfig(train_segments_per_scene=2, test_segments_per_scene=1, seed=3)


@pytest.fixture
def small_synthetic(monkeypatch):
    # The DataModule always generates the default config (~3000 clips, tens of seconds);
    # generate a small one instead, still through ensure_synthetic.
    monkeypatch.setattr(  # where the DataModule calls it
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
    with pytest.raises(DatasetError, match="missing or empty; put the dataset there") as info:
        module.setup("fit")
    assert str(root) in str(info.value)
    assert "generate_synthetic" in str(info.value)
    assert not root.exists() or not any(root.iterdir())


# -- held-out validation -----------------------------------------------------------------------


def test_holdout_validation_keeps_recordings_whole_and_is_written(tiny_root, cache_dir, tmp_path):
    holdout = tmp_path / "holdout.csv"
    module = _module(
        tiny_root, cache_dir, validation="holdout", holdout_fraction=0.25, holdout_file=str(holdout)
    )
    train, val = module.datasets["train"].frame, module.datasets["val"].frame
    full = read_split(tiny_root, "train")
    assert sorted([*train["filename"], *val["filename"]]) == sorted(full["filename"])
    assert not set(train["recording"]) & set(val["recording"])  # no recording on both sides
    per_class = val["target"].value_counts()
    assert set(per_class.index) == set(range(10))  # every scene held out
    assert (per_class / full["target"].value_counts()).between(0.1, 0.5).all()
    assert list(pd.read_csv(holdout, sep="\t")["filename"]) == list(val["filename"])
    test = module.datasets["test"].frame
    assert list(test["filename"]) == list(read_split(tiny_root, "test")["filename"])
    # The written split is reused as it is; another seed draws another split.
    again = _module(tiny_root, cache_dir, validation="holdout", holdout_file=str(holdout), seed=5)
    assert list(again.datasets["val"].frame["filename"]) == list(val["filename"])
    other = _module(tiny_root, cache_dir, validation="holdout", holdout_file=str(tmp_path / "o.csv"), seed=5)
    assert list(other.datasets["val"].frame["filename"]) != list(val["filename"])


def test_holdout_file_from_another_split_is_refused(tiny_root, cache_dir, tmp_path):
    holdout = tmp_path / "holdout.csv"
    holdout.write_text("filename\trecording\naudio/not-a-training-clip.wav\tx\n")
    with pytest.raises(DatasetError, match="not in the training split") as info:
        _module(tiny_root, cache_dir, validation="holdout", holdout_file=str(holdout))
    assert str(holdout) in str(info.value)


def test_no_validation(tiny_root, cache_dir):
    module = _module(tiny_root, cache_dir, validation="none")
    assert "val" not in module.datasets and module.val_dataloader() == []


# -- other layouts -----------------------------------------------------------------------------


@TAU20_GROUP
def test_tau20_trains_on_windows_and_evaluates_whole_clips(tau20_root, cache_dir):
    module = TAU20DataModule(
        str(tau20_root), cache_dir=str(cache_dir), num_workers=0, batch_size=8, eval_batch_size=4
    )
    module.setup("fit")
    assert module.spec.clip_seconds == 10.0
    train = module.datasets["train"]
    clips = len(train.frame)
    assert len(train) == 10 * clips and train.keys[:2] == [
        f"{train.frame['filename'][0]}#0",
        f"{train.frame['filename'][0]}#1",
    ]
    batch = train.__getitems__([0, 1, 19])
    assert batch["waveform"].shape == (3, 32000)
    first_clip = train.audio.read(train.rows[[0]])[0]
    second_clip = train.audio.read(train.rows[[19]])[0]
    assert torch.equal(batch["waveform"][1], first_clip[32000:64000])  # window 1 of clip 0
    assert torch.equal(batch["waveform"][2], second_clip[288000:])  # window 9 of clip 1
    assert batch["target"].tolist() == [train.frame["target"][0]] * 2 + [train.frame["target"][1]]
    test_batch = next(iter(module.test_dataloader()))
    assert test_batch["waveform"].shape == (4, 320000)


@TAU20_GROUP
def test_random_crops_draw_new_windows(tau20_root, cache_dir):
    module = TAU20DataModule(str(tau20_root), cache_dir=str(cache_dir), num_workers=0, train_crop="random")
    module.setup("fit")
    train = module.datasets["train"]
    assert len(train) == len(train.frame)
    torch.manual_seed(0)
    first = train.__getitems__([0])["waveform"][0]
    second = train.__getitems__([0])["waveform"][0]
    whole = train.audio.read(train.rows[[0]])[0]
    assert first.shape == (32000,) and not torch.equal(first, second)
    starts = [s for s in range(0, 320000 - 32000 + 1) if torch.equal(whole[s : s + 32000], first)]
    assert len(starts) == 1


def test_folder_datamodule(folders_root, cache_dir):
    module = FolderDataModule(str(folders_root), cache_dir=str(cache_dir), num_workers=0, batch_size=8)
    module.setup("fit")
    spec = module.spec
    assert len(spec.classes) == 13 and spec.devices == () and spec.clip_seconds == 2.0
    assert spec.source_sample_rate == 22050
    train, test = module.datasets["train"].frame, module.datasets["test"].frame
    assert not set(train["recording"]) & set(test["recording"])
    assert set(test["target"]) == set(range(13))
    batch = next(iter(module.train_dataloader()))
    assert batch["waveform"].shape == (8, 32000) and set(batch["device"].tolist()) == {-1}
    assert next(iter(module.test_dataloader()))["waveform"].shape[1] == 64000
    assert SceneDataModule(str(folders_root)).spec.classes == spec.classes  # layout auto-detected


@pytest.mark.parametrize(
    ("option", "value"), [("test_fraction", 0.3), ("recording_pattern", "none"), ("clip_seconds", 2.0)]
)
def test_a_folder_layout_option_for_a_tau_dataset_is_refused(tiny_root, folders_root, option, value):
    """The folder layout's own options would change nothing for a TAU dataset: one line says so."""
    module = SceneDataModule(str(tiny_root), **{option: value})
    expected = (
        f"data.{option}={value!r} applies only to the folders layout, and {tiny_root} is a tau22 "
        f"dataset; remove data.{option}"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        _ = module.spec
    defaults = {"test_fraction": 0.2, "recording_pattern": DEFAULT_RECORDING_PATTERN, "clip_seconds": None}
    assert SceneDataModule(str(tiny_root), seed=3, **{option: defaults[option]}).spec == TAU22
    assert getattr(SceneDataModule(str(folders_root), **{option: value}).layout, option) == value


@pytest.mark.parametrize("bars", [False, True])
def test_cache_progress_bar_follows_the_trainer(
    tiny_root, tmp_path, capfd: pytest.CaptureFixture[str], bars: bool
) -> None:
    import lightning as L

    datamodule = TAU22DataModule(
        root=str(tiny_root), cache_dir=str(tmp_path), validation="none", check_data=False, num_workers=0
    )
    datamodule.trainer = L.Trainer(enable_progress_bar=bars, logger=False, enable_checkpointing=False)
    capfd.readouterr()
    datamodule.setup("fit")
    assert ("caching audio" in capfd.readouterr().err) is bars  # `pipeline --quiet`: no bar at all


def test_a_cpu_model_reading_the_cache_gets_no_loader_workers(tiny_root, tmp_path) -> None:
    import lightning as L

    from asc_kd.data.datamodule import default_workers

    workers = {}
    for use_cache in (True, False):
        datamodule = TAU22DataModule(
            root=str(tiny_root),
            cache_dir=str(tmp_path),
            validation="none",
            check_data=False,
            use_cache=use_cache,
        )
        datamodule.trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)
        datamodule.setup("fit")
        workers[use_cache] = datamodule.train_dataloader().num_workers
    # memmap batches cost less than a worker's core; decoding wavs is worth the workers
    assert workers == {True: 0, False: default_workers()}
    explicit = TAU22DataModule(root=str(tiny_root), cache_dir=str(tmp_path), validation="none", num_workers=1)
    explicit.setup("fit")
    assert explicit.train_dataloader().num_workers == 1
