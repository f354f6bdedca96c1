"""The folder-per-class layout: classes, rates and lengths, split files, the generated split."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from asc_kd.data.audio import AudioFileError
from asc_kd.data.folders import FolderLayout, recording_of
from asc_kd.data.integrity import check_dataset
from asc_kd.data.layouts import detect_layout
from asc_kd.data.spec import DatasetError


def _write(path: Path, seconds: float, rate: int = 16000, channels: int = 1, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = 0.1 * np.random.default_rng(seed).standard_normal((round(rate * seconds), channels))
    soundfile.write(path, audio if channels > 1 else audio[:, 0], rate)


def _dataset(root: Path, classes: int = 3, recordings: int = 3, segments: int = 2, **kw) -> Path:
    for c in range(classes):
        for r in range(recordings):
            for s in range(segments):
                _write(root / f"c{c}" / f"rec{r}_{s}.wav", 1.0, seed=c * 100 + r * 10 + s, **kw)
    return root


def test_classes_are_the_sorted_folder_names(tmp_path):
    root = _dataset(tmp_path / "d")
    (root / ".hidden").mkdir()
    (root / "notes.txt").write_text("not a class")
    (root / "c1" / "readme.md").write_text("not audio")
    layout = FolderLayout(root)
    assert detect_layout(root) == "folders"
    assert layout.spec.classes == ("c0", "c1", "c2")
    assert layout.spec.source_sample_rate == 16000 and layout.spec.clip_seconds == 1.0
    assert not layout.spec.mono and not layout.spec.exact_length
    assert len(layout.listed_files()) == 18


def test_any_extension_case_and_nested_folders(tmp_path):
    root = _dataset(tmp_path / "d", classes=2)
    _write(root / "c0" / "deeper" / "LOUD.WAV", 1.0)
    _write(root / "c1" / "take.flac", 1.0)
    files = set(FolderLayout(root).listed_files()["filename"])
    assert {"c0/deeper/LOUD.WAV", "c1/take.flac"} <= files


def test_mixed_rates_and_channels_are_allowed(tmp_path):
    root = _dataset(tmp_path / "d", classes=2)
    _write(root / "c0" / "other_0.wav", 1.0, rate=22050, channels=2)
    spec = FolderLayout(root).spec
    assert spec.source_sample_rate is None  # each file is resampled from its own rate


def test_clips_of_different_lengths_need_clip_seconds(tmp_path):
    root = _dataset(tmp_path / "d", classes=2)
    _write(root / "c1" / "long_0.wav", 2.5)
    with pytest.raises(DatasetError, match="clips differ in length .* set data.clip_seconds") as info:
        _ = FolderLayout(root).spec
    assert "c1/long_0.wav is 2.500 s" in str(info.value)
    assert FolderLayout(root, clip_seconds=1.0).spec.clip_seconds == 1.0


def test_recording_ids_are_parsed_from_names():
    assert recording_of("rec12-003", FolderLayout(".").recording_pattern) == "rec12"
    assert recording_of("street_07", r"^(?P<recording>.+)[-_][^-_]+$") == "street"
    assert recording_of("single", r"^(?P<recording>.+)[-_][^-_]+$") == "single"
    assert recording_of("rec12-003", "none") == "rec12-003"
    with pytest.raises(ValueError, match="no \\(\\?P<recording>"):
        FolderLayout(".", recording_pattern="(.+)-")


def test_generated_split_keeps_recordings_together(tmp_path):
    root = _dataset(tmp_path / "d", recordings=5)
    frames = FolderLayout(root, test_fraction=0.4).frames()
    train, test = frames["train"], frames["test"]
    assert not set(train["recording"]) & set(test["recording"])
    assert set(test["target"]) == set(train["target"]) == {0, 1, 2}
    assert len(train) + len(test) == 30
    again = FolderLayout(root, test_fraction=0.4).frames()["test"]
    assert list(again["filename"]) == list(test["filename"])  # seeded
    other = FolderLayout(root, test_fraction=0.4, split_seed=1).frames()["test"]
    assert list(other["filename"]) != list(test["filename"])


def test_a_class_of_one_recording_cannot_be_split(tmp_path):
    root = _dataset(tmp_path / "d", recordings=1)
    with pytest.raises(DatasetError, match="class 'c0' of .*: its 2 files are all one recording"):
        FolderLayout(root).frames()
    frames = FolderLayout(root, recording_pattern="none").frames()  # every file its own
    assert len(frames["test"]) == 3


def test_split_files_are_used_when_present(tmp_path):
    root = _dataset(tmp_path / "d")
    names = sorted(FolderLayout(root).listed_files()["filename"])
    (root / "evaluation_setup").mkdir()
    pd.DataFrame({"filename": names[:12]}).to_csv(
        root / "evaluation_setup/fold1_train.csv", sep="\t", index=False
    )
    pd.DataFrame({"filename": names[12:]}).to_csv(
        root / "evaluation_setup/fold1_evaluate.csv", sep="\t", index=False
    )
    frames = FolderLayout(root).frames()
    assert list(frames["train"]["filename"]) == names[:12]
    assert list(frames["test"]["filename"]) == names[12:]
    assert FolderLayout(root).spec.classes == ("c0", "c1", "c2")  # evaluation_setup is no class
    pd.DataFrame({"filename": ["c0/ghost.wav"]}).to_csv(
        root / "evaluation_setup/fold1_evaluate.csv", sep="\t"
    )
    with pytest.raises(AudioFileError, match="c0/ghost.wav"):
        FolderLayout(root).frames()


def test_data_check_of_a_folder_set(folders_root, tmp_path):
    result = check_dataset(folders_root, progress=False)
    assert result.ok and result.layout == "folders" and result.n_files == 13 * 8
    assert set(result.counts["class"]) == {f"scene{i:02d}" for i in range(13)}
    root = tmp_path / "copy"
    shutil.copytree(folders_root, root)
    (root / "scene03" / "rec000-0.wav").write_bytes(b"garbage")
    result = check_dataset(root, progress=False)
    assert [(p.file, p.field) for p in result.problems] == [
        (str(root / "scene03" / "rec000-0.wav"), "format")
    ]


def test_no_class_folders(tmp_path):
    (tmp_path / "empty" / "c0").mkdir(parents=True)
    with pytest.raises(DatasetError, match="holds no class folders with audio files"):
        _ = FolderLayout(tmp_path / "empty").spec
    with pytest.raises(DatasetError, match="cannot tell the layout"):
        detect_layout(tmp_path / "empty" / "c0")
