"""``python -m asc_kd.check`` and ``asc_kd.data.check``: a good set passes with the right
counts, each kind of damage is one problem naming the file and field."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

import asc_kd.data.check as check_module
import asc_kd.data.datamodule
from asc_kd.check import main
from asc_kd.core.command_line import run_command
from asc_kd.data.check import check_dataset, summary
from asc_kd.data.datamodule import SceneDataModule, TAU22DataModule
from asc_kd.data.folders import FolderLayout
from asc_kd.data.layouts import detect_layout
from asc_kd.data.spec import DatasetError
from asc_kd.data.synthetic import MARKER, write_linked
from asc_kd.data.tau import DEVICES, SCENES, SOURCE_SAMPLE_RATE, TAU22

OFFICIAL_ARCHIVE = TAU22.archive


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _copy(tiny_root: Path, tmp_path: Path) -> Path:
    """A copy of the tiny set whose wavs are hard links: replace a file, never write into one."""
    root = tmp_path / "tau22"
    shutil.copytree(tiny_root / "evaluation_setup", root / "evaluation_setup")
    shutil.copy2(tiny_root / "meta.csv", root / "meta.csv")
    shutil.copytree(tiny_root / "audio", root / "audio", copy_function=_link_or_copy)
    return root


def _replace(path: Path, write: Callable[[Path], None]) -> None:
    path.unlink()  # break the hard link first, so the shared tiny set stays intact
    write(path)


def _table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def _first_test_wav(root: Path) -> str:
    return _table(root / "evaluation_setup" / "fold1_evaluate.csv")["filename"].iloc[0]


def _expected_counts(root: Path) -> pd.Series:
    """Clips per (split, device, scene), computed from the files without asc_kd's readers."""
    meta = _table(root / "meta.csv").set_index("filename")
    frames = []
    for split, file in (("train", "fold1_train.csv"), ("test", "fold1_evaluate.csv")):
        names = _table(root / "evaluation_setup" / file)["filename"]
        rows = meta.loc[names]
        frames.append(
            pd.DataFrame({"split": split, "device": rows["source_label"], "class": rows["scene_label"]})
        )
    return pd.concat(frames).groupby(["split", "device", "class"]).size().sort_index()


def _counts(result: check_module.CheckResult) -> pd.Series:
    return result.counts.groupby(["split", "device", "class"]).size().sort_index()


# -- a good set ---------------------------------------------------------------------------------


def test_good_set_is_ok_and_counts_match_the_split_files(tiny_root: Path) -> None:
    result = check_dataset(tiny_root, progress=False)
    assert result.ok, [str(p) for p in result.problems]
    assert result.problems == []
    assert list(result.counts.columns) == ["split", "device", "class"]
    pd.testing.assert_series_equal(_counts(result), _expected_counts(tiny_root))
    n_train = len(_table(tiny_root / "evaluation_setup" / "fold1_train.csv"))
    n_test = len(_table(tiny_root / "evaluation_setup" / "fold1_evaluate.csv"))
    assert result.counts["split"].value_counts().to_dict() == {"train": n_train, "test": n_test}
    # The test split records every segment on all nine devices; train never sees s4-s6.
    test_devices = result.counts.loc[result.counts["split"] == "test", "device"]
    assert sorted(test_devices.unique()) == sorted(DEVICES)
    assert test_devices.value_counts().nunique() == 1
    train_devices = set(result.counts.loc[result.counts["split"] == "train", "device"])
    assert not train_devices & {"s4", "s5", "s6"}


def test_summary_tables(tiny_root: Path) -> None:
    text = summary(check_dataset(tiny_root, progress=False))
    assert "clips per split and device" in text and "clips per split and class" in text
    for label in (*DEVICES, *SCENES, "train", "test"):
        assert label in text


def test_main_on_a_good_set_exits_0_and_prints_the_summary(
    tiny_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--data.root", str(tiny_root)]) == 0
    out = capsys.readouterr().out
    n = int(_expected_counts(tiny_root).sum())
    assert "clips per split and device" in out
    assert f"OK (tau22): {n} clips in the splits" in out
    assert "problem" not in out


# -- damaged wavs -------------------------------------------------------------------------------


def _noise(samples: int, channels: int = 1) -> np.ndarray:
    audio = 0.1 * np.random.default_rng(0).standard_normal((samples, channels))
    return audio[:, 0] if channels == 1 else audio


def _missing(path: Path) -> None:
    path.unlink()


def _wrong_rate(path: Path) -> None:
    _replace(path, lambda p: soundfile.write(p, _noise(48_000), 48_000, subtype="PCM_24"))


def _stereo(path: Path) -> None:
    _replace(path, lambda p: soundfile.write(p, _noise(SOURCE_SAMPLE_RATE, 2), SOURCE_SAMPLE_RATE))


def _too_short(path: Path) -> None:
    _replace(path, lambda p: soundfile.write(p, _noise(SOURCE_SAMPLE_RATE - 1), SOURCE_SAMPLE_RATE))


def _too_long(path: Path) -> None:
    _replace(path, lambda p: soundfile.write(p, _noise(2 * SOURCE_SAMPLE_RATE), SOURCE_SAMPLE_RATE))


def _corrupt_header(path: Path) -> None:
    data = path.read_bytes()
    _replace(path, lambda p: p.write_bytes(b"JUNK" + bytes(40) + data[44:]))


def _nan_float(path: Path) -> None:
    audio = _noise(SOURCE_SAMPLE_RATE).astype(np.float32)
    audio[100] = np.nan
    _replace(path, lambda p: soundfile.write(p, audio, SOURCE_SAMPLE_RATE, subtype="FLOAT"))


def _zero_length(path: Path) -> None:
    _replace(path, lambda p: soundfile.write(p, np.zeros(0), SOURCE_SAMPLE_RATE, subtype="PCM_24"))


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize(
    ("damage", "field", "words"),
    [
        (_missing, "exists", ["not found", "TAU Urban Acoustic Scenes 2022"]),
        (_wrong_rate, "samplerate", ["48000 Hz", "expected 44100 Hz"]),
        (_stereo, "channels", ["2 channels", "mono"]),
        (_too_short, "length", ["44099 samples", "expected 44100"]),
        (_too_long, "length", ["88200 samples", "expected 44100"]),
        (_corrupt_header, "format", ["not a decodable wav", "the header of no audio format"]),
        (_nan_float, "samples", ["1 sample(s) are NaN or infinite"]),
        (_zero_length, "length", ["holds no samples"]),
        (_directory, "exists", ["is a directory"]),
    ],
    ids=["missing", "samplerate", "stereo", "short", "long", "corrupt", "nan", "zero-length", "directory"],
)
def test_each_damaged_wav_is_one_problem_naming_file_and_field(
    tiny_root: Path, tmp_path: Path, damage: Callable[[Path], None], field: str, words: list[str]
) -> None:
    root = _copy(tiny_root, tmp_path)
    name = _first_test_wav(root)
    damage(root / name)
    result = check_dataset(root, progress=False)
    assert not result.ok
    # A clip of another length (in ms) also gets the dataset's line naming it, first.
    n = len(_table(root / "meta.csv"))
    lengths = (
        [f"1 of {n} clips is 2.000 s, the other {n - 1} are 1.000 s: {name}"] if damage is _too_long else []
    )
    assert [p.message for p in result.problems if p.file == str(root)] == lengths
    assert [p.field for p in result.problems[: len(lengths)]] == ["length"] * len(lengths)
    problems = result.problems[len(lengths) :]
    assert len(problems) == 1, [str(p) for p in result.problems]
    problem = problems[0]
    assert problem.file == str(root / name)
    assert problem.field == field
    for word in words:
        assert word in problem.message
    assert str(problem) == f"[{field}] {problem.message}"
    assert str(problem).count(str(root / name)) == 1  # the path once, not twice
    # The splits themselves are still readable: counts are complete.
    pd.testing.assert_series_equal(_counts(result), _expected_counts(root))
    assert check_dataset(tiny_root, progress=False).ok  # the shared set was not touched


def test_several_problems_are_all_found(tiny_root: Path, tmp_path: Path) -> None:
    root = _copy(tiny_root, tmp_path)
    names = list(_table(root / "meta.csv")["filename"].iloc[[0, 5, 50, -1]])
    for name, damage in zip(names, (_missing, _stereo, _wrong_rate, _corrupt_header), strict=True):
        damage(root / name)
    result = check_dataset(root, progress=False, threads=3)
    found = sorted((p.file, p.field) for p in result.problems)
    fields = ("exists", "channels", "samplerate", "format")
    expected = sorted(zip((str(root / n) for n in names), fields, strict=True))
    assert found == expected


def test_main_exits_1_lists_problems_and_names_the_archive_for_missing_files(
    tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy(tiny_root, tmp_path)
    missing, stereo = (_table(root / "meta.csv")["filename"].iloc[i] for i in (3, 7))
    _missing(root / missing)
    _stereo(root / stereo)
    assert main(["--data.root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "clips per split and device" in out  # the summary comes first, problems or not
    assert "2 problem(s)" in out
    assert f"[exists] audio file {root / missing} not found" in out
    assert f"[channels] {root / stereo}: 2 channels" in out
    assert f"Missing files come from the {OFFICIAL_ARCHIVE}" in out
    assert "OK:" not in out


def test_main_does_not_name_the_archive_when_nothing_is_missing(
    tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy(tiny_root, tmp_path)
    _stereo(root / _first_test_wav(root))
    assert main(["--data.root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "[channels]" in out
    assert "Missing files come from" not in out


def test_problems_of_single_files_are_counted_by_kind_and_max_problems_limits_the_lines(
    tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy(tiny_root, tmp_path)
    names = list(_table(root / "meta.csv")["filename"].iloc[:6])
    for name in names[:5]:
        _missing(root / name)
    _stereo(root / names[5])
    assert main(["--data.root", str(root)]) == 1
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("6 problem(s): {'exists': 5, 'channels': 1}")
    shown = f"{names[0]}, {names[1]}, {names[2]}, ..."
    assert lines[start + 1 : start + 3] == [
        f"  [exists] 5 files ({shown}), the first: audio file {root / names[0]} not found; it is part of "
        f"the {OFFICIAL_ARCHIVE}",
        f"  [channels] {root / names[5]}: 2 channels, expected mono",
    ]
    assert main(["--data.root", str(root), "--max-problems", "1"]) == 1
    out = capsys.readouterr().out
    assert "6 problem(s)" in out and "[exists] 5 files" in out and "[channels]" not in out
    assert "  ... 1 more line(s) (--max-problems)" in out


# -- clips of another length -------------------------------------------------------------------

#: The tiny set's clips: 10 scenes x (8 train segments on a + 2 each on b, c, s1-s3 + 2 test
#: segments on all 9 devices) = 10 x 36.
TINY_CLIPS = 360


def _ten_seconds(path: Path) -> None:
    audio = _noise(10 * SOURCE_SAMPLE_RATE)
    _replace(path, lambda p: soundfile.write(p, audio, SOURCE_SAMPLE_RATE, subtype="PCM_24"))


@pytest.mark.parametrize("marked", [True, False], ids=["generator-marker", "clip-lengths"])
def test_a_tau22_set_whose_first_clip_is_10_s_stays_tau22_and_that_clip_is_named(
    tiny_root: Path, tmp_path: Path, marked: bool
) -> None:
    """The first clip alone once decided the layout: TAU20, and 359 good clips blamed. Now the
    generator's marker says the layout, and without it the length most sampled clips share."""
    root = _copy(tiny_root, tmp_path)
    if marked:
        shutil.copy2(tiny_root / MARKER, root / MARKER)
    first = _table(root / "meta.csv")["filename"].iloc[0]
    _ten_seconds(root / first)
    assert detect_layout(root) == "tau22"
    result = check_dataset(root, progress=False)
    assert result.layout == "tau22" and result.n_files == TINY_CLIPS
    assert [(p.file, p.field, p.message) for p in result.problems] == [
        (str(root), "length", f"1 of 360 clips is 10.000 s, the other 359 are 1.000 s: {first}"),
        (str(root / first), "length", f"{root / first}: 441000 samples (10.000 s), expected 44100 (1.000 s)"),
    ]


def test_a_tau22_set_read_as_tau20_names_the_one_clip_that_fits(tiny_root: Path, tmp_path: Path) -> None:
    root = _copy(tiny_root, tmp_path)
    first = _table(root / "meta.csv")["filename"].iloc[0]
    _ten_seconds(root / first)
    result = check_dataset(root, "tau20", progress=False)
    assert len(result.problems) == 1 + 359  # the line that names it, then each 1-s clip
    assert result.problems[0].message == (
        f"1 of 360 clips is 10.000 s, the other 359 are 1.000 s: {first}; the tau20 layout expects "
        "10.000 s, the tau22 layout 1.000 s: set data.layout tau22"
    )
    assert {p.field for p in result.problems} == {"length"}


def test_several_clips_of_other_lengths_are_counted_and_named(tiny_root: Path, tmp_path: Path) -> None:
    root = _copy(tiny_root, tmp_path)
    names = list(_table(root / "meta.csv")["filename"].iloc[[0, 100, 359]])
    for name in names:
        _too_long(root / name)
    result = check_dataset(root, progress=False)
    assert result.problems[0].message == (
        f"3 of 360 clips are 2.000 s, the other 357 are 1.000 s: {', '.join(names)}"
    )
    assert sorted(p.file for p in result.problems[1:]) == sorted(str(root / n) for n in names)


# -- every problem in one pass, and what was seen ---------------------------------------------

FOUR = ("bus", "metro", "park", "street")


def _wav(path: Path, seconds: float, rate: int = 8000, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, _noise(round(rate * seconds), channels), rate)


def _numbered_scenes(root: Path) -> Path:
    """4 class folders of ``rec_000.wav`` ...: two 1-s clips and one 2.5-s clip each; by the
    default pattern every class is one recording, ``rec``."""
    for scene in FOUR:
        for i, seconds in enumerate((1.0, 1.0, 2.5)):
            _wav(root / scene / f"rec_{i:03d}.wav", seconds)
    return root


def test_clip_lengths_and_recordings_of_four_classes_are_found_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _numbered_scenes(tmp_path / "scenes")
    long = [f"{scene}/rec_002.wav" for scene in FOUR]
    result = check_dataset(root, progress=False)
    assert [(p.file, p.field, p.option) for p in result.problems] == [
        (str(root), "length", "--data.clip_seconds"),
        (str(root), "recording", "--data.recording_pattern"),
    ]
    length, recording = result.problems
    assert length.affected == tuple(long)
    assert f"4 of 12 clips are 2.500 s, the other 8 are 1.000 s: {', '.join(long)};" in length.message
    assert recording.affected == FOUR
    assert recording.message.startswith(
        f"4 classes (bus, metro, park, street) of {root}: the files of each are all one recording "
        "('bus/rec', 'metro/rec', 'park/rec', ...) by data.recording_pattern"
    )
    assert main(["--data.root", str(root)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "2 problem(s): {'length': 1, 'recording': 1}" in lines
    assert f"  [length] {length.message} (fix: --data.clip_seconds)" in lines
    assert f"  [recording] {recording.message} (fix: --data.recording_pattern)" in lines
    # The fit refuses the same set: the lengths first, then, with a clip length, the recordings.
    with pytest.raises(DatasetError, match=re.escape(length.message)):
        _ = FolderLayout(root).spec
    with pytest.raises(DatasetError, match=re.escape(recording.message)):
        FolderLayout(root, clip_seconds=1.0).frames()
    fixed = ["--data.root", str(root), "--data.clip_seconds", "1", "--data.recording_pattern", "none"]
    assert main(fixed) == 0


def test_the_summary_counts_rates_channels_lengths_and_extensions(tmp_path: Path) -> None:
    root = tmp_path / "scenes"
    for name, seconds, rate, channels in [
        ("c0/r0_0.wav", 0.5, 8000, 1),
        ("c0/r1_0.wav", 1.0, 8000, 2),
        ("c0/r2_0.flac", 1.0, 16000, 1),
        ("c1/r0_0.wav", 1.0, 16000, 2),
        ("c1/r1_0.wav", 2.0, 8000, 1),
        ("c1/r2_0.wav", 1.5, 16000, 1),
    ]:
        _wav(root / name, seconds, rate, channels)
    result = check_dataset(root, progress=False, clip_seconds=1.0)
    assert result.ok, [str(p) for p in result.problems]
    text = summary(result)
    assert text.splitlines()[:5] == [
        "audio: 6 files listed, 6 with a readable header",
        "  sample rates: 8000 Hz (3), 16000 Hz (3)",
        "  channels: mono (4), stereo (2)",
        "  length: min 0.500 s, median 1.000 s, max 2.000 s",
        "  extensions: .wav (5), .flac (1)",
    ]
    assert "clips per split and class" in text
    assert "device" not in text  # a folder set has no devices: no device table


def test_a_tau_set_shows_its_devices_and_counts_a_wrong_rate_as_seen(tiny_root: Path, tmp_path: Path) -> None:
    root = _copy(tiny_root, tmp_path)
    _wrong_rate(root / _first_test_wav(root))
    result = check_dataset(root, progress=False)
    assert [p.field for p in result.problems] == ["samplerate"]
    assert result.audio.rates == {SOURCE_SAMPLE_RATE: TINY_CLIPS - 1, 48_000: 1}
    assert result.audio.channels == {1: TINY_CLIPS}
    assert "clips per split and device" in summary(result)


@pytest.mark.parametrize("exists", [False, True], ids=["misspelt", "empty"])
def test_a_missing_or_empty_root_gets_the_fits_message(
    tmp_path: Path, exists: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "my_scnes"
    if exists:
        root.mkdir()
    with pytest.raises(DatasetError) as fit:
        _ = SceneDataModule(root=str(root), cache_dir=str(tmp_path / "cache")).layout  # as the fit reads it
    assert "is missing or empty" in str(fit.value)
    assert run_command(main, ["--data.root", str(root)]) == 1
    assert capsys.readouterr().err.splitlines()[0] == f"error: {fit.value}"
    assert check_dataset(root, progress=False).problems == [
        check_module.Problem(str(root), "root", str(fit.value))
    ]
    assert not (tmp_path / "cache").exists() and root.exists() == exists


# -- damaged tables -----------------------------------------------------------------------------


def _edit_meta(root: Path, edit: Callable[[pd.DataFrame], pd.DataFrame], sep: str = "\t") -> None:
    path = root / "meta.csv"
    frame = edit(_table(path))
    path.unlink()
    frame.to_csv(path, sep=sep, index=False)


def _drop_identifier(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="identifier")


def _unknown_scene(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[3, "scene_label"] = "beach"
    return frame


def _unknown_device(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[3, "source_label"] = "s9"
    return frame


@pytest.mark.parametrize(
    ("edit", "sep", "words"),
    [
        (_drop_identifier, "\t", ["missing column", "identifier"]),
        (lambda frame: frame, ",", ["tab-separated", "filename,scene_label"]),
        (_unknown_scene, "\t", ["unknown scene_label", "'beach'"]),
        (_unknown_device, "\t", ["unknown source_label", "'s9'"]),
    ],
    ids=["missing-column", "comma-separated", "unknown-scene", "unknown-device"],
)
def test_a_broken_meta_csv_is_one_problem_naming_it(
    tiny_root: Path,
    tmp_path: Path,
    edit: Callable[[pd.DataFrame], pd.DataFrame],
    sep: str,
    words: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = _copy(tiny_root, tmp_path)
    _edit_meta(root, edit, sep)
    result = check_dataset(root, progress=False)
    assert len(result.problems) == 1, [str(p) for p in result.problems]
    problem = result.problems[0]
    assert problem.field == "listing" and str(root / "meta.csv") in problem.message
    for word in words:
        assert word in problem.message
    assert result.counts.empty
    assert summary(result) == "no split could be read"
    assert main(["--data.root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "no split could be read" in out and "[listing]" in out


def test_a_split_naming_a_file_absent_from_meta_is_a_split_problem(tiny_root: Path, tmp_path: Path) -> None:
    root = _copy(tiny_root, tmp_path)
    split = root / "evaluation_setup" / "fold1_train.csv"
    frame = _table(split)
    ghost = "audio/airport-lisbon-9-999-a.wav"
    frame.loc[len(frame)] = [ghost, "airport"]
    split.unlink()
    frame.to_csv(split, sep="\t", index=False)
    result = check_dataset(root, progress=False)
    assert len(result.problems) == 1, [str(p) for p in result.problems]
    problem = result.problems[0]
    assert (problem.file, problem.field) == (str(split), "split")
    assert ghost in problem.message and "meta.csv" in problem.message


def test_a_header_only_train_split_is_a_problem(tiny_root: Path, tmp_path: Path, capsys) -> None:
    root = _copy(tiny_root, tmp_path)
    split = root / "evaluation_setup" / "fold1_train.csv"
    header = _table(split).iloc[:0]
    split.unlink()
    header.to_csv(split, sep="\t", index=False)
    result = check_dataset(root, progress=False)
    assert [(p.file, p.field) for p in result.problems] == [(str(split), "split")]
    assert "split 'train' would be empty" in result.problems[0].message
    assert main(["--data.root", str(root)]) == 1
    with pytest.raises(DatasetError, match="split 'train' would be empty"):
        _datamodule(root, tmp_path).prepare_data()


def test_the_progress_bar_counts_files(tiny_root: Path, capsys) -> None:
    check_dataset(tiny_root, progress=True)
    err = capsys.readouterr().err
    assert "360/360" in err and "512" not in err


def test_a_custom_train_split_file_is_checked_and_named(tiny_root: Path, tmp_path: Path) -> None:
    root = _copy(tiny_root, tmp_path)
    subset = tmp_path / "split25.csv"
    frame = _table(root / "evaluation_setup" / "fold1_train.csv").iloc[:20]
    frame.to_csv(subset, sep="\t", index=False)
    result = check_dataset(root, train_split_file=subset, progress=False)
    assert result.ok
    assert result.counts["split"].value_counts()["train"] == 20
    frame.loc[len(frame)] = ["audio/no-such-file.wav", "bus"]
    frame.to_csv(subset, sep="\t", index=False)
    result = check_dataset(root, train_split_file=subset, progress=False)
    assert [(p.file, p.field) for p in result.problems] == [(str(subset), "split")]


# -- the DataModule runs the check --------------------------------------------------------------


def _datamodule(root: Path, tmp_path: Path, **kwargs) -> TAU22DataModule:
    return TAU22DataModule(root=str(root), cache_dir=str(tmp_path / "cache"), num_workers=0, **kwargs)


def test_prepare_data_refuses_a_broken_set_and_names_the_check_tool(tiny_root: Path, tmp_path: Path) -> None:
    root = _copy(tiny_root, tmp_path)
    name = _first_test_wav(root)
    _stereo(root / name)
    with pytest.raises(DatasetError) as excinfo:
        _datamodule(root, tmp_path, check_data=True).prepare_data()
    message = str(excinfo.value)
    assert "1 problem(s)" in message
    assert f"[channels] {root / name}: 2 channels" in message
    assert f"python -m asc_kd.check --data.root {root}" in message
    assert not (tmp_path / "cache").exists()  # refused before any cache was built


def test_prepare_data_names_a_clip_of_another_length_first(tiny_root: Path, tmp_path: Path) -> None:
    root = _copy(tiny_root, tmp_path)
    first = _table(root / "meta.csv")["filename"].iloc[0]
    _ten_seconds(root / first)
    module = SceneDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), num_workers=0)
    with pytest.raises(DatasetError, match=r"2 problem\(s\)") as excinfo:
        module.prepare_data()
    assert str(excinfo.value).splitlines()[1:] == [
        f"  {root} [length]: 1 of 360 clips is 10.000 s, the other 359 are 1.000 s: {first}",
        f"  [length] {root / first}: 441000 samples (10.000 s), expected 44100 (1.000 s)",
    ]
    assert not (tmp_path / "cache").exists()


def test_prepare_data_lists_at_most_ten_problems(tiny_root: Path, tmp_path: Path) -> None:
    root = _copy(tiny_root, tmp_path)
    for name in _table(root / "meta.csv")["filename"].iloc[:12]:
        _missing(root / name)
    with pytest.raises(DatasetError, match=r"12 problem\(s\)") as excinfo:
        _datamodule(root, tmp_path).prepare_data()
    assert str(excinfo.value).count("[exists]") == 10


def test_prepare_data_runs_the_check_when_asked(
    tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def spy(dataset, **kwargs):
        calls.append((dataset.root, kwargs))
        return check_module.CheckResult(pd.DataFrame(), [])

    monkeypatch.setattr(asc_kd.data.datamodule, "check_dataset", spy)  # where the DataModule calls it
    _datamodule(tiny_root, tmp_path, check_data=True, use_cache=False).prepare_data()
    assert [root for root, _ in calls] == [tiny_root]
    assert calls[0][1]["progress"] is False


def test_check_data_false_skips_the_check(
    tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _copy(tiny_root, tmp_path)
    _stereo(root / _first_test_wav(root))

    def refuse(*args, **kwargs):
        raise AssertionError("check_dataset ran although check_data=False")

    monkeypatch.setattr(asc_kd.data.datamodule, "check_dataset", refuse)
    _datamodule(root, tmp_path, check_data=False, use_cache=False).prepare_data()


# -- a large set --------------------------------------------------------------------------------


def test_a_large_linked_set_is_ok_and_counted(tiny_root: Path, tmp_path: Path) -> None:
    n = 5_000
    write_linked(tiny_root, tmp_path / "large", n, progress=False)
    result = check_dataset(tmp_path / "large", progress=False)
    assert result.ok, [str(p) for p in result.problems[:3]]
    assert len(result.counts) == n
    assert result.counts["split"].value_counts().to_dict() == {"train": 3_500, "test": 1_500}
    pd.testing.assert_series_equal(_counts(result), _expected_counts(tmp_path / "large"))
