"""``TAU22DataModule``: TAU22 splits as dict batches of 32 kHz waveforms.

Splits (see ``asc_kd.data.tau22``): ``train`` is fold1_train (or a DCASE24 subset file),
``val`` and ``test`` are both fold1_evaluate, the labelled development-test split every paper
reports; TAU22 has no separate validation split, and this mirrors CP-JKU and the DCASE24
baseline. ``predict`` is fold1_test, or any folder of wavs (the evaluation set).

A batch is a dict: ``waveform`` (B, samples) float32, ``target``, ``device``, ``city`` and
``index`` (B,) int64 (target, device and city are -1 where unknown), plus ``teacher_logits``
(B, classes) when a logits file is given. Audio comes from the resampled cache (one memmap
read per batch) unless ``use_cache`` is off. Waveform augmentations (time roll, device
impulse responses) run in ``on_after_batch_transfer``, on the device. The mel front-end is
part of the task, not of this module, so that it travels with the model's checkpoint and runs
after waveform Mixup.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from asc_kd.data.audio import Resampler, read_clip
from asc_kd.data.augment import convolve_impulse_responses, load_impulse_responses, time_roll
from asc_kd.data.cache import AudioCache, build_cache, fingerprint_files
from asc_kd.data.logits import LogitsMismatchError, load_logits
from asc_kd.data.synthetic import ensure_synthetic
from asc_kd.data.tau22 import (
    CLIP_SECONDS,
    DEVICES,
    SOURCE_SAMPLE_RATE,
    DatasetError,
    list_audio_folder,
    read_meta,
    read_split,
)

log = logging.getLogger(__name__)
Batch = dict[str, torch.Tensor]


class WavSource:
    """Decode and resample clips on every read: the slow path the cache replaces."""

    def __init__(self, root: Path, filenames: list[str], sample_rate: int, source_rate: int) -> None:
        self.root = root
        self.filenames = filenames
        self.row_of = {name: row for row, name in enumerate(filenames)}
        self.source_rate = source_rate
        self.n_source = round(source_rate * CLIP_SECONDS)
        self.resample = Resampler(source_rate, sample_rate)

    def read(self, rows: np.ndarray) -> torch.Tensor:
        clips = np.stack(
            [read_clip(self.root / self.filenames[r], self.source_rate, self.n_source) for r in rows]
        )
        return self.resample(clips)


class ClipDataset(Dataset):
    """Rows of a split frame; fetches whole batches at once through ``__getitems__``."""

    def __init__(
        self,
        frame: pd.DataFrame,
        audio: AudioCache | WavSource,
        teacher_logits: torch.Tensor | None = None,
    ) -> None:
        self.frame = frame.reset_index(drop=True)
        self.audio = audio
        self.rows = np.array([audio.row_of[name] for name in self.frame["filename"]])
        self.labels = {
            "target": torch.tensor(self.frame["target"].to_numpy(), dtype=torch.long),
            "device": torch.tensor(self.frame["device_index"].to_numpy(), dtype=torch.long),
            "city": torch.tensor(self.frame["city_index"].to_numpy(), dtype=torch.long),
        }
        self.teacher_logits = teacher_logits

    def __len__(self) -> int:
        return len(self.frame)

    def __getitems__(self, indices: list[int]) -> Batch:
        index = torch.as_tensor(indices, dtype=torch.long)
        batch = {"waveform": self.audio.read(self.rows[indices]), "index": index}
        batch.update({key: values[index] for key, values in self.labels.items()})
        if self.teacher_logits is not None:
            batch["teacher_logits"] = self.teacher_logits[index]
        return batch

    def __getitem__(self, i: int) -> Batch:
        return {key: value[0] for key, value in self.__getitems__([i]).items()}


def _already_batched(batch: Batch) -> Batch:
    return batch


class TAU22DataModule(L.LightningDataModule):
    """TAU Urban Acoustic Scenes 2022 Mobile (or its synthetic stand-in) for Lightning.

    Args:
        root: dataset root with ``meta.csv`` and ``evaluation_setup/``.
        generate_synthetic: if ``root`` holds no dataset, write the synthetic scenes there.
        cache_dir: where the resampled-audio cache lives (default ``$ASC_KD_CACHE`` or
            ``~/.cache/asc_kd``).
        train_split_file: replaces fold1_train.csv, e.g. a DCASE24 ``split25.csv``.
        predict_folder: folder of wavs to predict (default: fold1_test.csv of ``root``).
        sample_rate: rate the models see; the cache resamples to it once.
        batch_size: training batch size.
        eval_batch_size: batch size of val / test / predict.
        num_workers: DataLoader processes.
        use_cache: read the resampled cache (fast) instead of decoding wavs per batch.
        roll_seconds: maximum time roll of training clips (0 disables it).
        dir_folder: folder of device impulse responses for DIR augmentation (None disables it).
        dir_p: probability of convolving a device-a training clip with a random response.
        teacher_logits: ensemble logits file for distillation (``python -m asc_kd.logits``).
        seed: seed of the training shuffle order.
        pin_memory: pin host memory (default: when CUDA is available).
        check_data: run ``asc_kd.data.check`` (headers only) before caching.
    """

    def __init__(
        self,
        root: str = "data/synthetic",
        generate_synthetic: bool = False,
        cache_dir: str | None = None,
        train_split_file: str | None = None,
        predict_folder: str | None = None,
        sample_rate: int = 32_000,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        num_workers: int = 2,
        use_cache: bool = True,
        roll_seconds: float = 0.1,
        dir_folder: str | None = None,
        dir_p: float = 0.4,
        teacher_logits: str | None = None,
        seed: int = 0,
        pin_memory: bool | None = None,
        check_data: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root)
        default_cache = os.environ.get("ASC_KD_CACHE", Path.home() / ".cache" / "asc_kd")
        self.cache_dir = Path(cache_dir) if cache_dir else Path(default_cache)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.datasets: dict[str, ClipDataset] = {}
        self._responses: torch.Tensor | None = None
        #: Fingerprint (names, sizes) of the train + test clips, recorded in checkpoints.
        self.fingerprint: str | None = None

    # -- frames -----------------------------------------------------------------------------
    def _frames(self) -> dict[str, pd.DataFrame]:
        if not (self.root / "meta.csv").is_file():
            if self.hparams.generate_synthetic:
                ensure_synthetic(self.root)
            elif not self.root.is_dir() or not any(self.root.iterdir()):
                raise DatasetError(
                    f"dataset root {self.root} is missing or empty; download the TAU Urban Acoustic "
                    "Scenes 2022 Mobile development set there, or set data.generate_synthetic=true"
                )
        meta = read_meta(self.root)  # read once: it is the slow part (230k rows for TAU22)
        frames = {
            "train": read_split(self.root, "train", self.hparams.train_split_file, meta=meta),
            "test": read_split(self.root, "test", meta=meta),
        }
        if self.hparams.predict_folder is not None:
            frames["predict"] = list_audio_folder(self.hparams.predict_folder)
        else:
            frames["predict"] = read_split(self.root, "predict", meta=meta)
        return frames

    def _audio(self, filenames: list[str], root: Path) -> AudioCache | WavSource:
        if not self.hparams.use_cache:
            return WavSource(root, filenames, self.hparams.sample_rate, SOURCE_SAMPLE_RATE)
        return build_cache(
            root,
            filenames,
            self.cache_dir,
            self.hparams.sample_rate,
            SOURCE_SAMPLE_RATE,
            CLIP_SECONDS,
        )

    def _sources(self, frames: dict[str, pd.DataFrame]) -> dict[str, AudioCache | WavSource]:
        # One cache for train + test (they share the root), one for an external predict folder.
        shared = list(dict.fromkeys([*frames["train"]["filename"], *frames["test"]["filename"]]))
        sources = {"train": self._audio(shared, self.root)}
        sources["test"] = sources["train"]
        if self.hparams.predict_folder is not None:
            predict_root = Path(self.hparams.predict_folder).parent
            sources["predict"] = self._audio(list(frames["predict"]["filename"]), predict_root)
        else:
            sources["predict"] = sources["train"]
        return sources

    def prepare_data(self) -> None:
        """Generate (if asked), check and cache the audio once per node, before any rank reads it."""
        frames = self._frames()
        if self.hparams.check_data:
            from asc_kd.data.check import check_dataset

            result = check_dataset(self.root, train_split_file=self.hparams.train_split_file, progress=False)
            if not result.ok:
                listed = "\n  ".join(str(p) for p in result.problems[:10])
                raise DatasetError(
                    f"{self.root} failed the data check ({len(result.problems)} problem(s); "
                    f"`python -m asc_kd.data.check {self.root}` lists all):\n  {listed}"
                )
        self._sources(frames)

    def setup(self, stage: str | None = None) -> None:
        frames = self._frames()
        sources = self._sources(frames)
        logits = self._teacher_logits(frames["train"]) if self.hparams.teacher_logits else None
        source = sources["train"]
        self.fingerprint = (
            source.fingerprint
            if isinstance(source, AudioCache)
            else fingerprint_files(self.root, source.filenames)
        )
        self.datasets = {
            "train": ClipDataset(frames["train"], sources["train"], logits),
            "val": ClipDataset(frames["test"], sources["test"]),
            "test": ClipDataset(frames["test"], sources["test"]),
            "predict": ClipDataset(frames["predict"], sources["predict"]),
        }
        if self.hparams.dir_folder is not None:
            self._responses = load_impulse_responses(self.hparams.dir_folder, self.hparams.sample_rate)

    def _teacher_logits(self, train: pd.DataFrame) -> torch.Tensor:
        filenames, logits, metadata = load_logits(self.hparams.teacher_logits, split="train")
        recorded = metadata.get("dataset_fingerprint")
        if recorded is not None and recorded != fingerprint_files(self.root, filenames):
            raise LogitsMismatchError(
                f"{self.hparams.teacher_logits}: its clips under {self.root} have changed since the "
                "logits were made (fingerprint differs); rebuild it with `python -m asc_kd.logits`"
            )
        row_of = {name: row for row, name in enumerate(filenames)}
        missing = [name for name in train["filename"] if name not in row_of]
        if missing:
            raise LogitsMismatchError(
                f"{self.hparams.teacher_logits} has no logits for {len(missing)} training clip(s), "
                f"first {missing[0]!r}; it was made for another split or dataset"
            )
        return logits[[row_of[name] for name in train["filename"]]]

    # -- loaders ----------------------------------------------------------------------------
    def loader(self, split: str, shuffle: bool = False) -> DataLoader:
        """DataLoader of any split; shuffled (with the seed) only when asked."""
        if not self.datasets:
            raise RuntimeError("call setup() before asking for a DataLoader")
        generator = torch.Generator().manual_seed(self.hparams.seed) if shuffle else None
        batch_size = self.hparams.batch_size if split == "train" else self.hparams.eval_batch_size
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(self.datasets[split]) > batch_size,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
            pin_memory=self.pin_memory,
            collate_fn=_already_batched,
            generator=generator,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.loader("predict", shuffle=False)

    # -- on the device ----------------------------------------------------------------------
    def augment(self, batch: Batch) -> Batch:
        """Training-time waveform augmentation: time roll, then device impulse responses."""
        waveform = time_roll(batch["waveform"], round(self.hparams.roll_seconds * self.hparams.sample_rate))
        if self._responses is not None:
            responses = self._responses.to(waveform.device)
            self._responses = responses
            is_a = batch["device"] == DEVICES.index("a")
            draw = torch.rand(is_a.shape, device=waveform.device) < self.hparams.dir_p
            waveform = convolve_impulse_responses(waveform, responses, is_a & draw)
        return {**batch, "waveform": waveform}

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        if self.trainer is not None and self.trainer.training:
            return self.augment(batch)
        return batch
