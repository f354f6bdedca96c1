"""What a scene dataset is, and the interface every on-disk layout implements.

A ``DatasetSpec`` is all the rest of asc_kd knows about a dataset: class names, devices and
their groups, source rate, clip length, split files and metadata columns. A ``Layout`` reads
one kind of dataset from disk (``asc_kd.data.tau``, ``asc_kd.data.folders``) and returns its
spec and its splits as frames. The DataModule exposes the spec, the CLI links it whole into the
task (its ``spec`` argument), and the task keeps it in its checkpoint (``as_dict``, read back with
``from_dict``), so metrics, logits files, int8 artifacts, predict and the tables take classes and
devices from the data or the checkpoint, never from one dataset's module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from asc_kd.core.errors import UserError

#: Columns of every split frame a layout returns. ``target`` and ``device_index`` are -1 where
#: unknown (unlabelled files, datasets without devices); ``recording`` groups the clips of one
#: recording, so splits never put parts of one recording on both sides.
FRAME_COLUMNS = ("filename", "target", "device_index", "recording")


#: Where the demo's synthetic scenes go (``asc_kd.data.synthetic`` writes them). A recipe that
#: asks for synthetic scenes gets them only here; any other root must be asked for on the command
#: line, so a mistyped path never becomes a dataset. Defined here, below the DataModule and the
#: generator, which both read it.
DEMO_ROOT = "data/synthetic"


def is_demo_root(root: str | Path) -> bool:
    """Whether ``root`` is the demo's root (relative to the working directory, as the default)."""
    return Path(root).resolve() == Path(DEMO_ROOT).resolve()


#: DCASE's split files, relative to a dataset root: the TAU layouts have them; a folder
#: dataset may carry the first two to fix its split.
SPLIT_FILES: dict[str, str] = {
    "train": "evaluation_setup/fold1_train.csv",
    "test": "evaluation_setup/fold1_evaluate.csv",
    "predict": "evaluation_setup/fold1_test.csv",
}


class DatasetError(UserError, ValueError):
    """The dataset on disk is not what its layout promises; the message says what to fix.

    ``field`` names the kind of problem (the data check groups by it), ``affected`` every class
    or file it is about (the check counts them and names the first few), and ``option`` the
    ``--data.*`` option that fixes it, where one does.
    """

    def __init__(
        self,
        message: str,
        field: str | None = None,
        affected: Sequence[str] = (),
        option: str | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.affected = tuple(affected)
        self.option = option

    def __reduce__(self):  # keep the fields when raised in a worker process
        return (type(self), (str(self), self.field, self.affected, self.option))


class DatasetProblems(DatasetError):
    """Several problems a layout found in one reading (every class of one recording, and split
    files that list absent clips, say). A fit stops on them with the first one's message; the
    data check (``asc_kd.data.check``) lists ``problems``, each in full."""

    def __init__(self, problems: Sequence[DatasetError]) -> None:
        first = problems[0]
        more = len(problems) - 1
        super().__init__(
            f"{first} (and {more} more problem(s): `asc-kd check` lists them all)",
            first.field,
            first.affected,
            first.option,
        )
        self.problems = list(problems)

    def __reduce__(self):
        return (type(self), (self.problems,))


def raise_problems(problems: Sequence[DatasetError]) -> None:
    """Raise what a check found together: nothing, the one problem, or ``DatasetProblems``."""
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise DatasetProblems(problems)


def counted(items: Sequence[str], noun: str, plural: str | None = None, shown: int = 4) -> str:
    """``4 classes (bus, metro, park, street)``, ``37 files (a.wav, b.wav, c.wav, ...)``: how
    many, and the first few by name (all of them up to ``shown``)."""
    names = list(items) if len(items) <= shown else [*items[: shown - 1], "..."]
    word = noun if len(items) == 1 else plural or f"{noun}s"
    return f"{len(items)} {word} ({', '.join(names)})"


def holds_a_dataset(root: str | Path) -> bool:
    """Whether ``root`` is a folder with something in it (what a layout can then be read from)."""
    root = Path(root)
    return root.is_dir() and any(root.iterdir())


def missing_root_error(root: str | Path) -> DatasetError:
    """The refusal of a root that is missing or empty: the same words in a fit and the check."""
    return DatasetError(
        f"dataset root {root} is missing or empty; put the dataset there (TAU22/TAU20: the "
        "unpacked development set; your own: one folder of audio files per class), or pass "
        "--data.generate_synthetic true to write synthetic scenes there",
        "root",
    )


@dataclass(frozen=True)
class DatasetSpec:
    """Everything about a dataset that models, metrics and outputs depend on.

    Attributes:
        name: layout name (``tau22``, ``tau20``, ``folders``); also names cache folders.
        classes: class names in label order (the order of logits and submission columns).
        devices: recording devices in index order; empty when the dataset has none.
        device_groups: named groups of devices reported together (TAU: real, seen, unseen).
        source_sample_rate: rate every source file has; ``None`` when files may differ.
        clip_seconds: length of every clip as the models receive it.
        mono: every file must be mono (TAU); otherwise channels are mixed down.
        exact_length: every file must last ``clip_seconds`` (TAU); otherwise clips are
            cropped or zero-padded to it after resampling.
        split_files: split name -> file (relative to the root) listing it, where one exists.
        meta_columns: columns the metadata file must have (empty without a metadata file).
        archive: where the dataset is published, for messages about missing files.
    """

    name: str
    classes: tuple[str, ...]
    devices: tuple[str, ...] = ()
    device_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source_sample_rate: int | None = None
    clip_seconds: float = 1.0
    mono: bool = True
    exact_length: bool = True
    split_files: dict[str, str] = field(default_factory=dict)
    meta_columns: tuple[str, ...] = ()
    archive: str | None = None

    def __post_init__(self) -> None:
        if len(set(self.classes)) != len(self.classes) or not self.classes:
            raise DatasetError(f"{self.name}: class names must be unique and non-empty, got {self.classes}")
        unknown = sorted({d for members in self.device_groups.values() for d in members} - set(self.devices))
        if unknown:
            raise DatasetError(f"{self.name}: device group members {unknown} are not devices")

    def as_dict(self) -> dict[str, Any]:
        """Every field as plain data (lists, dicts, numbers): what checkpoints and JSON reports
        hold, since checkpoints are read with ``weights_only=True`` and keep no Python objects."""
        return {
            "name": self.name,
            "classes": list(self.classes),
            "devices": list(self.devices),
            "device_groups": {k: list(v) for k, v in self.device_groups.items()},
            "source_sample_rate": self.source_sample_rate,
            "clip_seconds": self.clip_seconds,
            "mono": self.mono,
            "exact_length": self.exact_length,
            "split_files": dict(self.split_files),
            "meta_columns": list(self.meta_columns),
            "archive": self.archive,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetSpec:
        """The spec ``as_dict`` wrote; fields it lacks take their defaults, unknown keys are refused."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            known = ", ".join(f.name for f in fields(cls))
            raise DatasetError(
                f"dataset spec {data.get('name')!r}: unknown field(s) {unknown}; known: {known}"
            )
        values = dict(data)
        for key in ("classes", "devices", "meta_columns"):
            if key in values:
                values[key] = tuple(values[key])
        if "device_groups" in values:
            values["device_groups"] = {k: tuple(v) for k, v in values["device_groups"].items()}
        return cls(**values)


class Layout(ABC):
    """How one kind of scene dataset lies on disk.

    Subclasses set ``name``, say whether a root holds their layout (``detect``) and read it:
    ``spec`` and ``frames`` (``train``, ``test`` and, where the layout has one, an unlabelled
    ``predict`` listing), each frame with ``FRAME_COLUMNS`` and filenames relative to ``root``.
    Register a new layout in ``asc_kd.data.layouts.LAYOUTS``.
    """

    name: ClassVar[str]

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    @abstractmethod
    def detect(cls, root: Path) -> bool:
        """Whether ``root`` holds a dataset of this layout (cheap: a few file checks)."""

    @property
    @abstractmethod
    def spec(self) -> DatasetSpec:
        """The dataset's spec."""

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in label order: the spec's (a layout may know them before its spec)."""
        return self.spec.classes

    @abstractmethod
    def frames(self) -> dict[str, pd.DataFrame]:
        """Split name -> frame of its clips (``FRAME_COLUMNS``), in the split's own order."""

    def test_split(self) -> str:
        """The test split in words, as the titles of the tables scored on it name it."""
        return f"the test split of the {self.name} dataset at {self.root}"

    def listing(self, split: str) -> pd.DataFrame:
        """One split's frame (for predict: the unlabelled listing), reading no more than needed."""
        frames = self.frames()
        if split not in frames:
            raise DatasetError(f"{self.root} has no {split!r} split")
        return frames[split]

    def length_problems(self, seconds: Mapping[str, float]) -> list[DatasetError]:
        """What is wrong with the clips' lengths together (``seconds``: file -> its length); the
        header check (``asc_kd.data.audio.check_clip_header``) checks each file on its own."""
        return []

    def listed_files(self) -> pd.DataFrame:
        """Every file the dataset lists (what the data check reads)."""
        frames = self.frames()
        return pd.concat(frames.values()).drop_duplicates("filename").reset_index(drop=True)
