"""Synthetic acoustic scenes in every layout asc_kd reads: TAU22, TAU20 and folder-per-class.

The real datasets cannot be downloaded everywhere (and not at all on this project's CI), so
every piece of asc_kd is exercised on generated scenes. The TAU layouts have the exact files,
columns, rate (44.1 kHz, 24-bit, mono; 1-s clips for TAU22, 10-s for TAU20), scenes and
devices; the folders layout has any number of classes, any rate and clip length, and no
devices. Accuracies measured on them are *synthetic* numbers and say nothing about TAU.

How a clip is made, and why:

* A scene is a recipe: a spectral envelope (a tilt and Gaussian bumps on a log-frequency
  axis), tonal components, an amplitude modulation and short band-limited events. Neighbouring
  scenes share a bump and every clip jitters its recipe and adds a common background at a
  random level, so the classes overlap: a small CNN learns them but does not reach 100 %.
* A city adds its own tilt and bump, as recordings in different cities differ.
* A device is a frequency response (high-pass and low-pass corners plus peaks and notches) and
  a noise floor. Like TAU, each test segment is rendered through all nine devices, and the
  train split holds device a mostly, b, c and s1-s3 a little and s4-s6 never. The unseen
  devices get the strongest responses, so a model that keys on device colouring loses
  accuracy on them: the gap Freq-MixStyle is meant to close.

``python -m asc_kd.synthetic OUT_DIR`` writes a set (``--help`` for the layout and size options).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import soundfile
from tqdm.auto import tqdm

from asc_kd.core.io import atomic_folder
from asc_kd.core.locks import DEFAULT_TIMEOUT, folder_lock
from asc_kd.data.cache import usable_cpus
from asc_kd.data.tau import CITIES, DEVICES, SCENES, SOURCE_SAMPLE_RATE

log = logging.getLogger(__name__)

TRAIN_DEVICES = ("a", "b", "c", "s1", "s2", "s3")
SyntheticLayout = Literal["tau22", "tau20", "folders"]
DEFAULT_SECONDS = {"tau22": 1.0, "tau20": 10.0, "folders": 1.0}
MARKER = "ASC_KD_SYNTHETIC.json"  # in the root of every generated set; no layout reads root files
SYNTHETIC_NOTE = " (SYNTHETIC scenes: not TAU22 numbers)"


def is_synthetic(root: str | Path) -> bool:
    """Whether ``root`` was written by this module: results on it must say they are synthetic."""
    return (Path(root) / MARKER).is_file()


def _mark(folder: Path, what: dict) -> None:
    (folder / MARKER).write_text(json.dumps({"generator": "asc_kd.data.synthetic", **what}, indent=2))


@dataclass(frozen=True)
class SyntheticConfig:
    """Layout, size and difficulty of the generated set.

    Attributes:
        train_segments_per_scene: TAU: device-a segments per scene in the train split; devices
            b, c and s1-s3 each record ``other_device_fraction`` of them again.
        test_segments_per_scene: TAU: segments per scene in the test split, each on all 9 devices.
        other_device_fraction: TAU: share of train segments also recorded by b, c, s1-s3 each.
        jitter: per-clip variation of a scene's recipe; larger is harder.
        seed: everything derives from it, so a config always writes the same bytes.
        layout: ``tau22`` (1-s clips), ``tau20`` (10-s clips) or ``folders``.
        clip_seconds: clip length; default 1 s (TAU20: 10 s).
        n_classes: folders: number of classes (TAU has its 10 scenes).
        sample_rate: folders: rate of the files (TAU: 44.1 kHz).
        recordings_per_class: folders: recordings per class.
        segments_per_recording: folders: clips cut from each recording (they share its
            location and level, and the generated split keeps them together).
    """

    train_segments_per_scene: int = 120
    test_segments_per_scene: int = 10
    other_device_fraction: float = 0.15
    jitter: float = 1.0
    seed: int = 0
    layout: SyntheticLayout = "tau22"
    clip_seconds: float | None = None
    n_classes: int = 10
    sample_rate: int = SOURCE_SAMPLE_RATE
    recordings_per_class: int = 12
    segments_per_recording: int = 3

    def __post_init__(self) -> None:
        if self.layout not in DEFAULT_SECONDS:
            raise ValueError(
                f"synthetic layout must be one of {', '.join(DEFAULT_SECONDS)}, got {self.layout!r}"
            )

    @property
    def seconds(self) -> float:
        return self.clip_seconds if self.clip_seconds is not None else DEFAULT_SECONDS[self.layout]

    @property
    def classes(self) -> tuple[str, ...]:
        if self.layout == "folders":
            return tuple(f"scene{i:02d}" for i in range(self.n_classes))
        return SCENES

    @property
    def n_clips(self) -> int:
        if self.layout == "folders":
            return self.n_classes * self.recordings_per_class * self.segments_per_recording
        re_recorded = round(self.train_segments_per_scene * self.other_device_fraction)
        per_scene = (
            self.train_segments_per_scene
            + len(TRAIN_DEVICES[1:]) * re_recorded
            + self.test_segments_per_scene * len(DEVICES)
        )
        return per_scene * len(SCENES)


class _Grid:
    """Time and frequency axes of one clip length at one rate."""

    def __init__(self, rate: int, seconds: float) -> None:
        self.rate = rate
        self.n = round(rate * seconds)
        self.seconds = self.n / rate
        self.freqs = np.fft.rfftfreq(self.n, 1.0 / rate)
        self.log_f = np.log2(np.maximum(self.freqs, 20.0))
        self.time = np.arange(self.n) / rate


def _bumps_db(g: _Grid, centres: np.ndarray, widths: np.ndarray, gains: np.ndarray) -> np.ndarray:
    # Gaussian bumps on a log2-frequency axis, in dB.
    z = (g.log_f[None, :] - centres[:, None]) / widths[:, None]
    return (gains[:, None] * np.exp(-0.5 * z**2)).sum(axis=0)


def _scene_recipes(rng: np.random.Generator, n: int) -> list[dict]:
    shared = rng.uniform(np.log2(150), np.log2(8000), size=n)  # scene i shares bump i with i+1
    recipes = []
    for i in range(n):
        centres = np.concatenate([rng.uniform(np.log2(80), np.log2(14000), 2), shared[[i, i - 1]]])
        recipes.append(
            {
                "tilt": rng.uniform(-5.0, -1.0),
                "centres": centres,
                "widths": rng.uniform(0.3, 1.0, 4),
                "gains": np.array([*rng.uniform(4.0, 9.0, 2), 6.0, 6.0]),
                "tone_f0": rng.uniform(60.0, 1200.0) if rng.random() < 0.7 else 0.0,
                "tone_db": rng.uniform(-18.0, -6.0),
                "am_rate": rng.uniform(0.5, 8.0),
                "am_depth": rng.uniform(0.0, 0.7),
                "event_rate": rng.uniform(0.0, 5.0),
                "event_centre": rng.uniform(np.log2(300), np.log2(10000)),
            }
        )
    return recipes


def _device_responses(rng: np.random.Generator) -> dict[str, dict]:
    responses = {}
    for device in DEVICES:
        strength = {"a": 0.0, "b": 0.6, "c": 0.6}.get(device, 1.0 if device < "s4" else 1.8)
        n_peaks = 0 if device == "a" else 3
        responses[device] = {
            "hp": 20.0 if device == "a" else rng.uniform(60.0, 150.0 + 200.0 * strength),
            "lp": 20000.0 if device == "a" else rng.uniform(16000.0 - 5000.0 * strength, 17000.0),
            "centres": rng.uniform(np.log2(200), np.log2(12000), n_peaks),
            "widths": rng.uniform(0.3, 0.9, n_peaks),
            "gains": rng.choice([-1.0, 1.0], n_peaks) * rng.uniform(3.0, 6.0, n_peaks) * strength,
            "tilt": rng.uniform(-2.0, 2.0) * strength,
            "noise_db": -65.0 if device == "a" else rng.uniform(-55.0, -45.0 + 8.0 * strength),
        }
    return responses


def _shaped_noise(g: _Grid, rng: np.random.Generator, gain_db: np.ndarray) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(g.n)) * 10.0 ** (gain_db / 20.0)
    return np.fft.irfft(spectrum, g.n)


def _scene_envelope(g: _Grid, recipe: dict, jitter: float, rng: np.random.Generator) -> np.ndarray:
    k = len(recipe["centres"])
    centres = recipe["centres"] + rng.normal(0.0, 0.25 * jitter, k)
    gains = recipe["gains"] + rng.normal(0.0, 4.0 * jitter, k)
    tilt = recipe["tilt"] + rng.normal(0.0, 1.0 * jitter)
    return tilt * (g.log_f - np.log2(1000.0)) + _bumps_db(g, centres, recipe["widths"], gains)


def _tone(g: _Grid, recipe: dict, jitter: float, rng: np.random.Generator) -> np.ndarray:
    if not recipe["tone_f0"]:
        return np.zeros(g.n)
    f0 = recipe["tone_f0"] * 2.0 ** rng.normal(0.0, 0.1 * jitter)
    tone = sum(np.sin(2 * np.pi * h * f0 * g.time + rng.uniform(0, 2 * np.pi)) / h for h in (1, 2, 3))
    return 10.0 ** ((recipe["tone_db"] + rng.normal(0, 3 * jitter)) / 20.0) * tone


def _render_scene(
    g: _Grid, scene: int, recipes: list[dict], city_recipe: dict, jitter: float, rng: np.random.Generator
) -> np.ndarray:
    recipe = recipes[scene]
    # Each clip leaks a random other scene (weight up to 0.8 * jitter): past 0.5 the label is
    # genuinely ambiguous, which keeps the best achievable accuracy below 100 %.
    other = recipes[(scene + 1 + rng.integers(len(recipes) - 1)) % len(recipes)]
    leak = rng.uniform(0.0, min(0.8 * jitter, 0.9))
    distractors = _bumps_db(  # clip-specific colouring unrelated to the scene
        g,
        rng.uniform(np.log2(100), np.log2(12000), 3),
        rng.uniform(0.3, 1.0, 3),
        rng.normal(0.0, 6.0 * jitter, 3),
    )
    envelope = (
        (1.0 - leak) * _scene_envelope(g, recipe, jitter, rng)
        + leak * _scene_envelope(g, other, jitter, rng)
        + city_recipe["tilt"] * (g.log_f - np.log2(1000.0))
        + _bumps_db(g, city_recipe["centres"], city_recipe["widths"], city_recipe["gains"])
        + distractors
    )
    signal = _shaped_noise(g, rng, envelope)
    signal /= signal.std() + 1e-9
    signal += (1.0 - leak) * _tone(g, recipe, jitter, rng) + leak * _tone(g, other, jitter, rng)
    am = 1.0 + recipe["am_depth"] * np.sin(2 * np.pi * recipe["am_rate"] * g.time + rng.uniform(0, 6.3))
    signal *= am
    n_events = rng.poisson(recipe["event_rate"] * g.seconds)
    if n_events:
        band = _bumps_db(g, np.array([recipe["event_centre"]]), np.array([0.4]), np.array([30.0])) - 30.0
        burst = _shaped_noise(g, rng, band)
        onsets = rng.uniform(0.0, 0.95 * g.seconds, n_events)
        shape = np.zeros(g.n)
        decay = round(0.5 * g.rate)  # exp(-40 t) is below 2e-9 after half a second
        for t in onsets:
            start = int(np.ceil(t * g.rate))
            stop = min(g.n, start + decay)
            shape[start:stop] += np.exp(-(g.time[start:stop] - t) * 40.0)
        signal += 3.0 * burst / (burst.std() + 1e-9) * shape
    background = _shaped_noise(g, rng, -3.0 * (g.log_f - np.log2(1000.0)))
    background /= background.std() + 1e-9
    signal += background * 10.0 ** (rng.uniform(-8.0, 4.0) * jitter / 20.0)
    return signal / (np.abs(signal).max() + 1e-9)


def _device_gain(g: _Grid, response: dict) -> np.ndarray:
    """A device's linear gain per frequency bin (computed once per device and grid)."""
    octaves = g.log_f - np.log2(1000.0)
    f = np.maximum(g.freqs, 1.0)
    gain_db = (
        response["tilt"] * octaves
        + _bumps_db(g, response["centres"], response["widths"], response["gains"])
        - 10.0 * np.log10(1.0 + (response["hp"] / f) ** 4)
        - 10.0 * np.log10(1.0 + (f / response["lp"]) ** 8)
    )
    return 10.0 ** (gain_db / 20.0)


def _record(g: _Grid, clean: np.ndarray, response: dict, level_db: float, rng: np.random.Generator):
    if "_gain" not in response or len(response["_gain"]) != len(g.freqs):
        response["_gain"] = _device_gain(g, response)
    recorded = np.fft.irfft(np.fft.rfft(clean) * response["_gain"], g.n)
    recorded *= 10.0 ** (level_db / 20.0) / (np.abs(recorded).max() + 1e-9)
    recorded += 10.0 ** (response["noise_db"] / 20.0) * rng.standard_normal(g.n)
    return np.clip(recorded, -1.0, 1.0 - 2.0**-23).astype(np.float32)


def generate(out_dir: str | Path, config: SyntheticConfig | None = None, progress: bool = True) -> Path:
    """Write a synthetic dataset of ``config.layout`` to ``out_dir`` and return it.

    The folder is written under a temporary name and renamed when complete, so a killed run
    never leaves a half-written dataset that looks finished. ``out_dir`` must not exist yet or
    be an empty folder.
    """
    config = config or SyntheticConfig()
    with atomic_folder(out_dir) as partial:
        writer = _write_folders if config.layout == "folders" else _write_tau
        writer(partial, config, progress)
        _mark(partial, asdict(config))
    return Path(out_dir)


def _world(config: SyntheticConfig, g: _Grid) -> tuple[list[dict], dict[str, dict], list[dict]]:
    """Scene recipes, device responses and city colourings, all from the config's seed."""
    root_seed = np.random.SeedSequence(config.seed)
    scene_seed, device_seed, city_seed, _ = root_seed.spawn(4)
    recipes = _scene_recipes(np.random.default_rng(scene_seed), len(config.classes))
    responses = _device_responses(np.random.default_rng(device_seed))
    city_rng = np.random.default_rng(city_seed)
    cities = [
        {
            "tilt": city_rng.uniform(-1.0, 1.0),
            "centres": city_rng.uniform(np.log2(100), np.log2(10000), 1),
            "widths": city_rng.uniform(0.3, 0.8, 1),
            "gains": city_rng.uniform(-4.0, 4.0, 1),
        }
        for _ in CITIES
    ]
    return recipes, responses, cities


def _clip_seeds(config: SyntheticConfig, n: int) -> list[np.random.SeedSequence]:
    return np.random.SeedSequence(config.seed).spawn(4)[3].spawn(n)


_WORLD: dict = {}
"""What every segment of one generation shares (grid, scenes, devices, cities, folder): built
once per process by ``_enter_world``."""


def _enter_world(out: Path, config: SyntheticConfig) -> None:
    g = _Grid(SOURCE_SAMPLE_RATE, config.seconds)
    recipes, responses, cities = _world(config, g)
    _WORLD.update(out=out, config=config, g=g, recipes=recipes, responses=responses, cities=cities)


def _tau_segment(job: tuple[tuple, np.random.SeedSequence]) -> list[tuple[str, str, str, str, str]]:
    """Render one segment, write its recording on each device; its (file, scene, identifier,
    device, split) rows. Everything random comes from the segment's own seed, so the bytes do not
    depend on which process renders it."""
    (split, scene, city, location, segment, devices), seed = job
    w = _WORLD
    rng = np.random.default_rng(seed)
    clean = _render_scene(w["g"], scene, w["recipes"], w["cities"][city], w["config"].jitter, rng)
    level_db = rng.uniform(-12.0, -2.0)
    identifier = f"{CITIES[city]}-{location}"
    rows = []
    for device in devices:
        name = f"audio/{SCENES[scene]}-{identifier}-{segment}-{device}.wav"
        audio = _record(w["g"], clean, w["responses"][device], level_db, rng)
        soundfile.write(w["out"] / name, audio, SOURCE_SAMPLE_RATE, subtype="PCM_24")
        rows.append((name, SCENES[scene], identifier, device, split))
    return rows


def generation_workers() -> int:
    """Processes that render segments: one per CPU (at most 8) where ``fork`` is available (Linux),
    so a 2-core machine writes the demo's scenes in about half the time; elsewhere 1."""
    import multiprocessing

    if sys.platform != "linux" or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(8, usable_cpus()))


def _write_tau(out: Path, config: SyntheticConfig, progress: bool) -> None:
    import multiprocessing

    (out / "audio").mkdir()
    (out / "evaluation_setup").mkdir()
    plan = _plan(config)
    jobs = list(zip(plan, _clip_seeds(config, len(plan)), strict=True))
    workers = generation_workers()
    bar = tqdm(total=len(jobs), desc="synthetic scenes", unit="segment", disable=not progress)
    _enter_world(out, config)
    pool = None
    try:
        if workers == 1:
            done = map(_tau_segment, jobs)
        else:  # forked workers inherit the world; numpy and libsndfile are all they run
            pool = multiprocessing.get_context("fork").Pool(workers)
            done = pool.imap(_tau_segment, jobs, chunksize=8)
        rows = []
        for segment_rows in done:
            rows += segment_rows
            bar.update()
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        if pool is not None:
            pool.terminate()
        _WORLD.clear()
        bar.close()
    meta = pd.DataFrame(
        [r[:4] for r in rows], columns=["filename", "scene_label", "identifier", "source_label"]
    )
    meta.to_csv(out / "meta.csv", sep="\t", index=False)
    for split, file in (("train", "fold1_train.csv"), ("test", "fold1_evaluate.csv")):
        frame = pd.DataFrame([r[:2] for r in rows if r[4] == split], columns=["filename", "scene_label"])
        frame.to_csv(out / "evaluation_setup" / file, sep="\t", index=False)
    frame[["filename"]].to_csv(out / "evaluation_setup/fold1_test.csv", sep="\t", index=False)


def _write_folders(out: Path, config: SyntheticConfig, progress: bool) -> None:
    g = _Grid(config.sample_rate, config.seconds)
    recipes, responses, city_recipes = _world(config, g)
    plan_rng = np.random.default_rng(config.seed + 1)
    plan = [
        (label, recording, int(plan_rng.integers(len(CITIES))), plan_rng.uniform(-12.0, -2.0))
        for label in range(config.n_classes)
        for recording in range(config.recordings_per_class)
    ]
    seeds = _clip_seeds(config, len(plan))
    for (label, recording, city, level_db), seed in tqdm(
        list(zip(plan, seeds, strict=True)), desc="synthetic scenes", unit="recording", disable=not progress
    ):
        folder = out / config.classes[label]
        folder.mkdir(exist_ok=True)
        rng = np.random.default_rng(seed)
        for segment in range(config.segments_per_recording):
            clean = _render_scene(g, label, recipes, city_recipes[city], config.jitter, rng)
            audio = _record(g, clean, responses["a"], level_db, rng)
            soundfile.write(
                folder / f"rec{recording:03d}-{segment}.wav", audio, config.sample_rate, subtype="PCM_16"
            )


def _plan(config: SyntheticConfig) -> list[tuple[str, int, int, int, int, tuple[str, ...]]]:
    """(split, scene, city, location, segment, devices) per segment; test locations are new."""
    rng = np.random.default_rng(config.seed + 1)
    n_other = round(config.train_segments_per_scene * config.other_device_fraction)
    plan = []
    for scene in range(len(SCENES)):
        for segment in range(config.train_segments_per_scene):
            extra = tuple(
                d
                for j, d in enumerate(TRAIN_DEVICES[1:])
                if (segment + j * n_other) % config.train_segments_per_scene < n_other
            )
            city = int(rng.integers(len(CITIES)))
            plan.append(("train", scene, city, int(rng.integers(0, 4)), segment, ("a", *extra)))
        for segment in range(config.test_segments_per_scene):
            city = int(rng.integers(len(CITIES)))
            location = int(rng.integers(4, 6))
            plan.append(("test", scene, city, location, 1000 + segment, DEVICES))
    return plan


def ensure_synthetic(
    root: str | Path,
    config: SyntheticConfig | None = None,
    layout: SyntheticLayout | None = None,
    lock_timeout: float | None = DEFAULT_TIMEOUT,
) -> Path:
    """Generate a synthetic set at ``root`` unless a complete one is already there.

    One process generates it: others that ask for the same root meanwhile (the jobs of a SLURM
    stage start together) wait for it, at most ``lock_timeout`` seconds, then use its set. A
    driver that submits jobs calls this once before, so that they find the set complete.
    """
    root = Path(root)
    config = config or SyntheticConfig()
    if layout is not None and layout != config.layout:
        config = replace(config, layout=layout)
    if root.is_dir() and any(root.iterdir()):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(root, "the synthetic scenes", lock_timeout, action="generated"):
        if root.is_dir() and any(root.iterdir()):  # generated by the process this one waited for
            return root
        log.info("generating synthetic %s scenes in %s", config.layout, root)
        return generate(root, config)


def write_linked(source: str | Path, out_dir: str | Path, n: int, progress: bool = True) -> Path:
    """A TAU22-layout set of ``n`` clips whose wavs are hard links to the clips of ``source``.

    It has TAU22's size (230,350 files) at the disk cost of ``source``: a test bed for the
    per-file work that scales with the dataset (data check, cache key), not for training. Names
    are unique and TAU22-shaped (``audio/<scene>-<city>-<location>-<segment>-<device>.wav``); the
    first 70 % are the train split, the rest the test split. Where hard links are not supported
    the files are copied. Written under a temporary name like ``generate``.
    """
    source = Path(source)
    sources = list(pd.read_csv(source / "meta.csv", sep="\t")["filename"].iloc[:8])
    with atomic_folder(out_dir) as partial:
        (partial / "audio").mkdir()
        (partial / "evaluation_setup").mkdir()
        i = np.arange(n)
        scenes = np.array(SCENES)[i % len(SCENES)]
        devices = np.array(DEVICES)[(i // len(SCENES)) % len(DEVICES)]
        cities = np.array(CITIES)[(i // 7) % len(CITIES)]
        identifiers = [f"{city}-{location}" for city, location in zip(cities, i % 5, strict=True)]
        names = [
            f"audio/{scene}-{identifier}-{k}-{device}.wav"
            for scene, identifier, k, device in zip(scenes, identifiers, i, devices, strict=True)
        ]
        for k, name in enumerate(tqdm(names, desc="linking", unit=" files", disable=not progress)):
            target = str(source / sources[k % len(sources)])
            try:
                os.link(target, partial / name)
            except OSError:
                shutil.copy2(target, partial / name)
        meta = pd.DataFrame(
            {"filename": names, "scene_label": scenes, "identifier": identifiers, "source_label": devices}
        )
        meta.to_csv(partial / "meta.csv", sep="\t", index=False)
        n_train = int(0.7 * n)
        for file, rows in (
            ("fold1_train.csv", meta.iloc[:n_train]),
            ("fold1_evaluate.csv", meta.iloc[n_train:]),
        ):
            rows[["filename", "scene_label"]].to_csv(
                partial / "evaluation_setup" / file, sep="\t", index=False
            )
        meta[["filename"]].to_csv(partial / "evaluation_setup" / "fold1_test.csv", sep="\t", index=False)
        _mark(partial, {"linked_from": str(source), "clips": n})
    return Path(out_dir)
