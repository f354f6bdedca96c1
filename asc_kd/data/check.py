"""Is this dataset complete and readable? The checks behind ``python -m asc_kd.check``.

Checks the layout's listing (TAU: meta.csv's separator, columns, labels; folders: the class
folders), its split files, and every listed audio file: present, readable, non-empty, at the
expected rate, channel count and length, and free of NaN or infinite samples. Only headers
are read (plus the samples of floating-point files, the only ones that can hold NaN), in
threads, so TAU22's 230,350 files are checked in seconds, not the minutes decoding takes.
``SceneDataModule`` runs the same check before it builds a cache.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
from tqdm.auto import tqdm

from asc_kd.data.audio import AudioFileError, check_clip_header, length_disagreement
from asc_kd.data.layouts import LAYOUTS, make_layout
from asc_kd.data.spec import DatasetError, DatasetSpec, Layout

#: Subtypes that can encode NaN or infinity; their samples are read, not just their header.
FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})
_CHUNK = 512


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the dataset."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        # Messages about a file already name it; others get the file in front.
        if self.file in self.message:
            return f"[{self.field}] {self.message}"
        return f"{self.file} [{self.field}]: {self.message}"


@dataclass
class CheckResult:
    """Clip counts per split x device / class, every problem found, and what was checked."""

    counts: pd.DataFrame
    problems: list[Problem]
    layout: str = ""
    n_files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def check_file(
    path: Path, rate: int | None, n: int | None, mono: bool, archive: str | None
) -> soundfile._SoundFileInfo:
    """Header checks, plus a finiteness check of the samples of floating-point files."""
    info = check_clip_header(path, rate, n, mono, archive)
    if info.subtype in FLOAT_SUBTYPES:
        audio, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
        if not np.isfinite(audio).all():
            bad = int((~np.isfinite(audio)).sum())
            raise AudioFileError(f"{path}: {bad} sample(s) are NaN or infinite", "samples")
    return info


def _check_files(
    paths: list[Path], rate: int | None, n: int | None, mono: bool, archive: str | None
) -> tuple[list[Problem], dict[Path, float]]:
    """The problems of ``paths``, and the length in seconds of each file whose header reads."""
    problems, seconds = [], {}
    for path in paths:
        try:
            info = check_file(path, rate, n, mono, archive)
        except AudioFileError as err:
            problems.append(Problem(str(path), err.field, str(err)))
            if err.field != "length":
                continue
            info = soundfile.info(str(path))  # a wrong length still counts towards the common one
        if info.frames:
            seconds[path] = info.frames / info.samplerate
    return problems, seconds


def check_dataset(
    dataset: Layout | str | Path,
    layout: str = "auto",
    train_split_file: str | Path | None = None,
    threads: int = 16,
    progress: bool = True,
    **layout_options: object,
) -> CheckResult:
    """Check listing, splits and every audio header of a dataset (a root or a ``Layout``)."""
    if not isinstance(dataset, Layout):
        try:
            dataset = make_layout(dataset, layout, train_split_file=train_split_file, **layout_options)
        except DatasetError as err:
            return CheckResult(pd.DataFrame(), [Problem(str(dataset), "layout", str(err))])
    root = dataset.root
    try:
        listing = dataset.listed_files()
    except DatasetError as err:
        return CheckResult(pd.DataFrame(), [Problem(str(root), "listing", str(err))], dataset.name)
    template = getattr(dataset, "template", None)  # TAU: the fixed spec, known without reading audio
    rate = template.source_sample_rate if template else None
    n = round(rate * template.clip_seconds) if template and rate and template.exact_length else None
    mono = template.mono if template else False
    archive = template.archive if template else None
    paths = [root / name for name in listing["filename"]]
    chunks = [paths[i : i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    problems: list[Problem] = []
    seconds: dict[str, float] = {}
    bar = tqdm(total=len(paths), desc="checking audio headers", unit="file", disable=not progress)
    with ThreadPoolExecutor(threads) as pool:
        jobs = [pool.submit(_check_files, chunk, rate, n, mono, archive) for chunk in chunks]
        for chunk, job in zip(chunks, jobs, strict=True):
            found, lengths = job.result()
            problems.extend(found)
            seconds.update((str(path.relative_to(root)), value) for path, value in lengths.items())
            bar.update(len(chunk))
    bar.close()
    if n is not None:  # every clip must have the layout's length: first say which ones differ
        problems[:0] = _length_problems(root, seconds, template)
    counts = pd.DataFrame(columns=["split", "device", "class"])
    if not problems or template is not None:
        try:
            spec = dataset.spec
            frames = dataset.frames()
            for split, path in spec.split_files.items():
                if split not in frames and not (root / path).exists():
                    problems.append(Problem(str(root / path), "split", f"{root / path} not found"))
            rows = []
            for split, frame in frames.items():
                if split == "predict":
                    continue  # fold1_test.csv lists the test files again, without labels
                devices = [spec.devices[i] if i >= 0 else "-" for i in frame["device_index"]]
                classes = [spec.classes[i] if i >= 0 else "-" for i in frame["target"]]
                rows.append(pd.DataFrame({"split": split, "device": devices, "class": classes}))
            if rows:
                counts = pd.concat(rows, ignore_index=True)
        except DatasetError as err:
            field = getattr(err, "field", "split")  # a folder set's clips of several lengths: "length"
            problems.append(Problem(_file_named(str(err), dataset), field, str(err)))
    return CheckResult(counts, problems, dataset.name, len(paths))


def _length_problems(root: Path, seconds: dict[str, float], template: DatasetSpec) -> list[Problem]:
    """One problem naming the clips whose length differs from most clips', with the counts.

    Each wrong clip is a problem of its own too, but when most clips are wrong (a TAU22 set
    read as TAU20), those lines blame the good clips; this one names the odd ones out.
    """
    message = length_disagreement(seconds)
    if message is None:
        return []
    common = Counter(round(value, 3) for value in seconds.values()).most_common(1)[0][0]
    if abs(common - template.clip_seconds) > 1e-3:
        message += f"; the {template.name} layout expects {template.clip_seconds:.3f} s"
        fits = [
            name
            for name, layout in LAYOUTS.items()
            if getattr(layout, "template", None) and abs(layout.template.clip_seconds - common) < 1e-3
        ]
        if fits:
            message += f", the {fits[0]} layout {common:.3f} s: set data.layout {fits[0]}"
    return [Problem(str(root), "length", message)]


def _file_named(message: str, dataset: Layout) -> str:
    """The split or metadata file a message is about: the first listed path it names."""
    try:
        spec = getattr(dataset, "template", None) or dataset.spec
    except DatasetError:  # the spec itself is what failed (a folder set's clips of several lengths)
        return str(dataset.root)
    candidates = [dataset.root / path for path in spec.split_files.values()] + [dataset.root / "meta.csv"]
    extra = getattr(dataset, "train_split_file", None)
    if extra:
        candidates.append(Path(extra))
    named = [str(path) for path in candidates if str(path) in message]
    return min(named, key=lambda path: (message.index(path), -len(path))) if named else str(dataset.root)


def summary(result: CheckResult) -> str:
    """Clips per split and device, and per split and class, as text tables."""
    if result.counts.empty:
        return "no split could be read"
    by_device = result.counts.pivot_table(index="split", columns="device", aggfunc="size", fill_value=0)
    by_class = result.counts.pivot_table(index="split", columns="class", aggfunc="size", fill_value=0)
    return f"clips per split and device:\n{by_device}\n\nclips per split and class:\n{by_class.T}"
