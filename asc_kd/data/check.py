"""Is this dataset complete and readable? The checks behind ``python -m asc_kd.check``.

Checks the layout's listing (TAU: meta.csv's separator, columns, labels; folders: the class
folders), its split files, and every listed audio file: present, readable, non-empty, at the
expected rate, channel count and length, and free of NaN or infinite samples. Only headers
are read (plus the samples of floating-point files, the only ones that can hold NaN), in
threads, so TAU22's 230,350 files are checked in seconds, not the minutes decoding takes.
``SceneDataModule`` runs the same check before it builds a cache.

The checks are the layouts' own, the ones a fit runs: a layout's check names every class or file
it affects (``DatasetError.affected``) and raises what it found together
(``asc_kd.data.spec.DatasetProblems``); here each is a ``Problem``, and every stage that can run
does, whatever the one before found, so one pass lists them all. ``AudioSeen`` is what the
headers said (rates, channels, lengths) and the listed files' extensions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import pandas as pd
import soundfile
from tqdm.auto import tqdm

from asc_kd.data.audio import AudioFileError, check_clip_header, length_disagreement, off_the_common_length
from asc_kd.data.layouts import LAYOUTS, make_layout
from asc_kd.data.spec import (
    SPLIT_FILES,
    DatasetError,
    DatasetProblems,
    DatasetSpec,
    Layout,
    counted,
    holds_a_dataset,
    missing_root_error,
)

#: Subtypes that can encode NaN or infinity; their samples are read, not just their header.
FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})
_CHUNK = 512


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the dataset.

    ``affected`` holds every class or file it is about (the message counts them and names the
    first few); ``option`` is the ``--data.*`` option that fixes it, where one does;
    ``one_file`` marks the header check's problems of one audio file, which the command counts
    by ``field`` (``grouped``).
    """

    file: str
    field: str
    message: str
    affected: tuple[str, ...] = ()
    option: str | None = None
    one_file: bool = False

    def __str__(self) -> str:
        # Messages about a file already name it; others get the file in front.
        if self.file in self.message:
            return f"[{self.field}] {self.message}"
        return f"{self.file} [{self.field}]: {self.message}"


@dataclass
class AudioSeen:
    """What the check saw of the audio: extensions of the listed files, and the rates, channel
    counts and lengths in the headers it could read."""

    extensions: Counter[str] = field(default_factory=Counter)
    rates: Counter[int] = field(default_factory=Counter)
    channels: Counter[int] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, names: list[str], headers: list[soundfile._SoundFileInfo]) -> AudioSeen:
        return cls(
            Counter(Path(name).suffix.lower() or "(none)" for name in names),
            Counter(info.samplerate for info in headers),
            Counter(info.channels for info in headers),
            [info.frames / info.samplerate for info in headers],
        )

    def __str__(self) -> str:
        n = sum(self.extensions.values())
        lines = [f"audio: {n} files listed, {len(self.seconds)} with a readable header"]
        if self.seconds:
            lines += [
                "  sample rates: " + _tally(sorted(self.rates.items()), lambda rate: f"{rate} Hz"),
                "  channels: " + _tally(sorted(self.channels.items()), _channels),
                f"  length: min {min(self.seconds):.3f} s, median {median(self.seconds):.3f} s, "
                f"max {max(self.seconds):.3f} s",
            ]
        lines.append("  extensions: " + _tally(self.extensions.most_common(), str))
        return "\n".join(lines)


def _channels(count: int) -> str:
    return {1: "mono", 2: "stereo"}.get(count, f"{count} channels")


def _tally(counts: list[tuple[Any, int]], name: Callable[[Any], str]) -> str:
    """``44100 Hz (30), 48000 Hz (10)``."""
    return ", ".join(f"{name(value)} ({n})" for value, n in counts)


@dataclass
class CheckResult:
    """Clip counts per split x device / class, every problem found, and what was checked."""

    counts: pd.DataFrame
    problems: list[Problem]
    layout: str = ""
    n_files: int = 0
    audio: AudioSeen | None = None

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


#: Problems of a file whose header reads: it still counts in what the check saw.
_HEADER_READ = frozenset({"samplerate", "channels", "length", "samples"})


def _check_files(
    root: Path, names: list[str], rate: int | None, n: int | None, mono: bool, archive: str | None
) -> tuple[list[Problem], dict[str, soundfile._SoundFileInfo]]:
    """The problems of the files ``names`` under ``root``, and the header of each that reads."""
    problems, headers = [], {}
    for name in names:
        path = root / name
        try:
            info = check_file(path, rate, n, mono, archive)
        except AudioFileError as err:
            problems.append(Problem(str(path), err.field, str(err), (name,), one_file=True))
            if err.field not in _HEADER_READ:
                continue
            info = soundfile.info(str(path))  # a wrong rate or length still counts in what was seen
        headers[name] = info
    return problems, headers


def _problems(error: DatasetError, field: str, file: Callable[[str], str]) -> list[Problem]:
    """A layout's error as problems, one per problem it holds (``DatasetProblems``), each with
    its own field (else ``field``), what it affects and its option; ``file`` names the file a
    message is about."""
    errors = error.problems if isinstance(error, DatasetProblems) else [error]
    return [Problem(file(str(e)), e.field or field, str(e), e.affected, e.option) for e in errors]


def check_dataset(
    dataset: Layout | str | Path,
    layout: str = "auto",
    train_split_file: str | Path | None = None,
    threads: int = 16,
    progress: bool = True,
    **layout_options: object,
) -> CheckResult:
    """Check listing, splits and every audio header of a dataset (a root or a ``Layout``).

    Every problem is found in one pass: each stage that does not need the one before to
    succeed runs whatever that one found (clips of several lengths do not hide a split
    problem), and a layout's check names every class or file it affects.
    """
    if not isinstance(dataset, Layout):
        if not holds_a_dataset(dataset):
            return CheckResult(
                pd.DataFrame(), [Problem(str(dataset), "root", str(missing_root_error(dataset)))]
            )
        try:
            dataset = make_layout(dataset, layout, train_split_file=train_split_file, **layout_options)
        except DatasetError as err:
            return CheckResult(pd.DataFrame(), _problems(err, "layout", lambda _: str(dataset)))
    root = dataset.root
    try:
        listing = dataset.listed_files()
    except DatasetError as err:
        return CheckResult(pd.DataFrame(), _problems(err, "listing", lambda _: str(root)), dataset.name)
    template = getattr(dataset, "template", None)  # TAU: the fixed spec, known without reading audio
    rate = template.source_sample_rate if template else None
    n = round(rate * template.clip_seconds) if template and rate and template.exact_length else None
    mono = template.mono if template else False
    archive = template.archive if template else None
    names = list(listing["filename"])
    chunks = [names[i : i + _CHUNK] for i in range(0, len(names), _CHUNK)]
    problems: list[Problem] = []
    headers: dict[str, soundfile._SoundFileInfo] = {}
    bar = tqdm(total=len(names), desc="checking audio headers", unit="file", disable=not progress)
    with ThreadPoolExecutor(threads) as pool:
        jobs = [pool.submit(_check_files, root, chunk, rate, n, mono, archive) for chunk in chunks]
        for chunk, job in zip(chunks, jobs, strict=True):
            found, read = job.result()
            problems.extend(found)
            headers.update(read)
            bar.update(len(chunk))
    bar.close()
    audio = AudioSeen.of(names, list(headers.values()))
    seconds = {name: info.frames / info.samplerate for name, info in headers.items() if info.frames}
    if n is not None:  # every clip must have the layout's length: first say which ones differ
        problems[:0] = _length_problems(root, seconds, template)
    problems[:0] = [
        p for e in dataset.length_problems(seconds) for p in _problems(e, "length", lambda _: str(root))
    ]
    counts = pd.DataFrame(columns=["split", "device", "class"])
    try:
        spec = dataset.spec
    except DatasetError as err:  # a folder set's unreadable clips or lengths, named above
        spec = None
        if not problems:
            problems += _problems(err, "spec", lambda _: str(root))
    try:
        frames = dataset.frames()
    except DatasetError as err:
        problems += _problems(err, "split", lambda message: _file_named(message, dataset))
    else:
        for split, path in (spec.split_files if spec else {}).items():
            if split not in frames and not (root / path).exists():
                problems.append(Problem(str(root / path), "split", f"{root / path} not found"))
        devices = spec.devices if spec else ()
        rows = []
        for split, frame in frames.items():
            if split == "predict":
                continue  # fold1_test.csv lists the test files again, without labels
            rows.append(
                pd.DataFrame(
                    {
                        "split": split,
                        "device": [devices[i] if i >= 0 else "-" for i in frame["device_index"]],
                        "class": [dataset.classes[i] if i >= 0 else "-" for i in frame["target"]],
                    }
                )
            )
        if rows:
            counts = pd.concat(rows, ignore_index=True)
    return CheckResult(counts, problems, dataset.name, len(names), audio)


def _length_problems(root: Path, seconds: dict[str, float], template: DatasetSpec) -> list[Problem]:
    """One problem naming the clips whose length differs from most clips', with the counts.

    Each wrong clip is a problem of its own too, but when most clips are wrong (a TAU22 set
    read as TAU20), those lines blame the good clips; this one names the odd ones out.
    """
    message = length_disagreement(seconds)
    if message is None:
        return []
    common = Counter(round(value, 3) for value in seconds.values()).most_common(1)[0][0]
    option = None
    if abs(common - template.clip_seconds) > 1e-3:
        message += f"; the {template.name} layout expects {template.clip_seconds:.3f} s"
        fits = [
            name
            for name, layout in LAYOUTS.items()
            if getattr(layout, "template", None) and abs(layout.template.clip_seconds - common) < 1e-3
        ]
        if fits:
            message += f", the {fits[0]} layout {common:.3f} s: set data.layout {fits[0]}"
            option = "--data.layout"
    return [Problem(str(root), "length", message, tuple(off_the_common_length(seconds)), option)]


def _file_named(message: str, dataset: Layout) -> str:
    """The split or metadata file a message is about: the first listed path it names."""
    candidates = [dataset.root / path for path in SPLIT_FILES.values()] + [dataset.root / "meta.csv"]
    extra = getattr(dataset, "train_split_file", None)
    if extra:
        candidates.append(Path(extra))
    named = [str(path) for path in candidates if str(path) in message]
    return min(named, key=lambda path: (message.index(path), -len(path))) if named else str(dataset.root)


def summary(result: CheckResult) -> str:
    """What the check saw of the audio, then clips per split, per split and device (for a
    dataset with devices) and per split and class, as text tables."""
    parts = [str(result.audio)] if result.audio is not None else []
    if result.counts.empty:
        return "\n\n".join([*parts, "no split could be read"])
    sizes = result.counts["split"].value_counts(sort=False)
    parts.append("clips per split: " + ", ".join(f"{split} {n}" for split, n in sizes.items()))
    if (result.counts["device"] != "-").any():
        by_device = result.counts.pivot_table(index="split", columns="device", aggfunc="size", fill_value=0)
        parts.append(f"clips per split and device:\n{by_device}")
    by_class = result.counts.pivot_table(index="split", columns="class", aggfunc="size", fill_value=0)
    parts.append(f"clips per split and class:\n{by_class.T}")
    return "\n\n".join(parts)


def grouped(problems: list[Problem], shown: int = 4) -> list[str]:
    """One line per problem, the header check's problems of single files merged by field
    (``[channels] 37 files (a.wav, b.wav, c.wav, ...), the first: ...``); a problem that an
    option fixes names it."""
    lines: list[str | list[Problem]] = []
    by_field: dict[str, list[Problem]] = {}
    for problem in problems:
        if not problem.one_file:
            lines.append(f"{problem} (fix: {problem.option})" if problem.option else str(problem))
        elif problem.field in by_field:
            by_field[problem.field].append(problem)
        else:
            by_field[problem.field] = [problem]
            lines.append(by_field[problem.field])
    return [line if isinstance(line, str) else _merged(line, shown) for line in lines]


def _merged(same: list[Problem], shown: int) -> str:
    if len(same) == 1:
        return str(same[0])
    names = [problem.affected[0] for problem in same]
    return f"[{same[0].field}] {counted(names, 'file', shown=shown)}, the first: {same[0].message}"
