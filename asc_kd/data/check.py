"""``python -m asc_kd.data.check ROOT``: is this a complete, readable TAU22 development set?

Checks meta.csv (separator, columns, scene and device labels), the split files, and every
listed wav: present, readable, mono, at the expected rate and length. Only headers are read,
in parallel threads, so the full 230,350-file set is checked in seconds, not the minutes that
decoding takes. Prints a summary (clips per split, device and scene) and one line per problem
(file, field, what was expected); exits non-zero on any problem. ``TAU22DataModule`` runs the
same check before it builds a cache.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from asc_kd.data.audio import AudioFileError, check_clip_header
from asc_kd.data.tau22 import (
    CLIP_SECONDS,
    OFFICIAL_ARCHIVE,
    SOURCE_SAMPLE_RATE,
    SPLIT_FILES,
    DatasetError,
    read_meta,
    read_split,
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the dataset."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file} [{self.field}]: {self.message}"


@dataclass
class CheckResult:
    """Clip counts per split x device / scene, and every problem found."""

    counts: pd.DataFrame
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_files(paths: list[Path], rate: int, n: int) -> list[Problem]:
    problems = []
    for path in paths:
        try:
            check_clip_header(path, rate, n)
        except AudioFileError as err:
            problems.append(Problem(str(path), err.field, str(err)))
    return problems


def check_dataset(
    root: str | Path,
    source_rate: int = SOURCE_SAMPLE_RATE,
    clip_seconds: float = CLIP_SECONDS,
    train_split_file: str | Path | None = None,
    threads: int = 16,
    progress: bool = True,
) -> CheckResult:
    """Check layout, labels and every wav header of a TAU22-layout dataset."""
    root = Path(root)
    problems: list[Problem] = []
    try:
        meta = read_meta(root)
    except DatasetError as err:
        return CheckResult(pd.DataFrame(), [Problem(str(root / "meta.csv"), "meta.csv", str(err))])
    frames = {}
    for split in ("train", "test", "predict"):
        split_file = train_split_file if split == "train" else None
        try:
            frames[split] = read_split(root, split, split_file, meta=meta)
        except DatasetError as err:
            where = split_file or root / SPLIT_FILES[split]
            problems.append(Problem(str(where), "split", str(err)))
    frames.pop("predict", None)  # fold1_test.csv lists the test files again, without labels
    n = round(source_rate * clip_seconds)
    paths = [root / name for name in meta["filename"]]
    chunks = [paths[i : i + 512] for i in range(0, len(paths), 512)]
    bar = tqdm(total=len(paths), desc="checking wav headers", unit="file", disable=not progress)
    with ThreadPoolExecutor(threads) as pool:
        for found in pool.map(_check_files, chunks, [source_rate] * len(chunks), [n] * len(chunks)):
            problems.extend(found)
            bar.update(512)
    bar.close()
    rows = [frame.assign(split=split) for split, frame in frames.items()]
    counts = pd.concat(rows) if rows else pd.DataFrame(columns=["split", "device", "scene"])
    return CheckResult(counts[["split", "device", "scene"]].reset_index(drop=True), problems)


def summary(result: CheckResult) -> str:
    """Clips per split and device, and per split and scene, as text tables."""
    if result.counts.empty:
        return "no split could be read"
    by_device = result.counts.pivot_table(index="split", columns="device", aggfunc="size", fill_value=0)
    by_scene = result.counts.pivot_table(index="split", columns="scene", aggfunc="size", fill_value=0)
    return f"clips per split and device:\n{by_device}\n\nclips per split and scene:\n{by_scene.T}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asc_kd.data.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="dataset root (meta.csv, audio/, evaluation_setup/)")
    parser.add_argument("--train-split-file", default=None, help="e.g. a DCASE24 split25.csv")
    parser.add_argument("--source-rate", type=int, default=SOURCE_SAMPLE_RATE)
    parser.add_argument("--clip-seconds", type=float, default=CLIP_SECONDS)
    parser.add_argument("--max-problems", type=int, default=50, help="problems listed (all are counted)")
    args = parser.parse_args(argv)
    result = check_dataset(args.root, args.source_rate, args.clip_seconds, args.train_split_file)
    print(summary(result))
    if result.ok:
        print(
            f"\nOK: {len(result.counts)} clips in the splits; every listed wav is readable, mono, "
            f"{args.source_rate} Hz, {args.clip_seconds} s"
        )
        return 0
    kinds = pd.Series([p.field for p in result.problems]).value_counts().to_dict()
    print(f"\n{len(result.problems)} problem(s): {kinds}")
    for problem in result.problems[: args.max_problems]:
        print(f"  {problem}")
    if any(p.field == "exists" for p in result.problems):
        print(f"\nMissing files come from the {OFFICIAL_ARCHIVE} (audio.1.zip ... audio.21.zip).")
    return 1


if __name__ == "__main__":
    sys.exit(main())
