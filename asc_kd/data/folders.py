"""Bring your own dataset: one folder per class, any rate, any clip length.

::

    ROOT/<class>/**/<file>.{wav,flac,ogg,mp3,...}         any extension case, any channels
    ROOT/evaluation_setup/fold1_train.csv                   optional: column ``filename``
    ROOT/evaluation_setup/fold1_evaluate.csv                optional: column ``filename``

Class names are the folder names, sorted. Files may have any sample rate (each is resampled
once into the cache) and any channel count (mixed to mono). Clips should share one length;
``clip_seconds`` crops or zero-pads them to a common length when they do not. Without split
files, a seeded split stratified by class holds out ``test_fraction`` of the clips, keeping
every recording on one side: the recording of a file is parsed from its name with
``recording_pattern`` (default: everything before the last ``-`` or ``_`` token, so
``park/rec12-003.wav`` belongs to ``rec12``, and ``birds_00.wav`` ... ``birds_11.wav`` are all
``birds``: a class of one recording is an error that names ``--data.recording_pattern none``,
which makes every file its own recording). Segments of one recording sound alike, so
segments on both sides of a split would inflate the test accuracy. A class folder without
audio, audio directly under ROOT, or fewer than two classes are errors: nothing is dropped
silently. There are no devices, so metrics report overall and per-class numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

import pandas as pd
import soundfile

from asc_kd.data.audio import (
    AUDIO_EXTENSIONS,
    AudioFileError,
    check_clip_header,
    length_disagreement,
    list_audio_files,
    off_the_common_length,
)
from asc_kd.data.spec import SPLIT_FILES, DatasetError, DatasetSpec, Layout, counted, raise_problems
from asc_kd.data.splitting import hold_out

#: The DCASE split files a folder dataset may carry (no evaluation set).
FOLDER_SPLIT_FILES = {split: SPLIT_FILES[split] for split in ("train", "test")}
DEFAULT_RECORDING_PATTERN = r"^(?P<recording>.+)[-_][^-_]+$"


def recording_of(stem: str, pattern: str | None) -> str:
    """The recording a file stem belongs to (the stem itself when the pattern does not match)."""
    if pattern is None or pattern == "none":
        return stem
    match = re.match(pattern, stem)
    return match.group("recording") if match and match.group("recording") else stem


class FolderLayout(Layout):
    """Folder-per-class datasets.

    Args:
        root: folder holding one sub-folder per class.
        clip_seconds: crop or pad every clip to this length; ``None`` requires one common length.
        train_split_file: a split file to use for training instead of the generated split.
        test_fraction: share of each class held out for testing when there are no split files.
        split_seed: seed of the generated split.
        recording_pattern: regular expression with a ``recording`` group, applied to file stems.
    """

    name = "folders"

    def __init__(
        self,
        root: str | Path,
        clip_seconds: float | None = None,
        train_split_file: str | Path | None = None,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        recording_pattern: str | None = DEFAULT_RECORDING_PATTERN,
    ) -> None:
        super().__init__(root)
        self.clip_seconds = clip_seconds
        self.train_split_file = train_split_file
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.recording_pattern = recording_pattern
        if recording_pattern not in (None, "none"):
            compiled = re.compile(recording_pattern)
            if "recording" not in compiled.groupindex:
                raise ValueError(f"recording_pattern {recording_pattern!r} has no (?P<recording>...) group")

    @classmethod
    def detect(cls, root: Path) -> bool:
        if not root.is_dir() or (root / "meta.csv").is_file():
            return False
        return any(d.is_dir() and cls._is_class_dir(d) for d in root.iterdir())

    @staticmethod
    def _is_class_dir(folder: Path) -> bool:
        return not folder.name.startswith(".") and folder.name != "evaluation_setup"

    @cached_property
    def _listing(self) -> pd.DataFrame:
        """Every audio file of every class folder. Nothing is dropped without a word: a class
        folder without audio, audio outside any class folder, or fewer than two classes is an
        error that names the folder or file."""
        if not self.root.is_dir():
            raise DatasetError(f"dataset root {self.root} is not a folder")
        rows, empty = [], []
        for folder in sorted(d for d in self.root.iterdir() if d.is_dir() and self._is_class_dir(d)):
            files, skipped = list_audio_files(folder)
            rows += [(str(f.relative_to(self.root)), folder.name, f.stem) for f in files]
            if not files:
                empty.append((folder, skipped))
        if not rows:
            raise DatasetError(
                f"{self.root} holds no class folders with audio files; expected ROOT/<class>/<file>.wav"
            )
        problems = []
        if empty:
            folder, skipped = empty[0]
            held = f"{len(skipped)} other file(s), e.g. {skipped[0].name}" if skipped else "nothing"
            names = [path.name for path, _ in empty]
            problems.append(
                DatasetError(
                    f"class folder {folder} holds no audio files ({held}; audio is "
                    f"{', '.join(sorted(AUDIO_EXTENSIONS))}); add its audio or move the folder out of "
                    f"{self.root}"
                    + (f"; {counted(names, 'class folder')} hold no audio" if len(empty) > 1 else ""),
                    "listing",
                    names,
                )
            )
        stray, _ = list_audio_files(self.root, recursive=False)
        if stray:
            problems.append(
                DatasetError(
                    f"{stray[0]} is in no class folder ({len(stray)} audio file(s) directly under "
                    f"{self.root}); move it into {self.root}/<class>/ or out of the dataset",
                    "listing",
                    [path.name for path in stray],
                )
            )
        frame = pd.DataFrame(rows, columns=["filename", "label", "stem"])
        classes = sorted(set(frame["label"]))
        if len(classes) < 2:
            problems.append(
                DatasetError(
                    f"{self.root} has a single class folder ({classes[0]}); a scene classifier needs "
                    "at least two classes, one folder of audio files each",
                    "listing",
                    classes,
                )
            )
        raise_problems(problems)
        return frame

    @cached_property
    def classes(self) -> tuple[str, ...]:
        """The class folders that hold audio, sorted: read from the listing alone, so the
        splits are read (and checked) whether or not the clips' lengths agree."""
        return tuple(sorted(set(self._listing["label"])))

    @cached_property
    def _files(self) -> pd.DataFrame:
        """The listing with each file's rate and length, read from the headers (in threads)."""
        frame = self._listing.copy()
        with ThreadPoolExecutor(16) as pool:
            infos = list(pool.map(self._header, frame["filename"]))
        problems = [info for info in infos if isinstance(info, AudioFileError)]
        if problems:
            raise DatasetError(
                f"{len(problems)} audio file(s) under {self.root} cannot be used, first: {problems[0]}; "
                f"`python -m asc_kd.check --data.root {self.root}` lists all"
            )
        frame["samplerate"] = [i.samplerate for i in infos]
        frame["frames"] = [i.frames for i in infos]
        return frame

    def _header(self, name: str) -> soundfile._SoundFileInfo | AudioFileError:
        try:
            return check_clip_header(self.root / name, None, None, mono=False)
        except AudioFileError as err:
            return err

    def length_problems(self, seconds: Mapping[str, float]) -> list[DatasetError]:
        """Clips must share one length unless ``clip_seconds`` crops or pads them: the problem,
        naming the clips off the common length, given each file's length in ``seconds``."""
        if self.clip_seconds is not None:
            return []
        disagreement = length_disagreement(seconds)
        if disagreement is None:
            return []
        return [
            AudioFileError(
                f"{self.root}: clips differ in length: {disagreement}; set data.clip_seconds "
                "to crop or pad them to one length",
                "length",
                off_the_common_length(seconds),
                "--data.clip_seconds",
            )
        ]

    @cached_property
    def spec(self) -> DatasetSpec:
        files = self._files
        rates = set(files["samplerate"])
        seconds = self.clip_seconds
        if seconds is None:
            lengths = dict(zip(files["filename"], files["frames"] / files["samplerate"], strict=True))
            raise_problems(self.length_problems(lengths))
            seconds = round(next(iter(lengths.values())), 3)
        return DatasetSpec(
            name=self.name,
            classes=self.classes,
            source_sample_rate=rates.pop() if len(rates) == 1 else None,
            clip_seconds=float(seconds),
            mono=False,
            exact_length=False,
            split_files={k: v for k, v in FOLDER_SPLIT_FILES.items() if (self.root / v).is_file()},
        )

    def frames(self) -> dict[str, pd.DataFrame]:
        files = self._listing
        classes = self.classes
        frame = pd.DataFrame(
            {
                "filename": files["filename"],
                "target": files["label"].map(classes.index).astype("int64"),
                "device_index": -1,
                "recording": [
                    f"{label}/{recording_of(stem, self.recording_pattern)}"
                    for label, stem in zip(files["label"], files["stem"], strict=True)
                ],
            }
        )
        listed = self._split_files()
        if listed is not None:
            read, problems = {}, []
            for split, path in listed.items():
                try:
                    read[split] = self._listed(frame, path, split)
                except DatasetError as err:
                    problems.append(err)
            raise_problems(problems)
            return read
        raise_problems(self._recording_problems(frame))
        test = hold_out(frame, self.test_fraction, self.split_seed, balance=None, what="generated test split")
        return {
            "train": frame[~test].reset_index(drop=True),
            "test": frame[test].reset_index(drop=True),
        }

    def _split_files(self) -> dict[str, Path] | None:
        """The files listing the train and test splits, or None when the split is generated."""
        listed = {split: self.root / path for split, path in FOLDER_SPLIT_FILES.items()}
        if self.train_split_file is not None:
            listed["train"] = Path(self.train_split_file)
        return listed if all(path.is_file() for path in listed.values()) else None

    def test_split(self) -> str:
        if self._split_files() is not None:
            return f"the test split of the class folders at {self.root} ({FOLDER_SPLIT_FILES['test']})"
        return (
            f"a test split held out from the class folders at {self.root} ({self.test_fraction:.0%} of "
            f"each class's recordings, split seed {self.split_seed})"
        )

    def _recording_problems(self, frame: pd.DataFrame) -> list[DatasetError]:
        """The generated split keeps recordings whole: every class needs two. Every class that
        has fewer is named, classes of one file in one problem, classes of one recording in
        another, with how to get two."""
        single, whole = [], []
        for target, rows in frame.groupby("target", sort=True):
            recordings = sorted(set(rows["recording"]))
            if len(recordings) == 1:
                (single if len(rows) == 1 else whole).append((self.classes[target], len(rows), recordings[0]))
        problems = []
        if single:
            names = [name for name, _, _ in single]
            which = (
                f"class {names[0]!r} of {self.root} has"
                if len(names) == 1
                else f"{counted(names, 'class', 'classes')} of {self.root} have"
            )
            problems.append(
                DatasetError(
                    f"{which} a single file; the generated test split needs at least two per class",
                    "recording",
                    names,
                )
            )
        if whole:
            parsed = (
                " (a name's part before its last - or _)"
                if self.recording_pattern == DEFAULT_RECORDING_PATTERN
                else ""
            )
            names = [name for name, _, _ in whole]
            if len(whole) == 1:
                name, n, recording = whole[0]
                which = f"class {name!r} of {self.root}: its {n} files are all one recording ({recording!r})"
            else:
                shown = ", ".join(repr(recording) for _, _, recording in whole[:3])
                which = (
                    f"{counted(names, 'class', 'classes')} of {self.root}: the files of each are all "
                    f"one recording ({shown}{', ...' if len(whole) > 3 else ''})"
                )
            problems.append(
                DatasetError(
                    f"{which} by data.recording_pattern {self.recording_pattern!r}{parsed}, and a "
                    "recording is never split; if every file is its own recording, pass "
                    "--data.recording_pattern none",
                    "recording",
                    names,
                    "--data.recording_pattern",
                )
            )
        return problems

    def _listed(self, frame: pd.DataFrame, path: Path, split: str) -> pd.DataFrame:
        try:
            listing = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        except (OSError, pd.errors.ParserError) as err:
            raise DatasetError(f"{path}: not a readable split file ({err})") from err
        if "filename" not in listing.columns:
            raise DatasetError(f"{path}: no 'filename' column; found {', '.join(listing.columns)}")
        if listing.empty:
            raise DatasetError(f"{path} lists no clips (only a header); split {split!r} would be empty")
        indexed = frame.set_index("filename", drop=False)
        absent = listing.loc[~listing["filename"].isin(indexed.index), "filename"]
        if len(absent):
            raise AudioFileError(
                f"{path}: {len(absent)} listed file(s) are not audio files in a class folder of "
                f"{self.root}, first {absent.iloc[0]!r}",
                "exists",
                list(absent),
            )
        return indexed.loc[listing["filename"]].reset_index(drop=True)

    def listed_files(self) -> pd.DataFrame:
        """Every audio file in a class folder (what the data check reads)."""
        return self._listing
