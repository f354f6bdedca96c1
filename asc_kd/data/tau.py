"""TAU Urban Acoustic Scenes Mobile (2022: 1-s clips; 2020: 10-s clips): specs and readers.

Both development sets unpack to the same layout::

    ROOT/meta.csv                         filename, scene_label, identifier, source_label (tabs)
    ROOT/audio/<scene>-<city>-<loc>-...-<device>.wav      44.1 kHz, mono, 24 bit
    ROOT/evaluation_setup/fold1_train.csv     filename, scene_label   -> split "train"
    ROOT/evaluation_setup/fold1_evaluate.csv  filename, scene_label   -> split "test"
    ROOT/evaluation_setup/fold1_test.csv      filename                 (same files, no labels)

TAU22 clips are 1 s, TAU20 clips 10 s; scenes, devices and cities are the same. The DCASE
"development-test" split is ``fold1_evaluate.csv``: it has labels and is what every paper
reports (Tables 1 and 2). Neither set has a validation split; ``SceneDataModule`` can hold
one out of fold1_train by recording (``validation="holdout"``). The DCASE24 subsets
(``split5.csv`` ... ``split100.csv``) replace ``fold1_train.csv`` when given by path.

This is the only module that knows TAU's labels; everything else reads them from the spec.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import ClassVar, Literal

import pandas as pd
import soundfile

from asc_kd.data.spec import SPLIT_FILES, DatasetError, DatasetSpec, Layout, raise_problems

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
#: Cities of TAU22 and TAU20 (from the identifier ``<city>-<location>``).
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
META_COLUMNS = ("filename", "scene_label", "identifier", "source_label")
SplitName = Literal["train", "test", "predict"]

TAU22 = DatasetSpec(
    name="tau22",
    classes=SCENES,
    devices=DEVICES,
    device_groups=DEVICE_GROUPS,
    source_sample_rate=SOURCE_SAMPLE_RATE,
    clip_seconds=1.0,
    split_files=SPLIT_FILES,
    meta_columns=META_COLUMNS,
    archive="TAU Urban Acoustic Scenes 2022 Mobile, development dataset (https://zenodo.org/record/6337421)",
)
TAU20 = DatasetSpec(
    name="tau20",
    classes=SCENES,
    devices=DEVICES,
    device_groups=DEVICE_GROUPS,
    source_sample_rate=SOURCE_SAMPLE_RATE,
    clip_seconds=10.0,
    split_files=SPLIT_FILES,
    meta_columns=META_COLUMNS,
    archive="TAU Urban Acoustic Scenes 2020 Mobile, development dataset (https://zenodo.org/record/3819968)",
)


def device_group(device: str) -> str:
    """``real``, ``seen`` or ``unseen`` for a TAU device label."""
    for group, members in DEVICE_GROUPS.items():
        if device in members:
            return group
    raise DatasetError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")


def _read_table(path: Path, required: tuple[str, ...], archive: str | None) -> pd.DataFrame:
    if not path.is_file():
        where = f"; it is part of the {archive}" if archive else ""
        raise DatasetError(f"{path} not found{where}. Point data.root at the unpacked development set.")
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


def read_meta(root: str | Path, spec: DatasetSpec = TAU22) -> pd.DataFrame:
    """Read ``meta.csv`` and add ``device``, ``city`` and the integer codes the models use.

    Returns one row per clip, indexed by filename, with the frame columns of
    ``asc_kd.data.spec.FRAME_COLUMNS`` plus scene, device, city and identifier.
    """
    path = Path(root) / "meta.csv"
    frame = _read_table(path, META_COLUMNS, spec.archive)
    if frame.empty:
        raise DatasetError(f"{path} lists no clips (only a header); the dataset is empty")
    unknown_scene = sorted(set(frame["scene_label"]) - set(spec.classes))
    if unknown_scene:
        raise DatasetError(
            f"{path}: unknown scene_label {unknown_scene[0]!r} (of {len(unknown_scene)} unknown); "
            f"expected one of {', '.join(spec.classes)}"
        )
    unknown_device = sorted(set(frame["source_label"]) - set(spec.devices))
    if unknown_device:
        raise DatasetError(
            f"{path}: unknown source_label {unknown_device[0]!r}; expected one of {', '.join(spec.devices)}"
        )
    cities = frame["identifier"].str.split("-", n=1).str[0]
    unknown_city = sorted(set(cities) - set(CITIES))
    if unknown_city:
        raise DatasetError(
            f"{path}: identifier city {unknown_city[0]!r} is not a TAU city; "
            f"expected <city>-<location> with city in {', '.join(CITIES)}"
        )
    duplicated = frame["filename"][frame["filename"].duplicated()]
    if len(duplicated):
        raise DatasetError(f"{path}: filename {duplicated.iloc[0]!r} is listed twice")
    out = pd.DataFrame(
        {
            "filename": frame["filename"],
            "target": frame["scene_label"].map(spec.classes.index).astype("int64"),
            "device_index": frame["source_label"].map(spec.devices.index).astype("int64"),
            # A location's segments of one scene are one recording; the identifier alone
            # (<city>-<location>) repeats across scenes.
            "recording": frame["scene_label"] + "/" + frame["identifier"],
            "scene": frame["scene_label"],
            "device": frame["source_label"],
            "city": cities,
            "identifier": frame["identifier"],
        }
    )
    return out.set_index("filename", drop=False)


def read_split(
    root: str | Path,
    split: SplitName = "train",
    split_file: str | Path | None = None,
    meta: pd.DataFrame | None = None,
    spec: DatasetSpec = TAU22,
) -> pd.DataFrame:
    """Rows of ``meta.csv`` listed by a split file, in the split file's order.

    Args:
        root: dataset root holding ``meta.csv`` and ``evaluation_setup/``.
        split: ``train`` (fold1_train), ``test`` (fold1_evaluate, the development-test split)
            or ``predict`` (fold1_test, unlabelled listing of the same files).
        split_file: a different file for the split, e.g. a DCASE24 ``split25.csv`` subset.
        meta: ``read_meta(root)`` when the caller has it already (it is the slow part).
        spec: ``TAU22`` or ``TAU20``.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {', '.join(SPLIT_FILES)}, got {split!r}")
    root = Path(root)
    path = Path(split_file) if split_file is not None else root / SPLIT_FILES[split]
    listing = _read_table(path, ("filename",), spec.archive)
    if listing.empty:
        raise DatasetError(f"{path} lists no clips (only a header); split {split!r} would be empty")
    meta = read_meta(root, spec) if meta is None else meta
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


#: The folder the Zenodo archives unpack to, which names the edition.
ARCHIVE_FOLDER = re.compile(r"TAU-urban-acoustic-scenes-(?P<year>20\d\d)-mobile", re.IGNORECASE)
#: The edition each archive year holds.
ARCHIVE_YEARS = {"2022": "tau22", "2020": "tau20"}
#: Clips whose names and lengths detection reads, spread evenly over meta.csv.
DETECTION_SAMPLE = 32


def _is_tau22_name(filename: str) -> bool:
    """TAU22 cut each 10-s TAU20 segment into ten 1-s clips and numbers them in the name:
    ``airport-lisbon-1000-40000-0-a.wav`` (scene, city, location, segment, clip, device) where
    TAU20 has ``airport-lisbon-1000-40000-a.wav``."""
    parts = PurePosixPath(filename).stem.split("-")
    return len(parts) == 6 and all(part.isdigit() for part in parts[2:5])


def _sampled_names(root: Path) -> list[str]:
    """Up to ``DETECTION_SAMPLE`` filenames of meta.csv, evenly spread from its first to its last."""
    with (root / "meta.csv").open(newline="") as handle:
        lines = [line for line in handle.read().splitlines()[1:] if line.strip()]
    if not lines:
        return []
    step = max(1, len(lines) // DETECTION_SAMPLE)
    picked = [*lines[::step][: DETECTION_SAMPLE - 1], lines[-1]]
    return list(dict.fromkeys(line.split("\t", 1)[0].strip() for line in picked))


def _common_seconds(root: Path, names: list[str]) -> float | None:
    """The length most of the named clips have, from their headers; None when none can be read."""
    lengths: Counter[float] = Counter()
    for name in names:
        try:
            info = soundfile.info(str(root / name))
        except (OSError, RuntimeError, soundfile.LibsndfileError):
            continue
        if info.frames:
            lengths[round(info.frames / info.samplerate, 1)] += 1
    return lengths.most_common(1)[0][0] if lengths else None


def tau_edition(root: str | Path) -> str | None:
    """``tau22`` or ``tau20`` for a root with a meta.csv: the set's own markers first, its clip
    lengths only when they say nothing, and None when nothing does.

    The markers: meta.csv's names (TAU22's number each 1-s clip, ``_is_tau22_name``), then the
    folder's name as the archives unpack (``TAU-urban-acoustic-scenes-2022-mobile-development``).
    Both editions have the same columns and split files. Lengths come last, and from the length
    most of ``DETECTION_SAMPLE`` clips spread over meta.csv share: one odd clip, first or not,
    cannot turn a TAU22 set into TAU20 (the data check names it instead).
    """
    root = Path(root)
    try:
        names = _sampled_names(root)
    except (OSError, UnicodeDecodeError):
        return None
    if names and sum(map(_is_tau22_name, names)) * 2 > len(names):
        return "tau22"
    folder = ARCHIVE_FOLDER.search(root.resolve().name)
    if folder and folder["year"] in ARCHIVE_YEARS:
        return ARCHIVE_YEARS[folder["year"]]
    seconds = _common_seconds(root, names)
    for edition in (TAU22, TAU20):
        if seconds is not None and abs(seconds - edition.clip_seconds) < 0.5:
            return edition.name
    return None


class TAULayout(Layout):
    """TAU Urban Acoustic Scenes Mobile: ``meta.csv`` plus the fold1 split files.

    Args:
        root: the unpacked development set.
        train_split_file: replaces fold1_train.csv, e.g. a DCASE24 ``split25.csv``.
    """

    template: ClassVar[DatasetSpec]

    def __init__(self, root: str | Path, train_split_file: str | Path | None = None) -> None:
        super().__init__(root)
        self.train_split_file = train_split_file

    @property
    def spec(self) -> DatasetSpec:
        return self.template

    @classmethod
    def detect(cls, root: Path) -> bool:
        return (root / "meta.csv").is_file() and tau_edition(root) == cls.name

    def frames(self) -> dict[str, pd.DataFrame]:
        meta = read_meta(self.root, self.spec)  # read once: it is the slow part (230k rows)
        splits: list[SplitName] = ["train", "test"]
        if (self.root / SPLIT_FILES["predict"]).is_file():
            splits.append("predict")
        frames, problems = {}, []
        for split in splits:  # every split file is read, so that each one's problem is named
            split_file = self.train_split_file if split == "train" else None
            try:
                frames[split] = read_split(self.root, split, split_file, meta, self.spec)
            except DatasetError as err:
                problems.append(err)
        raise_problems(problems)
        return frames

    def test_split(self) -> str:
        return f"the {self.name.upper()} development-test split ({SPLIT_FILES['test']})"

    def listing(self, split: str) -> pd.DataFrame:
        """One split file's clips; for ``predict`` the audio of other splits need not be there."""
        if split not in SPLIT_FILES:
            raise DatasetError(f"{self.root} has no {split!r} split; TAU has {', '.join(SPLIT_FILES)}")
        split_file = self.train_split_file if split == "train" else None
        return read_split(self.root, split, split_file, spec=self.spec)

    def listed_files(self) -> pd.DataFrame:
        """Every clip of meta.csv (what the data check reads)."""
        return read_meta(self.root, self.spec).reset_index(drop=True)


class TAU22Layout(TAULayout):
    """TAU Urban Acoustic Scenes 2022 Mobile: 1-s clips."""

    name = "tau22"
    template = TAU22


class TAU20Layout(TAULayout):
    """TAU Urban Acoustic Scenes 2020 Mobile: 10-s clips."""

    name = "tau20"
    template = TAU20
