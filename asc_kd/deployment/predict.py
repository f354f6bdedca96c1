"""DCASE submissions: any model (task checkpoint or int8 artifact) scored over audio files of
any length, rate and channel count, and the tab-separated submission file.

This is asc_kd's one prediction path (``python -m asc_kd.predict`` drives it), rather than a
``predict`` split of ``SceneDataModule`` run by a Trainer, because unlabelled files are not a
dataset: each is read as it is (its own rate, channels and length; the DataModule's cache crops
or pads every clip to the dataset's ``clip_seconds``) and needs no cache (a dataset's layout
gives at most the list of files), and the model may be an int8 TorchScript artifact, which is no
LightningModule. A file's probabilities are the softmax of
``asc_kd.evaluation.metrics.file_logits``, the rule the test metrics score files by.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import soundfile
import torch
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from asc_kd.core.io import atomic_write
from asc_kd.data.audio import Resampler, list_audio_files, read_clip, split_windows, window_starts
from asc_kd.data.spec import DatasetError
from asc_kd.deployment.quantize import load_artifact
from asc_kd.evaluation.inference import LogitsFn
from asc_kd.evaluation.metrics import file_logits
from asc_kd.tasks.restore import fit_data_options, load_task

log = logging.getLogger(__name__)


@dataclass
class Scorer:
    """A waveform -> logits function with what it expects and what it predicts, and the data
    options its fit read (``asc_kd.tasks.restore.fit_data_options``), defaults of a dataset's."""

    logits: LogitsFn
    sample_rate: int
    window: int
    classes: list[str]
    source: str
    data: dict[str, Any] = field(default_factory=dict)


def load_scorer(model: str | Path) -> Scorer:
    """A scorer from a task checkpoint (``.ckpt``) or an int8 artifact (``.int8.pt``)."""
    path = Path(model)
    if path.suffix == ".pt":
        module, meta = load_artifact(path)
        rate = int(meta.get("sample_rate", 32000))
        seconds = float(meta.get("segment_seconds", 1.0))
        # The data options it was quantized on; an artifact without them gives its rate and window.
        data = meta.get("data") or {"sample_rate": rate, "segment_seconds": seconds}
        return Scorer(module, rate, round(seconds * rate), list(meta["classes"]), str(path), data)
    task = load_task(path)
    return Scorer(
        task, task.sample_rate, task.segment_samples, list(task.classes), str(path), fit_data_options(path)
    )


class _Notes:
    """Log each kind of input conversion once per run, not once per file."""

    def __init__(self) -> None:
        self.said: set[str] = set()

    def __call__(self, key: str, message: str, *args: object) -> None:
        if key not in self.said:
            self.said.add(key)
            log.warning(message, *args)


@torch.no_grad()
def predict_files(
    scorer: Scorer,
    root: Path,
    filenames: list[str],
    hop_seconds: float | None = None,
    per_window: bool = False,
) -> pd.DataFrame:
    """Class probabilities per file (or per window), one column per class of the model.

    Files of any length, rate and channel count are mixed to mono, resampled to the model's
    rate (each conversion said once) and scored in windows every ``hop_seconds`` (default: one
    window, back to back, as validation and test cut long clips); a file's
    probabilities are the softmax of ``file_logits`` (the mean of its window logits), the rule
    validation and test score files by.
    """
    size = scorer.window
    hop = size if hop_seconds is None else max(1, round(hop_seconds * scorer.sample_rate))
    notes, resamplers, rows = _Notes(), {}, []
    with logging_redirect_tqdm():  # the notes through tqdm.write: on their own lines, not in the bar
        for name in tqdm(filenames, desc="predicting", unit="file"):
            path = root / name
            audio, rate = read_clip(path, mono=False)
            channels = soundfile.info(str(path)).channels
            if channels > 1:
                notes("mono", "mixing %d-channel audio to mono (first: %s)", channels, path)
            if rate != scorer.sample_rate:
                notes(
                    f"rate{rate}",
                    "resampling %d Hz audio to the model's %d Hz (first: %s)",
                    rate,
                    scorer.sample_rate,
                    path,
                )
                if rate not in resamplers:
                    resamplers[rate] = Resampler(rate, scorer.sample_rate)
            waveform = resamplers[rate](audio) if rate != scorer.sample_rate else torch.from_numpy(audio)
            starts = window_starts(waveform.shape[0], size, hop)
            windows = split_windows(waveform.unsqueeze(0), size, hop)[0]
            logits = scorer.logits(windows).float()
            if per_window:
                rows += [
                    (name, s / scorer.sample_rate, p) for s, p in zip(starts, logits.softmax(-1), strict=True)
                ]
            else:
                rows.append((name, None, file_logits(logits).softmax(-1)))
    probs = torch.stack([r[2] for r in rows]).numpy()
    frame = pd.DataFrame({"filename": [r[0] for r in rows]})
    if per_window:
        frame["start_s"] = [r[1] for r in rows]
    frame["scene_label"] = [scorer.classes[i] for i in probs.argmax(1)]
    for i, label in enumerate(scorer.classes):
        frame[label] = probs[:, i]
    return frame


def folder_files(folder: str | Path) -> tuple[Path, list[str]]:
    """The audio files under ``folder`` to score, named as a submission names them: relative to
    the folder's parent (``audio/0.wav`` for the evaluation set's ``audio/``), with the root they
    are relative to. Other files are logged as skipped; a folder without audio is refused."""
    folder = Path(folder)
    files, skipped = list_audio_files(folder)
    if skipped:
        shown = ", ".join(str(p.relative_to(folder)) for p in skipped[:5])
        log.warning("skipped %d file(s) that are not audio by extension: %s", len(skipped), shown)
    if not files:
        raise DatasetError(f"{folder} holds no audio files ({len(skipped)} other file(s))")
    root = folder.parent
    return root, [str(p.relative_to(root)) for p in files]


def write_submission(frame: pd.DataFrame, out: str | Path) -> Path:
    """Write the predictions of ``predict_files`` as a submission, atomically."""
    with atomic_write(out) as handle:
        frame.to_csv(handle, sep="\t", index=False, float_format="%.6f")
    return Path(out)
