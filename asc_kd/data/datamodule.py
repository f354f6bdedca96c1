"""``SceneDataModule``: any scene dataset's splits as dict batches of waveforms at one rate.

One DataModule over every layout (``asc_kd.data.layouts``: TAU22, TAU20, folder-per-class),
chosen with ``layout`` or detected from the root; ``TAU22DataModule``, ``TAU20DataModule`` and
``FolderDataModule`` fix the layout for Python users. The DataModule owns:

- the dataset's spec (``spec``: classes, devices, rates, clip length), which the CLI links
  into the task;
- the splits: ``train`` (fold1_train or a subset file), ``test`` (fold1_evaluate, the labelled
  development-test split every paper reports), ``val`` (the test split as a monitoring curve,
  or a split held out of ``train`` by recording with ``validation="holdout"``). Unlabelled
  files are predicted by ``asc_kd.deployment.predict``, not through this DataModule: see there why;
- the audio: one resampled memmap cache (``asc_kd.data.cache``), clips stored whole; training
  examples are ``segment_seconds`` windows of them (every window, or one random crop per clip
  per epoch), evaluation examples are whole clips that the task scores window by window;
- what the clips are: the fingerprints a checkpoint or a logits file records
  (``data_record``), compared on resume and in the logits join (``data_change``), and the one a
  run record keeps (``dataset_fingerprint``);
- the waveform augmentations (time roll, device impulse responses), on the device after the
  batch transfer.

The front-end is the task's (``model.init_args.frontend``): it applies it on the device after
waveform Mixup; the CLI links the rate and window length from here into it.

Batches are described in ``asc_kd.core.batch``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypedDict

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from asc_kd.augmentations.waveform import convolve_impulse_responses, time_roll
from asc_kd.core.batch import Batch
from asc_kd.core.errors import ConfigError
from asc_kd.core.io import atomic_write
from asc_kd.core.locks import DEFAULT_TIMEOUT
from asc_kd.data.audio import (
    Resampler,
    fit_length,
    load_impulse_responses,
    read_clip,
    window_starts,
)
from asc_kd.data.cache import (
    CONTENT_SAMPLE,
    AudioCache,
    build_cache,
    changed_clips,
    fingerprint_files,
    usable_cpus,
)
from asc_kd.data.check import check_dataset
from asc_kd.data.folders import DEFAULT_RECORDING_PATTERN
from asc_kd.data.layouts import LayoutName, detect_layout, make_layout
from asc_kd.data.spec import (
    DEMO_ROOT,
    DatasetError,
    DatasetSpec,
    Layout,
    holds_a_dataset,
    missing_root_error,
)
from asc_kd.data.splitting import hold_out
from asc_kd.data.synthetic import ensure_synthetic
from asc_kd.data.teacher_logits import LogitsMismatchError, load_logits

log = logging.getLogger(__name__)
#: Where a fit writes its held-out split (``validation="holdout"``) without ``holdout_file``: its
#: trainer's ``default_root_dir``, the run's folder.
HOLDOUT_FILE = "holdout_split.csv"
Validation = Literal["test", "holdout", "none"]


class DatasetFingerprint(TypedDict):
    """What a run's clips were: ``hash`` of ``kind`` ``content`` (every byte of every clip, taken
    by the cache build) or ``sampled`` (names, sizes and the bytes of 64 clips: without a cache)."""

    kind: Literal["content", "sampled"]
    hash: str


def default_workers(cpu_model_from_cache: bool = False) -> int:
    """DataLoader workers for this machine: one per CPU this process may use, minus one, at most 8.

    No worker (0) when the model runs on the CPU and batches come from the memmap cache: a batch is then
    one memory-mapped read, and a worker process competes for the cores the model's threads use
    (``python -m asc_kd.bench train --fit --data.num_workers 0`` or ``1`` on a 2-core AMD EPYC,
    a KD epoch against the bare step, two runs of each in turn: 93 % and 98 % with no worker,
    82 % and 85 % with one). Workers pay off when they decode wavs or feed a GPU.
    """
    if cpu_model_from_cache:
        return 0
    return max(0, min(8, usable_cpus() - 1))


class WavSource:
    """Decode and resample clips on every read: the slow path the cache replaces."""

    def __init__(self, root: Path, filenames: list[str], sample_rate: int, spec: DatasetSpec) -> None:
        self.root = root
        self.filenames = filenames
        self.row_of = {name: row for row, name in enumerate(filenames)}
        self.spec = spec
        self.n_samples = round(sample_rate * spec.clip_seconds)
        self.sample_rate = sample_rate
        self.resamplers: dict[int, Resampler] = {}

    def read(
        self, rows: np.ndarray, starts: np.ndarray | None = None, length: int | None = None
    ) -> torch.Tensor:
        spec = self.spec
        exact = spec.source_sample_rate and spec.exact_length
        source_n = round(spec.source_sample_rate * spec.clip_seconds) if exact else None
        clips = []
        for r in rows:
            audio, rate = read_clip(
                self.root / self.filenames[r], spec.source_sample_rate, source_n, spec.mono, spec.archive
            )
            if rate not in self.resamplers:
                self.resamplers[rate] = Resampler(rate, self.sample_rate)
            clips.append(fit_length(self.resamplers[rate](audio), self.n_samples))
        waveform = torch.stack(clips)
        if starts is None or length is None:
            return waveform
        return torch.stack([w[s : s + length] for w, s in zip(waveform, starts, strict=True)])


class ClipDataset(Dataset):
    """Examples of one split; fetches whole batches at once through ``__getitems__``.

    An example is a whole clip, or, with ``segment`` set, a ``segment``-sample window of a
    clip: every window in turn (``crop="segments"``, keys ``filename#k``) or one random window
    per fetch (``crop="random"``).
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        audio: AudioCache | WavSource,
        teacher_logits: torch.Tensor | None = None,
        segment: int | None = None,
        crop: Literal["segments", "random"] = "segments",
    ) -> None:
        self.frame = frame.reset_index(drop=True)
        self.audio = audio
        clip_rows = np.array([audio.row_of[name] for name in self.frame["filename"]], dtype=np.int64)
        clip_n = audio.n_samples
        self.segment = segment if segment is not None and segment < clip_n else None
        self.crop = crop
        names = list(self.frame["filename"])
        if self.segment is not None and crop == "segments":
            starts = window_starts(clip_n, self.segment, self.segment)
            self.item_clip = np.repeat(np.arange(len(self.frame)), len(starts))
            self.starts = np.tile(np.asarray(starts, dtype=np.int64), len(self.frame))
            self.keys = [f"{name}#{k}" for name in names for k in range(len(starts))]
        else:
            self.item_clip = np.arange(len(self.frame))
            self.starts = None
            self.keys = names
        self.rows = clip_rows[self.item_clip]
        self.max_start = clip_n - (self.segment or clip_n)
        self.labels = {
            "target": torch.tensor(self.frame["target"].to_numpy()[self.item_clip], dtype=torch.long),
            "device": torch.tensor(self.frame["device_index"].to_numpy()[self.item_clip], dtype=torch.long),
        }
        self.teacher_logits = teacher_logits

    def __len__(self) -> int:
        return len(self.item_clip)

    def __getitems__(self, indices: list[int]) -> Batch:
        index = torch.as_tensor(indices, dtype=torch.long)
        if self.segment is None:
            waveform = self.audio.read(self.rows[indices])
        else:
            if self.starts is not None:
                starts = self.starts[indices]
            else:
                starts = torch.randint(self.max_start + 1, (len(indices),)).numpy()
            waveform = self.audio.read(self.rows[indices], starts, self.segment)
        batch = {"waveform": waveform, "index": index}
        batch.update({key: values[index] for key, values in self.labels.items()})
        if self.teacher_logits is not None:
            batch["teacher_logits"] = self.teacher_logits[index]
        return batch

    def __getitem__(self, i: int) -> Batch:
        return {key: value[0] for key, value in self.__getitems__([i]).items()}


def already_batched(batch: Batch) -> Batch:
    """The collate function of loaders over a ``ClipDataset``: it fetches whole batches itself."""
    return batch


def _world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


class SceneDataModule(L.LightningDataModule):
    """A scene dataset (TAU22, TAU20, folder-per-class, or synthetic scenes) for Lightning.

    Args:
        root: dataset root.
        layout: ``auto`` (detect from the root), ``tau22``, ``tau20`` or ``folders``.
        generate_synthetic: if ``root`` holds no dataset, write synthetic scenes of ``layout``
            there (``auto``: TAU22). From ``asc_kd.fit``, a recipe's ``true`` applies only to
            the demo root ``data/synthetic``; another root needs ``--data.generate_synthetic
            true`` on the command line.
        cache_dir: where the resampled-audio cache lives (default ``$ASC_KD_CACHE`` or
            ``~/.cache/asc_kd``).
        train_split_file: replaces the layout's training split, e.g. a DCASE24 ``split25.csv``.
        sample_rate: rate the models see; the cache resamples to it once.
        segment_seconds: length of the windows models see; clips longer than this (TAU20's
            10 s) are trained on windows and evaluated window by window and per file.
        train_crop: train on every window of a long clip (``segments``) or on one random
            window per clip and epoch (``random``).
        clip_seconds: folders layout: crop or pad clips of different lengths to this length.
        test_fraction: folders layout without split files: share of each class tested on.
        recording_pattern: folders layout: regex with a ``recording`` group over file stems;
            files of one recording stay on one side of every split (``none``: one per file).
            These three are refused with another value than their default for a TAU dataset
            (``asc_kd.data.layouts.make_layout``): there they would change nothing.
        validation: what ``val`` is: ``test`` (the development-test split, a monitoring curve:
            never select checkpoints on it), ``holdout`` (a split held out of ``train`` by
            recording, stratified by class and device, for selection and early stopping) or
            ``none``.
        holdout_fraction: share of the training split held out with ``validation="holdout"``.
        holdout_file: where the held-out split is written (default: ``holdout_split.csv`` in
            the trainer's ``default_root_dir``); an existing file is reused.
        batch_size: training batch size.
        eval_batch_size: batch size of val and test, in clips.
        num_workers: DataLoader processes (default: none for a model on the CPU reading the
            cache, else the CPUs available minus one, at most 8; see ``default_workers``).
        use_cache: read the resampled cache (fast) instead of decoding audio per batch.
        roll_seconds: maximum time roll of training clips (0 disables it).
        dir_folder: folder of device impulse responses for DIR augmentation (None disables it).
        dir_p: probability of convolving a training clip of ``dir_devices`` with a response.
        dir_devices: devices whose clips DIR may convolve (TAU: the real device a).
        teacher_logits: ensemble logits file for distillation (``python -m asc_kd.logits``).
        seed: seed of the training shuffle order and of the held-out split.
        pin_memory: pin host memory (default: when CUDA is available).
        check_data: run the data check (headers only) before caching.
        lock_timeout: seconds to wait for another process that builds the same audio cache or
            generates the same synthetic scenes (they start together under SLURM); it then
            uses what that process built.
    """

    def __init__(
        self,
        root: str = DEMO_ROOT,
        layout: LayoutName = "auto",
        generate_synthetic: bool = False,
        cache_dir: str | None = None,
        train_split_file: str | None = None,
        sample_rate: int = 32_000,
        segment_seconds: float = 1.0,
        train_crop: Literal["segments", "random"] = "segments",
        clip_seconds: float | None = None,
        test_fraction: float = 0.2,
        recording_pattern: str | None = DEFAULT_RECORDING_PATTERN,
        validation: Validation = "test",
        holdout_fraction: float = 0.1,
        holdout_file: str | None = None,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        num_workers: int | None = None,
        use_cache: bool = True,
        roll_seconds: float = 0.1,
        dir_folder: str | None = None,
        dir_p: float = 0.4,
        dir_devices: tuple[str, ...] = ("a",),
        teacher_logits: str | None = None,
        seed: int = 0,
        pin_memory: bool | None = None,
        check_data: bool = True,
        lock_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        if validation not in ("test", "holdout", "none"):
            raise ConfigError(f"data.validation must be test, holdout or none, got {validation!r}")
        if segment_seconds <= 0:
            raise ConfigError(f"data.segment_seconds must be > 0, got {segment_seconds}")
        self.root = Path(root)
        self.validation = validation
        default_cache = os.environ.get("ASC_KD_CACHE", Path.home() / ".cache" / "asc_kd")
        self.cache_dir = Path(cache_dir) if cache_dir else Path(default_cache)
        self.num_workers = num_workers  # None: default_workers() when the loaders are made
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.datasets: dict[str, ClipDataset] = {}
        self._layout: Layout | None = None
        self._frames: dict[str, pd.DataFrame] | None = None
        self._responses: torch.Tensor | None = None
        #: Sampled fingerprint (``fingerprint_files``) of the train + test clips, set by ``setup``.
        self.fingerprint: str | None = None
        #: Full content hash of the train + test clips, set by ``setup`` when they come from the cache.
        self.content_hash: str | None = None
        self._fingerprinted: list[str] = []
        self._source: AudioCache | WavSource | None = None

    # -- the dataset ------------------------------------------------------------------------
    def ensure_root(self) -> None:
        """Make sure the root holds a dataset: generate the synthetic scenes there when asked
        (``generate_synthetic``), else refuse an empty or missing root.

        Every use of the dataset calls it first; a driver that submits several jobs on the
        same root calls it once before, so that the jobs find the scenes there. Processes that
        call it together generate them once (``asc_kd.data.synthetic.ensure_synthetic``).
        """
        if holds_a_dataset(self.root):
            return
        if self.hparams.generate_synthetic:
            layout = self.hparams.layout if self.hparams.layout != "auto" else "tau22"
            ensure_synthetic(self.root, layout=layout, lock_timeout=self.hparams.lock_timeout)
            return
        raise missing_root_error(self.root)

    @property
    def layout(self) -> Layout:
        """The reader of this dataset's layout (detected on first use when ``auto``)."""
        if self._layout is None:
            self.ensure_root()
            layout = self.hparams.layout
            self._layout = make_layout(
                self.root, layout if layout != "auto" else detect_layout(self.root), **self.layout_options()
            )
        return self._layout

    def layout_options(self) -> dict[str, Any]:
        """The layout reader's options from this DataModule's (``make_layout``'s keywords): the
        data check reads the dataset with the same ones."""
        hp = self.hparams
        return {
            "train_split_file": hp.train_split_file,
            "clip_seconds": hp.clip_seconds,
            "test_fraction": hp.test_fraction,
            "seed": hp.seed,
            "recording_pattern": hp.recording_pattern,
        }

    @property
    def spec(self) -> DatasetSpec:
        """Classes, devices, rates and clip length of the dataset (linked into the task)."""
        return self.layout.spec

    def test_split(self) -> str:
        """The test split in words (the layout's ``test_split``), for the titles of result tables."""
        return self.layout.test_split()

    def frames(self) -> dict[str, pd.DataFrame]:
        """Split name -> frame, with ``val`` per ``validation``; read once."""
        if self._frames is None:
            frames = {split: frame for split, frame in self.layout.frames().items() if split != "predict"}
            if self.validation == "holdout":
                frames["train"], frames["val"] = self._hold_out(frames["train"])
            elif self.validation == "test":
                frames["val"] = frames["test"]
            for split in ("train", "test", "val"):
                if split in frames and frames[split].empty:
                    raise DatasetError(f"the {split} split of {self.root} is empty")
            self._frames = frames
        return self._frames

    def _holdout_path(self) -> Path:
        if self.hparams.holdout_file:
            return Path(self.hparams.holdout_file)
        if self.trainer is None:
            raise ConfigError(
                "data.validation=holdout outside a Trainer needs data.holdout_file (where the split goes)"
            )
        return Path(self.trainer.default_root_dir) / HOLDOUT_FILE

    def _hold_out(self, train: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        path = self._holdout_path()
        if path.is_file():
            listed = pd.read_csv(path, sep="\t", dtype=str)["filename"]
            unknown = sorted(set(listed) - set(train["filename"]))
            if unknown:
                raise DatasetError(
                    f"{path} holds out {unknown[0]!r}, which is not in the training split of {self.root}; "
                    "delete the file to hold out a new validation split"
                )
            held = train["filename"].isin(set(listed)).to_numpy()
        else:
            held = hold_out(train, self.hparams.holdout_fraction, self.hparams.seed, what="validation split")
            with atomic_write(path) as handle:
                train.loc[held, ["filename", "recording"]].to_csv(handle, sep="\t", index=False)
            log.info("held out %d of %d training clips for validation: %s", held.sum(), len(train), path)
        return train[~held].reset_index(drop=True), train[held].reset_index(drop=True)

    # -- audio ------------------------------------------------------------------------------
    def _audio(self, filenames: list[str], root: Path) -> AudioCache | WavSource:
        spec = self.spec
        if not self.hparams.use_cache:
            return WavSource(root, filenames, self.hparams.sample_rate, spec)
        return build_cache(
            root,
            filenames,
            self.cache_dir,
            self.hparams.sample_rate,
            spec.source_sample_rate,
            spec.clip_seconds,
            mono=spec.mono,
            exact_length=spec.exact_length,
            name=spec.name,
            archive=spec.archive,
            progress=self._progress_bars(),
            lock_timeout=self.hparams.lock_timeout,
        )

    def _progress_bars(self) -> bool:
        """Whether long data work shows a bar: as the trainer's (``enable_progress_bar``)."""
        return self.trainer is None or self.trainer.progress_bar_callback is not None

    def _sources(self, frames: dict[str, pd.DataFrame]) -> dict[str, AudioCache | WavSource]:
        # One cache for every split: they share the root.
        shared = list(
            dict.fromkeys(
                name for s in ("train", "val", "test") if s in frames for name in frames[s]["filename"]
            )
        )
        source = self._audio(shared, self.root)
        self._source = source
        return {split: source for split in frames}

    def prepare_data(self) -> None:
        """Generate (if asked), check and cache the audio once per node, before any rank reads it.

        The teacher logits and impulse responses are checked here too: Lightning starts the
        loggers (a CSV version folder, a W&B run) between ``prepare_data`` and ``setup``, so a
        refusal in ``setup`` would leave them behind in the run's folder.
        """
        frames = self.frames()
        if self.hparams.check_data:
            result = check_dataset(self.layout, progress=False)
            if not result.ok:
                listed = "\n  ".join(str(p) for p in result.problems[:10])
                raise DatasetError(
                    f"{self.root} failed the data check ({len(result.problems)} problem(s); "
                    f"`python -m asc_kd.check --data.root {self.root}` lists all):\n  {listed}"
                )
        sources = self._sources(frames)
        if self.hparams.teacher_logits:
            self._teacher_logits(self._train_dataset(frames, sources))
        if self.hparams.dir_folder is not None:
            load_impulse_responses(self.hparams.dir_folder, self.hparams.sample_rate)

    def setup(self, stage: str | None = None) -> None:
        frames = self.frames()
        sources = self._sources(frames)
        train = self._train_dataset(frames, sources)
        self._fingerprint(frames)
        if self.hparams.teacher_logits:
            train.teacher_logits = self._teacher_logits(train)
        self.datasets = {"train": train, "test": ClipDataset(frames["test"], sources["test"])}
        if "val" in frames:
            self.datasets["val"] = ClipDataset(frames["val"], sources["val"])
        if self.hparams.dir_folder is not None:
            self._responses = load_impulse_responses(self.hparams.dir_folder, self.hparams.sample_rate)

    def _train_dataset(
        self, frames: dict[str, pd.DataFrame], sources: dict[str, AudioCache | WavSource]
    ) -> ClipDataset:
        segment = round(self.hparams.segment_seconds * self.hparams.sample_rate)
        return ClipDataset(frames["train"], sources["train"], None, segment, self.hparams.train_crop)

    def _teacher_logits(self, train: ClipDataset) -> torch.Tensor:
        path = self.hparams.teacher_logits
        if train.segment is not None and train.crop == "random":
            raise DatasetError(
                f"teacher logits ({path}) are per training window; data.train_crop=random has no fixed "
                "windows. Use data.train_crop=segments with a logits file"
            )
        keys, logits, metadata = load_logits(path, split="train", classes=self.spec.classes)
        row_of = {key: row for row, key in enumerate(keys)}
        missing = [key for key in train.keys if key not in row_of]
        if missing:
            raise LogitsMismatchError(
                f"teacher logits file {path} does not match the dataset at {self.root}: no logits for "
                f"{len(missing)} training example(s), first {missing[0]!r}; it was made for another "
                "split, window length or dataset"
            )
        # The file's own clips, whatever their order: a subset split (DCASE24) still checks out.
        filenames = list(dict.fromkeys(k.rsplit("#", 1)[0] if metadata.get("windowed") else k for k in keys))
        change = self.data_change(metadata, filenames)
        if change is not None:
            raise LogitsMismatchError(
                f"teacher logits file {path} does not match the dataset at {self.root}: its clips hold "
                f"other audio than when the logits were made ({change}); rebuild it with "
                "`python -m asc_kd.logits`"
            )
        return logits[[row_of[key] for key in train.keys]]

    # -- what the clips are -----------------------------------------------------------------
    def _fingerprint(self, frames: dict[str, pd.DataFrame]) -> None:
        """The fingerprints of the train + test clips: from the cache when it holds them (its
        key already needed the sampled one, and its build hashed every byte), else sampled.
        Asked before ``setup`` (a resumed fit's check), it opens or builds the cache first."""
        names = list(dict.fromkeys([*frames["train"]["filename"], *frames["test"]["filename"]]))
        self._fingerprinted = names
        self.fingerprint = self.content_hash = None
        source = self._source if self._source is not None else self._sources(frames)["train"]
        if isinstance(source, AudioCache):
            self.content_hash = source.content_hash(names)
            if set(names) == source.row_of.keys():
                self.fingerprint = source.fingerprint
        if self.fingerprint is None:
            self.fingerprint = fingerprint_files(self.root, names, self.spec.archive)

    def data_record(self, filenames: Sequence[str] | None = None) -> dict[str, str | None]:
        """What checkpoints and logits files record about ``filenames`` (default: the train and
        test clips, once set up): ``dataset_fingerprint`` (sampled) and ``dataset_content_hash``
        (None when the clips do not come from the cache)."""
        if filenames is None:
            return {"dataset_fingerprint": self.fingerprint, "dataset_content_hash": self.content_hash}
        source = self._source
        content = source.content_hash(filenames) if isinstance(source, AudioCache) else None
        return {
            "dataset_fingerprint": fingerprint_files(self.root, filenames),
            "dataset_content_hash": content,
        }

    def data_change(self, record: Mapping[str, Any], filenames: Sequence[str] | None = None) -> str | None:
        """How the clips differ from those a checkpoint's or logits file's ``record`` describes
        (see ``data_record``), in words for a refusal; None when they do not, or it records nothing.

        The full content hashes are compared where both sides have one; otherwise the sampled
        fingerprints, which miss a clip rewritten at the same size. ``filenames``: the clips the
        record is about (default: the train and test clips, a checkpoint's).
        """
        if filenames is None and self.fingerprint is None:
            self._fingerprint(self.frames())  # a resumed fit asks before the trainer sets up
        names = self._fingerprinted if filenames is None else list(filenames)
        recorded = record.get("dataset_content_hash")
        source = self._source
        cache = source if isinstance(source, AudioCache) else None
        if recorded and cache is not None:
            current = self.content_hash if filenames is None else cache.content_hash(names)
            if current is not None:
                if current == recorded:
                    return None
                words = f"dataset content hash {recorded[:12]} then, {current[:12]} now"
                changed = changed_clips(self.cache_dir, names, recorded, cache)
                if changed:
                    shown = ", ".join(changed[:3]) + (
                        f" and {len(changed) - 3} more" if len(changed) > 3 else ""
                    )
                    words += f"; {len(changed)} of {len(names)} clips hold other audio: {shown}"
                return words
        recorded = record.get("dataset_fingerprint")
        if not recorded:
            return None
        current = self.data_record(filenames)["dataset_fingerprint"]
        if current == recorded:
            return None
        return (
            f"dataset fingerprint {recorded[:12]} then, {current[:12]} now; sampled: names, sizes and "
            f"the bytes of {CONTENT_SAMPLE} clips"
        )

    # -- loaders ----------------------------------------------------------------------------
    def loader(self, split: str, shuffle: bool = False, distributed: bool = True) -> DataLoader:
        """DataLoader of any split; shuffled (with the seed) only when asked.

        Under DDP the evaluation splits are divided between the processes without repeating
        a clip (Lightning's default sampler pads the last shard with repeats, which would count
        some clips twice in the reported numbers); ``distributed=False`` reads the whole split.
        """
        if not self.datasets:
            raise RuntimeError("call setup() before asking for a DataLoader")
        if split not in self.datasets:
            raise DatasetError(f"{self.root} has no {split!r} split (data.validation={self.validation!r})")
        generator = torch.Generator().manual_seed(self.hparams.seed) if shuffle else None
        batch_size = self.hparams.batch_size if split == "train" else self.hparams.eval_batch_size
        sampler = None
        if split != "train" and distributed and _world_size() > 1:
            sampler = UnrepeatedDistributedSampler(self.datasets[split], shuffle=False)
        workers = self.num_workers
        if workers is None:
            from_cache = isinstance(self.datasets[split].audio, AudioCache)
            workers = default_workers(self._model_on_cpu() and from_cache)
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            drop_last=shuffle and len(self.datasets[split]) > batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=self.pin_memory,
            collate_fn=already_batched,
            generator=generator,
        )

    def _model_on_cpu(self) -> bool:
        """Whether the model fed by these loaders computes on the CPU."""
        if self.trainer is not None:
            return isinstance(self.trainer.accelerator, CPUAccelerator)
        return not torch.cuda.is_available()

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self.loader("val") if "val" in self.datasets else []

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")

    # -- on the device ----------------------------------------------------------------------
    def augment(self, batch: Batch) -> Batch:
        """Training-time waveform augmentation: time roll, then device impulse responses."""
        waveform = time_roll(batch["waveform"], round(self.hparams.roll_seconds * self.hparams.sample_rate))
        if self._responses is not None:
            responses = self._responses.to(waveform.device)
            self._responses = responses
            devices = [self.spec.devices.index(d) for d in self.hparams.dir_devices if d in self.spec.devices]
            eligible = (
                torch.isin(batch["device"], torch.tensor(devices, device=waveform.device))
                if self.spec.devices
                else torch.ones_like(batch["device"], dtype=torch.bool)
            )
            draw = torch.rand(eligible.shape, device=waveform.device) < self.hparams.dir_p
            waveform = convolve_impulse_responses(waveform, responses, eligible & draw)
        return {**batch, "waveform": waveform}

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        if self.trainer is not None and self.trainer.training:
            return self.augment(batch)
        return batch


class TAU22DataModule(SceneDataModule):
    """TAU Urban Acoustic Scenes 2022 Mobile (1-s clips); see ``SceneDataModule``."""

    def __init__(self, root: str = "data/synthetic", **kwargs: Any) -> None:
        super().__init__(root=root, layout="tau22", **kwargs)


class TAU20DataModule(SceneDataModule):
    """TAU Urban Acoustic Scenes 2020 Mobile (10-s clips); see ``SceneDataModule``."""

    def __init__(self, root: str, **kwargs: Any) -> None:
        super().__init__(root=root, layout="tau20", **kwargs)


class FolderDataModule(SceneDataModule):
    """One folder of audio files per class; see ``SceneDataModule``."""

    def __init__(self, root: str, **kwargs: Any) -> None:
        super().__init__(root=root, layout="folders", **kwargs)


def dataset_fingerprint(datamodule: SceneDataModule) -> DatasetFingerprint:
    """What a run trained and tested on, for its record: the full content hash of the train and
    test clips when they came from the audio cache (``kind="content"``), else their sampled
    fingerprint (``kind="sampled"``: names, sizes and the bytes of 64 clips; it misses a clip
    rewritten at the same size).

    Sets the DataModule up first if it was not (that builds the cache if it uses one).
    """
    if datamodule.fingerprint is None:
        datamodule.setup()
    if datamodule.content_hash is not None:
        return {"kind": "content", "hash": datamodule.content_hash}
    assert datamodule.fingerprint is not None
    return {"kind": "sampled", "hash": datamodule.fingerprint}
