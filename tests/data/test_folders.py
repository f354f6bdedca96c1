"""The folder-per-class layout: classes, rates and lengths, split files, the generated split."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from asc_kd.check import main as check_main
from asc_kd.data.audio import AudioFileError
from asc_kd.data.check import check_dataset
from asc_kd.data.folders import FolderLayout, recording_of
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
    with pytest.raises(DatasetError, match="clips differ in length: .* set data.clip_seconds") as info:
        _ = FolderLayout(root).spec
    # 2 classes x 3 recordings x 2 segments of 1 s, and the one long clip.
    assert "1 of 13 clips is 2.500 s, the other 12 are 1.000 s: c1/long_0.wav;" in str(info.value)
    result = check_dataset(root, progress=False)
    assert [(p.file, p.field) for p in result.problems] == [(str(root), "length")]
    assert "c1/long_0.wav" in result.problems[0].message
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
    with pytest.raises(
        DatasetError, match=r"3 classes \(c0, c1, c2\) of .*: the files of each are all one recording"
    ):
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


# -- mistakes that are named, not dropped ------------------------------------------------
# Common mistakes in a folder-per-class dataset are errors that name the folder or file and
# the fix, in training and in the data check: nothing is dropped or split silently.


def _write_short(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, 0.1 * np.random.default_rng(seed).standard_normal(8000), 8000)


def _classes(root: Path, names: tuple[str, ...] = ("birds", "rain"), files: int = 12) -> Path:
    """``<class>/<class>_00.wav`` ...: the most common naming, one recording per file."""
    for c, name in enumerate(names):
        for i in range(files):
            _write_short(root / name / f"{name}_{i:02d}.wav", seed=100 * c + i)
    return root


def _check_says(root: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert check_main(["--data.root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "OK (" not in out
    return out


def test_numbered_files_name_the_recording_pattern_fix(tmp_path: Path) -> None:
    root = _classes(tmp_path / "d")
    with pytest.raises(DatasetError) as info:
        FolderLayout(root).frames()
    assert str(info.value) == (
        f"2 classes (birds, rain) of {root}: the files of each are all one recording ('birds/birds', "
        "'rain/rain') by data.recording_pattern '^(?P<recording>.+)[-_][^-_]+$' (a name's part before "
        "its last - or _), and a recording is never split; if every file is its own recording, pass "
        "--data.recording_pattern none"
    )
    assert (info.value.field, info.value.affected) == ("recording", ("birds", "rain"))
    assert info.value.option == "--data.recording_pattern"
    (root / "rain" / "rain_00.wav").rename(root / "rain" / "take1_00.wav")  # rain: two recordings
    with pytest.raises(DatasetError, match=f"^class 'birds' of {root}: its 12 files are all one recording"):
        FolderLayout(root).frames()
    frames = FolderLayout(root, recording_pattern="none", test_fraction=0.25).frames()
    assert len(frames["test"]) == 6 and len(frames["train"]) == 18  # 3 of 12 per class


def test_a_class_of_one_file_is_named(tmp_path: Path) -> None:
    root = _classes(tmp_path / "d", files=2)
    (root / "rain" / "rain_01.wav").unlink()
    with pytest.raises(DatasetError, match=f"class 'rain' of {root} has a single file"):
        FolderLayout(root, recording_pattern="none").frames()


@pytest.mark.parametrize("content", [[], ["notes.txt", "b.mp4"]], ids=["empty", "unsupported"])
def test_a_class_folder_without_audio_is_an_error(
    tmp_path: Path, content: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = _classes(tmp_path / "d")
    (root / "cars").mkdir()
    for name in content:
        (root / "cars" / name).write_text("x")
    held = "nothing" if not content else "2 other file(s), e.g. b.mp4"
    with pytest.raises(
        DatasetError, match=re.escape(f"class folder {root / 'cars'} holds no audio files ({held};")
    ):
        _ = FolderLayout(root, recording_pattern="none").spec
    assert f"class folder {root / 'cars'} holds no audio files" in _check_says(root, capsys)


def test_fewer_than_two_classes_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _classes(tmp_path / "d", names=("birds",))
    message = f"{root} has a single class folder (birds); a scene classifier needs at least two classes"
    with pytest.raises(DatasetError, match=re.escape(message)):
        _ = FolderLayout(root, recording_pattern="none").spec
    assert message in _check_says(root, capsys)


def test_every_listing_problem_is_named_in_one_run(tmp_path: Path) -> None:
    root = _classes(tmp_path / "d", names=("birds",), files=2)
    (root / "cars").mkdir()
    (root / "trams").mkdir()
    _write_short(root / "stray.wav")
    result = check_dataset(root, progress=False)
    assert [(p.field, p.affected) for p in result.problems] == [
        ("listing", ("cars", "trams")),
        ("listing", ("stray.wav",)),
        ("listing", ("birds",)),
    ]
    assert result.problems[0].message.endswith("; 2 class folders (cars, trams) hold no audio")
    # The fit stops on the first, and says there are more.
    with pytest.raises(
        DatasetError, match=r"hold no audio \(and 2 more problem\(s\): `asc-kd check` lists them all\)$"
    ):
        _ = FolderLayout(root).spec


def test_audio_outside_the_class_folders_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _classes(tmp_path / "d")
    _write_short(root / "stray.wav")
    (root / "README.txt").write_text("not audio, not a problem")
    result = check_dataset(root, progress=False, recording_pattern="none")
    assert [(p.field, p.message) for p in result.problems] == [
        (
            "listing",
            f"{root / 'stray.wav'} is in no class folder (1 audio file(s) directly under {root}); "
            f"move it into {root}/<class>/ or out of the dataset",
        )
    ]
    assert str(root / "stray.wav") in _check_says(root, capsys)
    (root / "stray.wav").unlink()
    assert check_dataset(root, progress=False, recording_pattern="none").ok
