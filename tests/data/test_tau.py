"""The TAU readers (TAU22, TAU20) on the synthetic layout, and the errors they give for a broken one."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from asc_kd.data.layouts import detect_layout, make_layout
from asc_kd.data.spec import FRAME_COLUMNS, DatasetError
from asc_kd.data.synthetic import MARKER
from asc_kd.data.tau import (
    DEVICE_GROUPS,
    DEVICES,
    SCENES,
    TAU20,
    TAU22,
    TAU20Layout,
    TAU22Layout,
    device_group,
    read_meta,
    read_split,
    tau_edition,
)

#: The 10-s TAU20 set takes seconds to generate: its tests share one xdist worker.
TAU20_GROUP = pytest.mark.xdist_group(name="tau20")


def _tables(tiny_root: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny set's tables (no audio: the reader never opens it)."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(tiny_root / "meta.csv", root / "meta.csv")
    shutil.copytree(tiny_root / "evaluation_setup", root / "evaluation_setup")
    return root


def _raw(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def _write(frame: pd.DataFrame, path: Path, sep: str = "\t") -> None:
    frame.to_csv(path, sep=sep, index=False)


def _stem(filename: str) -> str:
    """``audio/<scene>-<city>-<loc>-<seg>`` without the device: one recorded segment."""
    return filename.rsplit("-", 1)[0]


def test_label_orders():
    assert SCENES[0] == "airport" and SCENES[-1] == "tram" and len(SCENES) == 10
    assert SCENES == tuple(sorted(SCENES))  # the DCASE submission columns are alphabetical
    assert DEVICES == ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")
    assert sum(DEVICE_GROUPS.values(), ()) == DEVICES
    assert [device_group(d) for d in DEVICES] == ["real"] * 3 + ["seen"] * 3 + ["unseen"] * 3
    with pytest.raises(DatasetError, match="unknown device 'x'"):
        device_group("x")


def test_read_meta_columns_and_codes(tiny_root):
    meta = read_meta(tiny_root)
    raw = _raw(tiny_root / "meta.csv")
    assert list(meta.columns) == [*FRAME_COLUMNS, "scene", "device", "city", "identifier"]
    assert len(meta) == len(raw) == 360
    assert list(meta.index) == list(raw["filename"])
    assert list(meta["scene"]) == list(raw["scene_label"])
    assert list(meta["device"]) == list(raw["source_label"])
    for column in ("target", "device_index"):
        assert meta[column].dtype == "int64"
    # Each filename spells audio/<scene>-<city>-<location>-<segment>-<device>.wav.
    for row in meta.itertuples():
        scene, city, location, _, device = row.filename[len("audio/") : -len(".wav")].rsplit("-", 4)
        assert (scene, city, device) == (row.scene, row.city, row.device)
        assert row.identifier == f"{city}-{location}"
        assert row.target == SCENES.index(scene)
        assert row.device_index == DEVICES.index(device)
        assert row.recording == f"{scene}/{city}-{location}"


def test_train_split_devices(tiny_root):
    train = read_split(tiny_root, "train")
    counts = train["device"].value_counts().to_dict()
    # 8 segments per scene on device a; b, c, s1-s3 each re-record round(8 * 0.25) = 2 of them.
    assert counts == {"a": 80, "b": 20, "c": 20, "s1": 20, "s2": 20, "s3": 20}
    assert not set(train["device"]) & set(DEVICE_GROUPS["unseen"])
    assert train["target"].value_counts().to_dict() == dict.fromkeys(range(10), 18)


def test_test_split_has_every_segment_on_all_devices(tiny_root):
    test = read_split(tiny_root, "test")
    assert len(test) == 10 * 2 * 9
    devices_of = test.groupby(test["filename"].map(_stem))["device"].apply(sorted)
    assert len(devices_of) == 20
    assert all(devices == sorted(DEVICES) for devices in devices_of)
    # Test recordings come from locations the train split never visits.
    train = read_split(tiny_root, "train")
    assert not set(test["identifier"]) & set(train["identifier"])


def test_predict_split_lists_the_test_files(tiny_root):
    predict = read_split(tiny_root, "predict")
    test = read_split(tiny_root, "test")
    assert list(predict["filename"]) == list(test["filename"])
    assert list(predict["target"]) == list(test["target"])


def test_split_order_is_the_files_order(tiny_root, tmp_path):
    listing = _raw(tiny_root / "evaluation_setup" / "fold1_train.csv")
    shuffled = listing.sample(frac=1.0, random_state=0).iloc[:50]
    path = tmp_path / "split50.csv"
    _write(shuffled, path)
    split = read_split(tiny_root, "train", split_file=path)
    assert list(split["filename"]) == list(shuffled["filename"])
    assert list(split["scene"]) == list(shuffled["scene_label"])
    assert list(split.index) == list(range(50))


def test_unknown_split_name(tiny_root):
    with pytest.raises(ValueError, match="split must be one of train, test, predict"):
        read_split(tiny_root, "validation")


def test_layouts_read_the_same_splits(tiny_root):
    layout = make_layout(tiny_root)
    assert isinstance(layout, TAU22Layout) and layout.spec is TAU22
    frames = layout.frames()
    assert list(frames) == ["train", "test", "predict"]
    for split, frame in frames.items():
        assert list(frame["filename"]) == list(read_split(tiny_root, split)["filename"])
        assert set(FRAME_COLUMNS) <= set(frame.columns)


@TAU20_GROUP
def test_tau20_layout_is_detected_by_its_marker_or_its_clip_length(tau20_root, tiny_root, tmp_path):
    assert detect_layout(tau20_root) == "tau20" and detect_layout(tiny_root) == "tau22"
    # Without the generator's marker, in a folder whose name says nothing: the clips' length.
    root = _tables(tau20_root, tmp_path)
    shutil.copytree(tau20_root / "audio", root / "audio", copy_function=os.link)
    assert not (root / MARKER).exists() and tau_edition(root) == "tau20"
    layout = make_layout(tau20_root)
    assert isinstance(layout, TAU20Layout) and layout.spec.clip_seconds == 10.0
    assert layout.spec.classes == TAU20.classes == SCENES
    frames = layout.frames()
    assert len(frames["train"]) == 10 * (1 + 5) and len(frames["test"]) == 10 * 9


# -- which edition: the set's own markers before any clip length --------------------------------


def _tau22_names(root: Path) -> None:
    """Rename every clip as TAU22 names its own: the 1-s clip's index before the device."""
    for path in [root / "meta.csv", *sorted((root / "evaluation_setup").glob("*.csv"))]:
        frame = _raw(path)
        frame["filename"] = [f"{_stem(name)}-0-{name.rsplit('-', 1)[1]}" for name in frame["filename"]]
        _write(frame, path)


def test_tau22_names_say_tau22_without_reading_a_clip(tiny_root, tmp_path):
    root = _tables(tiny_root, tmp_path)  # no audio at all
    _tau22_names(root)
    first = _raw(root / "meta.csv")["filename"].iloc[0]
    assert re.fullmatch(r"audio/[a-z_]+-[a-z]+-\d+-\d+-0-[a-z0-9]+\.wav", first), first
    assert tau_edition(root) == "tau22" and detect_layout(root) == "tau22"


@pytest.mark.parametrize(("year", "edition"), [("2020", "tau20"), ("2022", "tau22")])
def test_the_archive_folder_name_says_the_edition(tiny_root, tmp_path, year, edition):
    root = _tables(tiny_root, tmp_path)  # TAU20's name shape, and no clip to measure
    assert tau_edition(root) is None
    root = root.rename(tmp_path / f"TAU-urban-acoustic-scenes-{year}-mobile-development")
    assert tau_edition(root) == edition and detect_layout(root) == edition


def test_tau22_names_win_over_a_2020_folder_name(tiny_root, tmp_path):
    root = _tables(tiny_root, tmp_path).rename(tmp_path / "TAU-urban-acoustic-scenes-2020-mobile-development")
    _tau22_names(root)
    assert tau_edition(root) == "tau22"


def test_the_generator_s_marker_says_the_layout_before_anything_else(tiny_root, tmp_path):
    root = _tables(tiny_root, tmp_path).rename(tmp_path / "TAU-urban-acoustic-scenes-2022-mobile-development")
    (root / MARKER).write_text(json.dumps({"generator": "asc_kd.data.synthetic", "layout": "tau20"}))
    assert detect_layout(root) == "tau20"
    (root / MARKER).write_text(json.dumps({"linked_from": "elsewhere"}))  # no layout recorded
    assert detect_layout(root) == "tau22"


def test_without_markers_or_readable_clips_a_meta_csv_reads_as_tau22(tiny_root, tmp_path):
    root = _tables(tiny_root, tmp_path)
    assert tau_edition(root) is None
    assert detect_layout(root) == "tau22"  # and its reader then names what is missing


# -- broken tables -----------------------------------------------------------------------------


def test_header_only_meta_is_an_empty_dataset(tiny_root, tmp_path):
    root = _tables(tiny_root, tmp_path)
    _write(_raw(root / "meta.csv").iloc[:0], root / "meta.csv")
    with pytest.raises(DatasetError, match="lists no clips .only a header.; the dataset is empty") as info:
        read_meta(root)
    assert str(root / "meta.csv") in str(info.value)


def test_header_only_split_is_named(tiny_root, tmp_path):
    root = _tables(tiny_root, tmp_path)
    split = root / "evaluation_setup" / "fold1_train.csv"
    _write(_raw(split).iloc[:0], split)
    with pytest.raises(DatasetError, match="split 'train' would be empty") as info:
        read_split(root, "train")
    assert str(split) in str(info.value)


def test_missing_meta(tmp_path):
    with pytest.raises(DatasetError, match="not found") as info:
        read_meta(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "meta.csv") in message
    assert "TAU Urban Acoustic Scenes 2022 Mobile" in message


def test_meta_missing_column(tiny_root, tmp_path):
    root = _tables(tiny_root, tmp_path)
    _write(_raw(root / "meta.csv").drop(columns="identifier"), root / "meta.csv")
    with pytest.raises(DatasetError, match="missing column\\(s\\) identifier") as info:
        read_meta(root)
    assert str(root / "meta.csv") in str(info.value)


def test_meta_comma_separated(tiny_root, tmp_path):
    root = _tables(tiny_root, tmp_path)
    _write(_raw(root / "meta.csv"), root / "meta.csv", sep=",")
    with pytest.raises(DatasetError, match="expected a tab-separated header") as info:
        read_meta(root)
    assert str(root / "meta.csv") in str(info.value)
    assert "filename,scene_label,identifier,source_label" in str(info.value)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("scene_label", "beach", "unknown scene_label 'beach'"),
        ("source_label", "s7", "unknown source_label 's7'"),
        ("identifier", "berlin-1", "identifier city 'berlin'"),
    ],
)
def test_meta_unknown_label(tiny_root, tmp_path, column, value, expected):
    root = _tables(tiny_root, tmp_path)
    meta = _raw(root / "meta.csv")
    meta.loc[5, column] = value
    _write(meta, root / "meta.csv")
    with pytest.raises(DatasetError, match=expected) as info:
        read_meta(root)
    assert str(root / "meta.csv") in str(info.value)


def test_meta_duplicate_filename(tiny_root, tmp_path):
    root = _tables(tiny_root, tmp_path)
    meta = _raw(root / "meta.csv")
    _write(pd.concat([meta, meta.iloc[[3]]]), root / "meta.csv")
    with pytest.raises(DatasetError, match="is listed twice") as info:
        read_meta(root)
    assert meta.loc[3, "filename"] in str(info.value)


def test_split_names_files_absent_from_meta(tiny_root, tmp_path):
    root = _tables(tiny_root, tmp_path)
    split = root / "evaluation_setup" / "fold1_train.csv"
    listing = _raw(split)
    listing.loc[7, "filename"] = "audio/park-paris-0-999-a.wav"
    _write(listing, split)
    with pytest.raises(DatasetError, match="1 file\\(s\\) not in") as info:
        read_split(root, "train")
    message = str(info.value)
    assert str(split) in message
    assert "audio/park-paris-0-999-a.wav" in message


def test_split_scene_disagrees_with_meta(tiny_root, tmp_path):
    root = _tables(tiny_root, tmp_path)
    split = root / "evaluation_setup" / "fold1_evaluate.csv"
    listing = _raw(split)
    name, scene = listing.loc[11, "filename"], listing.loc[11, "scene_label"]
    wrong = SCENES[(SCENES.index(scene) + 1) % len(SCENES)]
    listing.loc[11, "scene_label"] = wrong
    _write(listing, split)
    with pytest.raises(DatasetError, match="disagrees with meta.csv") as info:
        read_split(root, "test")
    message = str(info.value)
    assert str(split) in message
    assert repr(name) in message
    assert f"({wrong!r} vs {scene!r})" in message


def test_split_file_missing(tiny_root, tmp_path):
    root = _tables(tiny_root, tmp_path)
    (root / "evaluation_setup" / "fold1_test.csv").unlink()
    with pytest.raises(DatasetError, match="fold1_test.csv not found"):
        read_split(root, "predict")
