"""Inference: windows, per-file and per-window scores against the model's own output, the
submission file, and ``python -m asc_kd.predict`` on folders and dataset roots."""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
from fit_helpers import REPO, make_cpu_trainer

from asc_kd.data.audio import AudioFileError, Resampler, split_windows, window_starts
from asc_kd.data.datamodule import TAU22DataModule
from asc_kd.data.spec import DatasetError
from asc_kd.data.tau import SCENES, TAU22, read_split
from asc_kd.deployment.predict import Scorer, load_scorer, predict_files, write_submission
from asc_kd.deployment.quantize import export_artifact, quantize_static
from asc_kd.predict import main
from asc_kd.tasks import ClassificationTask
from asc_kd.tasks.restore import load_task

RATE = 32_000

# -- windows ------------------------------------------------------------------------------------


def test_windows_keep_the_end_of_the_recording() -> None:
    waveform = torch.arange(9.0)
    starts = window_starts(9, size=4, hop=2)
    assert starts == [0, 2, 4, 5]  # 0, 2, 4 by the hop, then 5 so that sample 8 is scored
    batch = split_windows(waveform[None], 4, 2)[0]
    assert torch.equal(batch, torch.stack([waveform[s : s + 4] for s in starts]))


def test_windows_at_an_exact_fit_add_nothing() -> None:
    assert window_starts(8, size=4, hop=4) == [0, 4]


def test_windows_pad_a_short_recording() -> None:
    assert window_starts(3, size=4, hop=2) == [0]
    batch = split_windows(torch.tensor([[1.0, 2.0, 3.0]]), 4, 2)[0]
    assert torch.equal(batch, torch.tensor([[1.0, 2.0, 3.0, 0.0]]))


# -- predict_files with a stand-in scorer -------------------------------------------------------


def _each_file_in_turn(seen: list[torch.Tensor] | None = None) -> Scorer:
    """A scorer whose k-th call favours scene k, keeping the batches it sees."""
    calls = itertools.count()

    def score(batch: torch.Tensor) -> torch.Tensor:
        if seen is not None:
            seen.append(batch)
        logits = torch.zeros(len(batch), len(SCENES))
        logits[:, next(calls) % len(SCENES)] = 3.0
        return logits

    return Scorer(score, RATE, RATE, list(SCENES), "stand-in")


def _write(path: Path, seconds: float, rate: int = RATE, channels: int = 1, seed: int = 0) -> np.ndarray:
    audio = 0.1 * np.random.default_rng(seed).standard_normal((round(seconds * rate), channels))
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio.astype(np.float32), rate, subtype="FLOAT")
    return audio.astype(np.float32)


def test_predict_files_one_row_per_file(tmp_path: Path) -> None:
    names = [f"audio/clip{i}.wav" for i in range(3)]
    for i, name in enumerate(names):
        _write(tmp_path / name, seconds=1.0, seed=i)
    frame = predict_files(_each_file_in_turn(), tmp_path, names)
    assert list(frame.columns) == ["filename", "scene_label", *SCENES]
    assert list(frame["filename"]) == names
    probabilities = frame[list(SCENES)].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert list(frame["scene_label"]) == [SCENES[i] for i in probabilities.argmax(1)]
    assert list(frame["scene_label"]) == list(SCENES[:3])  # the k-th file favoured scene k


def test_predict_files_per_window(tmp_path: Path) -> None:
    _write(tmp_path / "audio" / "long.wav", seconds=2.5)
    _write(tmp_path / "audio" / "short.wav", seconds=0.5)
    names = ["audio/long.wav", "audio/short.wav"]
    frame = predict_files(_each_file_in_turn(), tmp_path, names, per_window=True)
    assert list(frame.columns) == ["filename", "start_s", "scene_label", *SCENES]
    assert list(frame["filename"]) == ["audio/long.wav"] * 3 + ["audio/short.wav"]
    assert list(frame["start_s"]) == [0.0, 1.0, 1.5, 0.0]  # 1.5: the last full second
    np.testing.assert_allclose(frame[list(SCENES)].sum(axis=1), 1.0, rtol=1e-6)
    # With a 0.5-s hop the long file gives windows at 0, 0.5, 1 and 1.5 s.
    halves = predict_files(_each_file_in_turn(), tmp_path, names[:1], 0.5, per_window=True)
    assert list(halves["start_s"]) == [0.0, 0.5, 1.0, 1.5]


def test_stereo_48k_is_mixed_resampled_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    names = ["audio/stereo0.wav", "audio/stereo1.wav"]
    first = _write(tmp_path / names[0], seconds=3.5, rate=48_000, channels=2)
    _write(tmp_path / names[1], seconds=3.5, rate=48_000, channels=2, seed=1)
    seen: list[torch.Tensor] = []
    with caplog.at_level(logging.WARNING, logger="asc_kd.deployment.predict"):
        frame = predict_files(_each_file_in_turn(seen), tmp_path, names)
    # 3.5 s at 32 kHz = 112,000 samples: windows at 0, 1 and 2 s, and 2.5 s for the end.
    assert [tuple(batch.shape) for batch in seen] == [(4, RATE), (4, RATE)]
    assert len(frame) == 2
    messages = [record.getMessage() for record in caplog.records]
    assert sum("mixing 2-channel audio to mono" in m for m in messages) == 1
    assert sum("resampling 48000 Hz audio to the model's 32000 Hz" in m for m in messages) == 1
    assert names[0] in " ".join(messages)  # the first file that needed it is named

    # What was scored: the channel mean, resampled to 32 kHz.
    expected = Resampler(48_000, RATE)(first.mean(axis=1))
    assert expected.shape == (112_000,)
    torch.testing.assert_close(seen[0][0], expected[:RATE])
    torch.testing.assert_close(seen[0][-1], expected[-RATE:])


def test_predict_files_builds_one_resampler_per_rate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"audio/clip{i}.wav" for i in range(3)]
    for i, name in enumerate(names):
        _write(tmp_path / name, seconds=1.0, rate=48_000, seed=i)
    built: list[tuple[int, int]] = []

    def counting_resampler(source_rate: int, target_rate: int) -> Resampler:
        built.append((source_rate, target_rate))
        return Resampler(source_rate, target_rate)

    monkeypatch.setattr("asc_kd.deployment.predict.Resampler", counting_resampler)
    predict_files(_each_file_in_turn(), tmp_path, names)
    assert built == [(48_000, RATE)]


def test_predict_files_names_an_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "broken.wav").write_bytes(b"RIFF but not really")
    with pytest.raises(AudioFileError, match="broken.wav"):
        predict_files(_each_file_in_turn(), tmp_path, ["audio/broken.wav"])


@pytest.mark.parametrize(
    ("write", "problem"),
    [
        (lambda p: soundfile.write(p, np.zeros(0), RATE), "holds no samples"),
        (
            lambda p: soundfile.write(
                p, np.array([0.1, np.nan, 0.2] * 100, np.float32), RATE, subtype="FLOAT"
            ),
            "NaN",
        ),
    ],
    ids=["zero-length", "nan"],
)
def test_predict_files_refuses_empty_or_nan_audio_by_name(tmp_path: Path, write, problem: str) -> None:
    (tmp_path / "audio").mkdir()
    write(tmp_path / "audio" / "bad.wav")
    with pytest.raises(AudioFileError, match=problem) as info:
        predict_files(_each_file_in_turn(), tmp_path, ["audio/bad.wav"])
    assert str(tmp_path / "audio" / "bad.wav") in str(info.value)


# -- the submission file ------------------------------------------------------------------------


def _frame() -> pd.DataFrame:
    frame = pd.DataFrame({"filename": ["audio/a.wav"], "scene_label": [SCENES[0]]})
    for i, scene in enumerate(SCENES):
        frame[scene] = [0.5 if i == 0 else 0.5 / 9]
    return frame


def test_write_submission_is_tab_separated(tmp_path: Path) -> None:
    out = write_submission(_frame(), tmp_path / "sub" / "submission.csv")
    header, row = out.read_text().splitlines()
    assert header.split("\t") == ["filename", "scene_label", *SCENES]
    assert row.split("\t")[:3] == ["audio/a.wav", SCENES[0], "0.500000"]


def test_write_submission_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "submission.csv"
    out.write_text("previous\n")

    def fail_halfway(self: pd.DataFrame, handle, **kwargs) -> None:
        handle.write("filename\tscene_label\n")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", fail_halfway)
    with pytest.raises(OSError, match="disk full"):
        write_submission(_frame(), out)
    assert out.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]
    with pytest.raises(OSError, match="disk full"):
        write_submission(_frame(), tmp_path / "new.csv")
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]


# -- the command line, with real models ---------------------------------------------------------


@pytest.fixture(scope="module")
def models(tiny_root: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A debug classifier's Lightning checkpoint after a few steps, and its int8 artifact."""
    folder = tmp_path_factory.mktemp("models")
    L.seed_everything(0, verbose=False)
    task = ClassificationTask(model="debug", spec=TAU22)
    datamodule = TAU22DataModule(root=str(tiny_root), cache_dir=str(cache_dir), num_workers=0, batch_size=16)
    trainer = make_cpu_trainer(folder, max_steps=3, limit_val_batches=0)
    trainer.fit(task, datamodule=datamodule)
    trainer.save_checkpoint(folder / "debug.ckpt")
    task = load_task(folder / "debug.ckpt")
    noise = 0.1 * torch.randn(8, RATE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        int8_model = quantize_static(task.model, [task.features(noise)])
    export_artifact(task.frontend, int8_model, folder / "debug.int8.pt", {"classes": list(SCENES)})
    return {"checkpoint": folder / "debug.ckpt", "artifact": folder / "debug.int8.pt"}


def test_probabilities_are_the_model_s_own_window_by_window(models: dict[str, Path], tmp_path: Path) -> None:
    """Per file: softmax of the mean over every window of task(window), the task in eval mode."""
    audio = _write(tmp_path / "audio" / "long.wav", seconds=3.5)[:, 0]
    task = load_task(models["checkpoint"]).eval()
    starts = [0, RATE, 2 * RATE, len(audio) - RATE]  # the last window is aligned to the end
    with torch.no_grad():
        windows = torch.stack([torch.from_numpy(audio[s : s + RATE]) for s in starts])
        logits = task(windows)
        expected = logits.softmax(-1)
    scorer = load_scorer(models["checkpoint"])
    per_file = predict_files(scorer, tmp_path, ["audio/long.wav"])
    np.testing.assert_allclose(
        per_file[list(SCENES)].to_numpy()[0], logits.mean(0).softmax(-1).numpy(), atol=1e-6
    )
    per_window = predict_files(scorer, tmp_path, ["audio/long.wav"], per_window=True)
    np.testing.assert_allclose(per_window[list(SCENES)].to_numpy(), expected.numpy(), atol=1e-6)
    # Only the first window, or the model in training mode, would give other numbers.
    assert np.abs(expected[0].numpy() - expected.mean(0).numpy()).max() > 1e-4
    task.train()
    with torch.no_grad():
        assert (task(windows).softmax(-1) - expected).abs().max() > 1e-4


def _read_submission(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t")
    assert list(frame.columns) == ["filename", "scene_label", *SCENES]
    np.testing.assert_allclose(frame[list(SCENES)].sum(axis=1), 1.0, atol=1e-5)  # 6 decimals each
    assert list(frame["scene_label"]) == [SCENES[i] for i in frame[list(SCENES)].to_numpy().argmax(1)]
    return frame


@pytest.mark.parametrize("kind", ["checkpoint", "artifact"])
def test_main_on_a_folder(
    models: dict[str, Path], kind: str, tiny_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    names = list(read_split(tiny_root, "test")["filename"][:3])
    audio = tmp_path / "eval" / "audio"
    audio.mkdir(parents=True)
    for name in names:
        shutil.copy(tiny_root / name, audio)
    shutil.copy(tiny_root / names[0], audio / "LOUD.WAV")  # upper-case extensions count too
    (audio / "notes.txt").write_text("not audio")
    out = tmp_path / "out" / "submission.csv"
    with caplog.at_level(logging.WARNING, logger="asc_kd.deployment.predict"):
        assert main([str(models[kind]), "--folder", str(audio), "--out", str(out)]) == 0
    frame = _read_submission(out)
    expected = sorted([*(f"audio/{Path(name).name}" for name in names), "audio/LOUD.WAV"])
    assert sorted(frame["filename"]) == expected
    assert any(
        "skipped 1 file(s)" in r.getMessage() and "notes.txt" in r.getMessage() for r in caplog.records
    )


def test_main_on_a_folder_without_audio(models: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("x")
    with pytest.raises(DatasetError, match="holds no audio files .1 other file"):
        main(
            [str(models["checkpoint"]), "--folder", str(tmp_path / "empty"), "--out", str(tmp_path / "s.csv")]
        )
    with pytest.raises(DatasetError, match="is a file; expected a folder"):
        main([str(models["checkpoint"]), "--folder", str(tmp_path / "empty" / "a.txt")])


def test_main_on_a_dataset_root(
    models: dict[str, Path], tiny_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``--data.root`` predicts what fold1_test.csv lists (here a shortened copy of the tiny set's)."""
    listing = read_split(tiny_root, "predict")["filename"]
    names = list(listing[:: len(listing) // 4])
    root = tmp_path / "root"
    (root / "evaluation_setup").mkdir(parents=True)
    (root / "audio").mkdir()
    shutil.copy(tiny_root / "meta.csv", root)
    pd.DataFrame({"filename": names}).to_csv(root / "evaluation_setup" / "fold1_test.csv", index=False)
    for name in names:
        shutil.copy(tiny_root / name, root / "audio")
    out = tmp_path / "submission.csv"
    with caplog.at_level(logging.WARNING, logger="asc_kd.deployment.predict"):
        assert main([str(models["checkpoint"]), "--data.root", str(root), "--out", str(out)]) == 0
    frame = _read_submission(out)
    assert list(frame["filename"]) == names
    # The 44.1 kHz clips are resampled, and that is said once for all of them.
    assert sum("resampling 44100 Hz" in record.getMessage() for record in caplog.records) == 1


def test_the_conversion_notes_do_not_break_into_the_progress_bar(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """``python -m asc_kd.predict`` as a user runs it: each note on a line of its own, not after
    the bar's text (the bar is redrawn with carriage returns, so a line's visible text is what
    follows its last one)."""
    for i in range(2):
        _write(tmp_path / "eval" / f"a{i}.wav", seconds=1.0, rate=48_000, seed=i)
        _write(tmp_path / "eval" / f"b{i}.wav", seconds=1.0, rate=44_100, channels=2, seed=i)
    args = [str(models["checkpoint"]), "--folder", str(tmp_path / "eval"), "--out", str(tmp_path / "s.csv")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "asc_kd.predict", *args], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shown = [line.rsplit("\r", 1)[-1] for line in done.stderr.split("\n")]
    notes = [line for line in shown if "Hz audio" in line or "to mono" in line]
    assert [note.split(" (first")[0] for note in notes] == [
        "resampling 48000 Hz audio to the model's 32000 Hz",
        "mixing 2-channel audio to mono",
        "resampling 44100 Hz audio to the model's 32000 Hz",
    ]
    assert "predicting: 100%" in shown[-2]  # the bar is drawn, and last


@pytest.mark.parametrize("sources", [[], ["--folder", "audio", "--data.root", "data"]])
def test_predict_takes_either_a_folder_or_a_dataset(
    models: dict[str, Path], sources: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(models["checkpoint"]), *sources])
    assert exit_info.value.code == 2
    assert "give either --folder (audio files) or --data.root" in capsys.readouterr().err
