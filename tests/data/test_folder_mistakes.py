"""Common mistakes in a folder-per-class dataset are errors that name the folder or file and
the fix, in training and in the data check: nothing is dropped or split silently."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asc_kd.data.check import main as check_main
from asc_kd.data.folders import FolderLayout
from asc_kd.data.integrity import check_dataset
from asc_kd.data.spec import DatasetError


def _write(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, 0.1 * np.random.default_rng(seed).standard_normal(8000), 8000)


def _classes(root: Path, names: tuple[str, ...] = ("birds", "rain"), files: int = 12) -> Path:
    """``<class>/<class>_00.wav`` ...: the most common naming, one recording per file."""
    for c, name in enumerate(names):
        for i in range(files):
            _write(root / name / f"{name}_{i:02d}.wav", seed=100 * c + i)
    return root


def _check_says(root: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert check_main([str(root)]) == 1
    out = capsys.readouterr().out
    assert "OK (" not in out
    return out


def test_numbered_files_name_the_recording_pattern_fix(tmp_path: Path) -> None:
    root = _classes(tmp_path / "d")
    with pytest.raises(DatasetError) as info:
        FolderLayout(root).frames()
    assert str(info.value) == (
        f"class 'birds' of {root}: its 12 files are all one recording ('birds/birds') by "
        "data.recording_pattern '^(?P<recording>.+)[-_][^-_]+$' (a name's part before its last - or _), "
        "and a recording is never split; if every file is its own recording, pass "
        "--data.recording_pattern none"
    )
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


def test_audio_outside_the_class_folders_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _classes(tmp_path / "d")
    _write(root / "stray.wav")
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
