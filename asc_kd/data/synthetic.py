"""Synthetic acoustic scenes written in the exact TAU22 layout.

The real dataset cannot be downloaded everywhere (and not at all on this project's CI), so
every piece of asc_kd is exercised on generated scenes: same files, columns, rate (44.1 kHz,
24-bit, mono, 1 s), scenes and devices. Accuracies measured on them are *synthetic* numbers
and say nothing about TAU22.

How a clip is made, and why:

* A scene is a recipe: a spectral envelope (a tilt and Gaussian bumps on a log-frequency
  axis), tonal components, an amplitude modulation and short band-limited events. Neighbouring
  scenes share a bump and every clip jitters its recipe and adds a common background at a
  random level, so the classes overlap: a small CNN learns them but does not reach 100 %.
* A city adds its own tilt and bump, as recordings in different cities differ.
* A device is a frequency response (high-pass and low-pass corners plus peaks and notches) and
  a noise floor. Like TAU22, each test segment is rendered through all nine devices, and the
  train split holds device a mostly, b, c and s1-s3 a little and s4-s6 never. The unseen
  devices get the strongest responses, so a model that keys on device colouring loses
  accuracy on them: the gap Freq-MixStyle is meant to close.

Run ``python -m asc_kd.data.synthetic OUT_DIR`` (``--help`` for the size options).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
from tqdm.auto import tqdm

from asc_kd.data.tau22 import CITIES, DEVICES, SCENES, SOURCE_SAMPLE_RATE

log = logging.getLogger(__name__)

_N = SOURCE_SAMPLE_RATE  # 1-s clips
_FREQS = np.fft.rfftfreq(_N, 1.0 / SOURCE_SAMPLE_RATE)
_LOG_F = np.log2(np.maximum(_FREQS, 20.0))
_TIME = np.arange(_N) / SOURCE_SAMPLE_RATE
TRAIN_DEVICES = ("a", "b", "c", "s1", "s2", "s3")


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and difficulty of the generated set.

    Attributes:
        train_segments_per_scene: device-a segments per scene in the train split; devices b, c
            and s1-s3 each record ``other_device_fraction`` of them again.
        test_segments_per_scene: segments per scene in the test split, each on all 9 devices.
        other_device_fraction: share of train segments also recorded by each of b, c, s1-s3.
        jitter: per-clip variation of a scene's recipe; larger is harder.
        seed: everything derives from it, so a config always writes the same bytes.
    """

    train_segments_per_scene: int = 120
    test_segments_per_scene: int = 10
    other_device_fraction: float = 0.15
    jitter: float = 1.0
    seed: int = 0

    @property
    def n_clips(self) -> int:
        re_recorded = round(self.train_segments_per_scene * self.other_device_fraction)
        per_scene = (
            self.train_segments_per_scene
            + len(TRAIN_DEVICES[1:]) * re_recorded
            + self.test_segments_per_scene * len(DEVICES)
        )
        return per_scene * len(SCENES)


def _bumps_db(centres: np.ndarray, widths: np.ndarray, gains: np.ndarray) -> np.ndarray:
    # Gaussian bumps on a log2-frequency axis, in dB.
    z = (_LOG_F[None, :] - centres[:, None]) / widths[:, None]
    return (gains[:, None] * np.exp(-0.5 * z**2)).sum(axis=0)


def _scene_recipes(rng: np.random.Generator) -> list[dict]:
    n = len(SCENES)
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


def _shaped_noise(rng: np.random.Generator, gain_db: np.ndarray) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(_N)) * 10.0 ** (gain_db / 20.0)
    return np.fft.irfft(spectrum, _N)


def _scene_envelope(recipe: dict, jitter: float, rng: np.random.Generator) -> np.ndarray:
    k = len(recipe["centres"])
    centres = recipe["centres"] + rng.normal(0.0, 0.25 * jitter, k)
    gains = recipe["gains"] + rng.normal(0.0, 4.0 * jitter, k)
    tilt = recipe["tilt"] + rng.normal(0.0, 1.0 * jitter)
    return tilt * (_LOG_F - np.log2(1000.0)) + _bumps_db(centres, recipe["widths"], gains)


def _tone(recipe: dict, jitter: float, rng: np.random.Generator) -> np.ndarray:
    if not recipe["tone_f0"]:
        return np.zeros(_N)
    f0 = recipe["tone_f0"] * 2.0 ** rng.normal(0.0, 0.1 * jitter)
    tone = sum(np.sin(2 * np.pi * h * f0 * _TIME + rng.uniform(0, 2 * np.pi)) / h for h in (1, 2, 3))
    return 10.0 ** ((recipe["tone_db"] + rng.normal(0, 3 * jitter)) / 20.0) * tone


def _render_scene(
    scene: int, recipes: list[dict], city_recipe: dict, jitter: float, rng: np.random.Generator
) -> np.ndarray:
    recipe = recipes[scene]
    # Each clip leaks a random other scene (weight up to 0.8 * jitter): past 0.5 the label is
    # genuinely ambiguous, which keeps the best achievable accuracy below 100 %.
    other = recipes[(scene + 1 + rng.integers(len(recipes) - 1)) % len(recipes)]
    leak = rng.uniform(0.0, min(0.8 * jitter, 0.9))
    distractors = _bumps_db(  # clip-specific colouring unrelated to the scene
        rng.uniform(np.log2(100), np.log2(12000), 3),
        rng.uniform(0.3, 1.0, 3),
        rng.normal(0.0, 6.0 * jitter, 3),
    )
    envelope = (
        (1.0 - leak) * _scene_envelope(recipe, jitter, rng)
        + leak * _scene_envelope(other, jitter, rng)
        + city_recipe["tilt"] * (_LOG_F - np.log2(1000.0))
        + _bumps_db(city_recipe["centres"], city_recipe["widths"], city_recipe["gains"])
        + distractors
    )
    signal = _shaped_noise(rng, envelope)
    signal /= signal.std() + 1e-9
    signal += (1.0 - leak) * _tone(recipe, jitter, rng) + leak * _tone(other, jitter, rng)
    am = 1.0 + recipe["am_depth"] * np.sin(2 * np.pi * recipe["am_rate"] * _TIME + rng.uniform(0, 6.3))
    signal *= am
    n_events = rng.poisson(recipe["event_rate"])
    if n_events:
        band = _bumps_db(np.array([recipe["event_centre"]]), np.array([0.4]), np.array([30.0])) - 30.0
        burst = _shaped_noise(rng, band)
        onsets = rng.uniform(0.0, 0.95, n_events)
        shape = sum(np.exp(-np.clip(_TIME - t, 0, None) * 40.0) * (_TIME >= t) for t in onsets)
        signal += 3.0 * burst / (burst.std() + 1e-9) * shape
    background = _shaped_noise(rng, -3.0 * (_LOG_F - np.log2(1000.0)))
    background /= background.std() + 1e-9
    signal += background * 10.0 ** (rng.uniform(-8.0, 4.0) * jitter / 20.0)
    return signal / (np.abs(signal).max() + 1e-9)


def _record(clean: np.ndarray, response: dict, level_db: float, rng: np.random.Generator):
    octaves = _LOG_F - np.log2(1000.0)
    f = np.maximum(_FREQS, 1.0)
    gain_db = (
        response["tilt"] * octaves
        + _bumps_db(response["centres"], response["widths"], response["gains"])
        - 10.0 * np.log10(1.0 + (response["hp"] / f) ** 4)
        - 10.0 * np.log10(1.0 + (f / response["lp"]) ** 8)
    )
    recorded = np.fft.irfft(np.fft.rfft(clean) * 10.0 ** (gain_db / 20.0), _N)
    recorded *= 10.0 ** (level_db / 20.0) / (np.abs(recorded).max() + 1e-9)
    recorded += 10.0 ** (response["noise_db"] / 20.0) * rng.standard_normal(_N)
    return np.clip(recorded, -1.0, 1.0 - 2.0**-23).astype(np.float32)


def generate(out_dir: str | Path, config: SyntheticConfig | None = None, progress: bool = True) -> Path:
    """Write a synthetic TAU22-layout dataset to ``out_dir`` and return it.

    The folder is written under a temporary name and renamed when complete, so a killed run
    never leaves a half-written dataset that looks finished. ``out_dir`` must not exist yet or
    be an empty folder.
    """
    config = config or SyntheticConfig()
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} already exists and is not empty; choose a new folder or delete it")
    partial = out_dir.with_name(f"{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "audio").mkdir(parents=True)
    (partial / "evaluation_setup").mkdir()
    root_seed = np.random.SeedSequence(config.seed)
    scene_seed, device_seed, city_seed, clip_seed = root_seed.spawn(4)
    recipes = _scene_recipes(np.random.default_rng(scene_seed))
    responses = _device_responses(np.random.default_rng(device_seed))
    city_rng = np.random.default_rng(city_seed)
    city_recipes = [
        {
            "tilt": city_rng.uniform(-1.0, 1.0),
            "centres": city_rng.uniform(np.log2(100), np.log2(10000), 1),
            "widths": city_rng.uniform(0.3, 0.8, 1),
            "gains": city_rng.uniform(-4.0, 4.0, 1),
        }
        for _ in CITIES
    ]
    plan = _plan(config)
    rows, splits = [], {"train": [], "test": []}
    try:
        clip_seeds = clip_seed.spawn(len(plan))
        for (split, scene, city, location, segment, devices), seed in tqdm(
            list(zip(plan, clip_seeds, strict=True)),
            desc="synthetic scenes",
            unit="segment",
            disable=not progress,
        ):
            rng = np.random.default_rng(seed)
            clean = _render_scene(scene, recipes, city_recipes[city], config.jitter, rng)
            level_db = rng.uniform(-12.0, -2.0)
            identifier = f"{CITIES[city]}-{location}"
            for device in devices:
                name = f"audio/{SCENES[scene]}-{identifier}-{segment}-{device}.wav"
                audio = _record(clean, responses[device], level_db, rng)
                soundfile.write(partial / name, audio, SOURCE_SAMPLE_RATE, subtype="PCM_24")
                rows.append((name, SCENES[scene], identifier, device))
                splits[split].append((name, SCENES[scene]))
        meta = pd.DataFrame(rows, columns=["filename", "scene_label", "identifier", "source_label"])
        meta.to_csv(partial / "meta.csv", sep="\t", index=False)
        for split, file in (("train", "fold1_train.csv"), ("test", "fold1_evaluate.csv")):
            frame = pd.DataFrame(splits[split], columns=["filename", "scene_label"])
            frame.to_csv(partial / "evaluation_setup" / file, sep="\t", index=False)
        frame[["filename"]].to_csv(partial / "evaluation_setup/fold1_test.csv", sep="\t", index=False)
        os.replace(partial, out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out_dir


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


def ensure_synthetic(root: str | Path, config: SyntheticConfig | None = None) -> Path:
    """Generate the synthetic set at ``root`` unless a complete one is already there."""
    root = Path(root)
    if (root / "meta.csv").is_file():
        return root
    log.info("generating synthetic TAU22-layout scenes in %s", root)
    return generate(root, config)


def main(argv: list[str] | None = None) -> int:
    defaults = SyntheticConfig()
    parser = argparse.ArgumentParser(
        prog="python -m asc_kd.data.synthetic",
        description="Write synthetic acoustic scenes in the TAU22 layout (results are synthetic).",
    )
    parser.add_argument("out_dir", help="folder to create")
    parser.add_argument("--train-segments-per-scene", type=int, default=defaults.train_segments_per_scene)
    parser.add_argument("--test-segments-per-scene", type=int, default=defaults.test_segments_per_scene)
    parser.add_argument("--other-device-fraction", type=float, default=defaults.other_device_fraction)
    parser.add_argument("--jitter", type=float, default=defaults.jitter)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    config = SyntheticConfig(
        train_segments_per_scene=args.train_segments_per_scene,
        test_segments_per_scene=args.test_segments_per_scene,
        other_device_fraction=args.other_device_fraction,
        jitter=args.jitter,
        seed=args.seed,
    )
    try:
        out = generate(args.out_dir, config)
    except FileExistsError as err:
        parser.error(str(err))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log.info("wrote %d clips to %s", config.n_clips, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
