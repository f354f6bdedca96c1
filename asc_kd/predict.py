"""``python -m asc_kd.predict MODEL``: the DCASE submission file for a folder or a split.

    python -m asc_kd.predict outputs/system1.int8.pt --folder EVAL_ROOT/audio --out submission.csv
    python -m asc_kd.predict best.ckpt --root DATA            # fold1_test.csv of the dev set

MODEL is an fp32 checkpoint of any asc_kd task or an int8 artifact (``*.int8.pt``). The output
is tab-separated: ``filename``, ``scene_label`` and one probability column per scene in the
DCASE order. Recordings of any length, rate and channel count are accepted: they are
mixed to mono and resampled to the model's rate (each said once), scored in 1-s windows with
a configurable hop, and the window probabilities averaged into one row per file
(``--per-window`` writes one row per window with its start time instead).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
import torch
from tqdm.auto import tqdm

from asc_kd.data.audio import AudioFileError, Resampler
from asc_kd.data.tau22 import SCENES, list_audio_folder, read_split
from asc_kd.io import atomic_write

log = logging.getLogger(__name__)
Scorer = Callable[[torch.Tensor], torch.Tensor]


def load_scorer(model: str | Path) -> tuple[Scorer, int]:
    """A waveform -> logits function and its sample rate, from a checkpoint or an int8 artifact."""
    path = Path(model)
    if path.suffix == ".pt":
        from asc_kd.quantization import load_artifact

        module, meta = load_artifact(path)
        return module, int(meta.get("sample_rate", 32000))
    from asc_kd.checkpoints import load_task

    task = load_task(path)
    return task, int(task.frontend.sample_rate)


class _Notes:
    """Log each kind of input conversion once per run, not once per file."""

    def __init__(self) -> None:
        self.said: set[str] = set()

    def __call__(self, key: str, message: str, *args: object) -> None:
        if key not in self.said:
            self.said.add(key)
            log.warning(message, *args)


def windows(waveform: torch.Tensor, size: int, hop: int) -> tuple[torch.Tensor, list[float]]:
    """(windows, samples) of ``size`` every ``hop`` samples; a short tail is zero-padded."""
    n = waveform.shape[0]
    if n < size:
        waveform = torch.nn.functional.pad(waveform, (0, size - n))
        n = size
    starts = list(range(0, n - size + 1, hop))
    if starts[-1] + size < n:  # keep the end of the recording
        starts.append(n - size)
    return torch.stack([waveform[s : s + size] for s in starts]), starts


@torch.no_grad()
def predict_files(
    scorer: Scorer,
    sample_rate: int,
    root: Path,
    filenames: list[str],
    hop_seconds: float = 1.0,
    per_window: bool = False,
) -> pd.DataFrame:
    """Scene probabilities per file (or per window) in DCASE column order."""
    size, hop = sample_rate, max(1, round(hop_seconds * sample_rate))
    notes, resamplers, rows = _Notes(), {}, []
    for name in tqdm(filenames, desc="predicting", unit="file"):
        path = root / name
        try:
            audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError) as err:
            raise AudioFileError(f"{path}: not a readable audio file ({err})") from err
        if audio.shape[1] > 1:
            notes("mono", "mixing %d-channel audio to mono (first: %s)", audio.shape[1], path)
        mono = np.ascontiguousarray(audio.mean(axis=1))
        if rate != sample_rate:
            notes(
                f"rate{rate}",
                "resampling %d Hz audio to the model's %d Hz (first: %s)",
                rate,
                sample_rate,
                path,
            )
            if rate not in resamplers:
                resamplers[rate] = Resampler(rate, sample_rate)
        waveform = resamplers[rate](mono) if rate != sample_rate else torch.from_numpy(mono)
        batch, starts = windows(waveform, size, hop)
        probabilities = scorer(batch).float().softmax(-1)
        if per_window:
            rows += [(name, s / sample_rate, p) for s, p in zip(starts, probabilities, strict=True)]
        else:
            rows.append((name, None, probabilities.mean(0)))
    probs = torch.stack([r[2] for r in rows]).numpy()
    frame = pd.DataFrame({"filename": [r[0] for r in rows]})
    if per_window:
        frame["start_s"] = [r[1] for r in rows]
    frame["scene_label"] = [SCENES[i] for i in probs.argmax(1)]
    for i, scene in enumerate(SCENES):
        frame[scene] = probs[:, i]
    return frame


def write_submission(frame: pd.DataFrame, out: str | Path) -> Path:
    """Tab-separated submission file, written atomically."""
    with atomic_write(out) as handle:
        frame.to_csv(handle, sep="\t", index=False, float_format="%.6f")
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asc_kd.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="checkpoint (.ckpt) or int8 artifact (.int8.pt)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--folder", help="folder of audio files (e.g. the evaluation set's audio/)")
    source.add_argument("--root", help="dataset root: predicts the files of evaluation_setup/fold1_test.csv")
    parser.add_argument("--out", default="submission.csv")
    parser.add_argument("--hop-seconds", type=float, default=1.0, help="hop between 1-s windows")
    parser.add_argument("--per-window", action="store_true", help="one row per window, with start_s")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    scorer, rate = load_scorer(args.model)
    if args.folder:
        root = Path(args.folder).parent
        filenames = list(list_audio_folder(args.folder)["filename"])
    else:
        root = Path(args.root)
        filenames = list(read_split(root, "predict")["filename"])
    frame = predict_files(scorer, rate, root, filenames, args.hop_seconds, args.per_window)
    out = write_submission(frame, args.out)
    log.info("wrote %d rows to %s", len(frame), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
