"""TAU Urban Acoustic Scenes 2022 Mobile: the layout, the label orders and the split files.

The development set unpacks to::

    ROOT/meta.csv                         filename, scene_label, identifier, source_label (tabs)
    ROOT/audio/<scene>-<city>-<loc>-<seg>-<device>.wav    1 s, 44.1 kHz, mono, 24 bit
    ROOT/evaluation_setup/fold1_train.csv     filename, scene_label   -> split "train"
    ROOT/evaluation_setup/fold1_evaluate.csv  filename, scene_label   -> split "test"
    ROOT/evaluation_setup/fold1_test.csv      filename                 (same files, no labels)

The DCASE "development-test" split is ``fold1_evaluate.csv``: it has labels and is what every
paper reports (Tables 1 and 2). TAU22 has no separate validation split; like CP-JKU and the
DCASE24 baseline we validate on the same files (see ``TAU22DataModule``). The DCASE24 subsets
(``split5.csv`` ... ``split100.csv``) replace ``fold1_train.csv`` when given by path.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

import pandas as pd

#: Scene classes in the DCASE order: the order of the submission file's probability columns.
SCENES: tuple[str, ...] = (
    "airport",
    "bus",
    "metro",
    "metro_station",
    "park",
    "public_square",
    "shopping_mall",
    "street_pedestrian",
    "street_traffic",
    "tram",
)
#: Recording devices: a, b, c are real phones/recorders, s1-s6 simulated from device a.
DEVICES: tuple[str, ...] = ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")
#: s4-s6 appear only in the test split, so "unseen" measures device generalisation.
DEVICE_GROUPS: dict[str, tuple[str, ...]] = {
    "real": ("a", "b", "c"),
    "seen": ("s1", "s2", "s3"),
    "unseen": ("s4", "s5", "s6"),
}
#: Cities of TAU22 (from the identifier ``<city>-<location>``).
CITIES: tuple[str, ...] = (
    "amsterdam",
    "barcelona",
    "helsinki",
    "lisbon",
    "london",
    "lyon",
    "madrid",
    "milan",
    "paris",
    "prague",
    "stockholm",
    "vienna",
)
SOURCE_SAMPLE_RATE = 44_100
CLIP_SECONDS = 1.0
META_COLUMNS = ("filename", "scene_label", "identifier", "source_label")
OFFICIAL_ARCHIVE = (
    "TAU Urban Acoustic Scenes 2022 Mobile, development dataset (https://zenodo.org/record/6337421)"
)

SplitName = Literal["train", "test", "predict"]
SPLIT_FILES: dict[str, str] = {
    "train": "evaluation_setup/fold1_train.csv",
    "test": "evaluation_setup/fold1_evaluate.csv",
    "predict": "evaluation_setup/fold1_test.csv",
}


class DatasetError(ValueError):
    """The dataset on disk does not have the TAU22 layout; the message says what to fix."""


def device_group(device: str) -> str:
    """``real``, ``seen`` or ``unseen`` for a device label."""
    for group, members in DEVICE_GROUPS.items():
        if device in members:
            return group
    raise DatasetError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")


def _read_table(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetError(
            f"{path} not found; it is part of the {OFFICIAL_ARCHIVE}. "
            "Point data.root at the unpacked development set."
        )
    with path.open(newline="") as handle:
        header = handle.readline()
    if "\t" not in header and len(required) > 1:
        raise DatasetError(
            f"{path}: expected a tab-separated header with columns {', '.join(required)}, "
            f"got {header.strip()!r}"
        )
    frame = pd.read_csv(path, sep="\t", dtype=str, quoting=csv.QUOTE_NONE, keep_default_na=False)
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise DatasetError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(frame.columns)}"
        )
    return frame


def read_meta(root: str | Path) -> pd.DataFrame:
    """Read ``meta.csv`` and add ``device``, ``city`` and the integer codes the models use.

    Returns one row per clip with columns filename, scene, device, city, identifier, target,
    device_index, city_index, indexed by filename.
    """
    path = Path(root) / "meta.csv"
    frame = _read_table(path, META_COLUMNS)
    unknown_scene = sorted(set(frame["scene_label"]) - set(SCENES))
    if unknown_scene:
        raise DatasetError(
            f"{path}: unknown scene_label {unknown_scene[0]!r} (of {len(unknown_scene)} unknown); "
            f"expected one of {', '.join(SCENES)}"
        )
    unknown_device = sorted(set(frame["source_label"]) - set(DEVICES))
    if unknown_device:
        raise DatasetError(
            f"{path}: unknown source_label {unknown_device[0]!r}; expected one of {', '.join(DEVICES)}"
        )
    cities = frame["identifier"].str.split("-", n=1).str[0]
    unknown_city = sorted(set(cities) - set(CITIES))
    if unknown_city:
        raise DatasetError(
            f"{path}: identifier city {unknown_city[0]!r} is not a TAU22 city; "
            f"expected <city>-<location> with city in {', '.join(CITIES)}"
        )
    duplicated = frame["filename"][frame["filename"].duplicated()]
    if len(duplicated):
        raise DatasetError(f"{path}: filename {duplicated.iloc[0]!r} is listed twice")
    out = pd.DataFrame(
        {
            "filename": frame["filename"],
            "scene": frame["scene_label"],
            "device": frame["source_label"],
            "city": cities,
            "identifier": frame["identifier"],
        }
    )
    out["target"] = out["scene"].map(SCENES.index).astype("int64")
    out["device_index"] = out["device"].map(DEVICES.index).astype("int64")
    out["city_index"] = out["city"].map(CITIES.index).astype("int64")
    return out.set_index("filename", drop=False)


def read_split(
    root: str | Path,
    split: SplitName = "train",
    split_file: str | Path | None = None,
    meta: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Rows of ``meta.csv`` listed by a split file, in the split file's order.

    Args:
        root: dataset root holding ``meta.csv`` and ``evaluation_setup/``.
        split: ``train`` (fold1_train), ``test`` (fold1_evaluate, the development-test split)
            or ``predict`` (fold1_test, unlabelled listing of the same files).
        split_file: a different file for the split, e.g. a DCASE24 ``split25.csv`` subset.
        meta: ``read_meta(root)`` when the caller has it already (it is the slow part).
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {', '.join(SPLIT_FILES)}, got {split!r}")
    root = Path(root)
    path = Path(split_file) if split_file is not None else root / SPLIT_FILES[split]
    listing = _read_table(path, ("filename",))
    meta = read_meta(root) if meta is None else meta
    absent = listing.loc[~listing["filename"].isin(meta.index), "filename"]
    if len(absent):
        raise DatasetError(
            f"{path}: {len(absent)} file(s) not in {root / 'meta.csv'}, "
            f"first {absent.iloc[0]!r}; the split and meta.csv come from different datasets"
        )
    if "scene_label" in listing.columns:
        rows = meta.loc[listing["filename"]]
        wrong = rows["scene"].to_numpy() != listing["scene_label"].to_numpy()
        if wrong.any():
            first = listing.loc[wrong, "filename"].iloc[0]
            raise DatasetError(
                f"{path}: scene_label of {first!r} disagrees with meta.csv "
                f"({listing.loc[wrong, 'scene_label'].iloc[0]!r} vs {rows.loc[first, 'scene']!r})"
            )
    return meta.loc[listing["filename"]].reset_index(drop=True)


def list_audio_folder(folder: str | Path) -> pd.DataFrame:
    """Unlabelled wavs of a folder (e.g. the evaluation set's ``audio/``), sorted by name.

    Filenames are relative to the folder's parent, as in TAU22 (``audio/xyz.wav``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder of wav files")
    files = sorted(p for p in folder.rglob("*.wav"))
    if not files:
        raise DatasetError(f"{folder} holds no .wav files")
    names = [str(p.relative_to(folder.parent)) for p in files]
    return pd.DataFrame({"filename": names, "target": -1, "device_index": -1, "city_index": -1})
