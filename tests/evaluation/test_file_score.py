"""One rule for a file's score: ``python -m asc_kd.predict`` and the task's test metrics agree.

A 3-s clip at 32 kHz holds three 1-s windows of constant value 0.5, -0.1 and -0.1. The model is
replaced by a function of a window's mean ``m``: logits ``(40 m, 1, 0)`` for classes a, b, c,
so the windows' logits are (20, 1, 0), (-4, 1, 0), (-4, 1, 0) and every number below is worked
out by hand.

- Mean of the window logits (the rule): (4, 1, 0) -> class a, probabilities
  softmax(4, 1, 0) = (0.936, 0.047, 0.017).
- Mean of the window probabilities (not the rule): (0.337, 0.485, 0.178) -> class b. The two
  rules give different labels on this file, so either path drifting to the other rule fails.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import soundfile
import torch

from asc_kd import predict
from asc_kd.data.spec import DatasetSpec
from asc_kd.deployment.predict import Scorer
from asc_kd.evaluation.metrics import file_logits
from asc_kd.tasks import ClassificationTask

RATE = 32_000
CLASSES = ("a", "b", "c")
VALUES = (0.5, -0.1, -0.1)  # one per second


def _softmax(row: list[float]) -> list[float]:
    total = sum(math.exp(v) for v in row)
    return [math.exp(v) / total for v in row]


WINDOW_LOGITS = [[40 * m, 1.0, 0.0] for m in VALUES]  # (20, 1, 0), (-4, 1, 0), (-4, 1, 0)
FILE_LOGITS = [4.0, 1.0, 0.0]
FILE_PROBABILITIES = _softmax(FILE_LOGITS)  # 0.93623955, 0.04661262, 0.01714783
MEAN_PROBABILITIES = [sum(col) / 3 for col in zip(*(_softmax(r) for r in WINDOW_LOGITS), strict=True)]


def _by_mean(window: torch.Tensor) -> torch.Tensor:
    m = window.double().mean(-1)
    return torch.stack([40 * m, torch.ones_like(m), torch.zeros_like(m)], dim=-1).float()


@pytest.fixture
def task() -> ClassificationTask:
    task = ClassificationTask(model="debug", spec=DatasetSpec("abc", CLASSES, ("d0",)))
    task.forward = _by_mean  # the task's own windows and file rule around a hand-made model
    return task.eval()


def _clip() -> torch.Tensor:
    return torch.cat([torch.full((RATE,), v) for v in VALUES])


def test_the_two_rules_disagree_on_this_clip() -> None:
    assert FILE_LOGITS == pytest.approx([sum(col) / 3 for col in zip(*WINDOW_LOGITS, strict=True)])
    assert max(range(3), key=FILE_PROBABILITIES.__getitem__) == 0  # a
    assert max(range(3), key=MEAN_PROBABILITIES.__getitem__) == 1  # b
    torch.testing.assert_close(file_logits(torch.tensor([WINDOW_LOGITS])), torch.tensor([FILE_LOGITS]))


def test_predict_csv_and_test_metrics_give_the_same_label_and_scores(
    task: ClassificationTask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The task's test path: three windows of one labelled clip, scored as one file.
    batch = {
        "waveform": _clip().unsqueeze(0),
        "target": torch.tensor([0]),
        "device": torch.tensor([0]),
        "index": torch.tensor([0]),
    }
    with torch.no_grad():
        task.test_step(batch, 0)
    files = {k: float(v) for k, v in task.test_file_metrics.compute().items()}
    assert files["test/file/acc"] == 1.0  # label a, predicted a
    file_log_loss = -math.log(FILE_PROBABILITIES[0])  # 0.0659
    assert files["test/file/log_loss"] == pytest.approx(file_log_loss, rel=1e-6)

    # The same clip through `python -m asc_kd.predict`, as a float wav in a folder.
    folder = tmp_path / "audio"
    folder.mkdir()
    soundfile.write(folder / "clip.wav", _clip().numpy(), RATE, subtype="FLOAT")
    scorer = Scorer(task, RATE, task.segment_samples, list(CLASSES), "hand-made model")
    monkeypatch.setattr(predict, "load_scorer", lambda model: scorer)
    out = tmp_path / "submission.csv"
    assert predict.main(["model.ckpt", "--folder", str(folder), "--out", str(out)]) == 0
    rows = pd.read_csv(out, sep="\t")
    assert rows["filename"].tolist() == ["audio/clip.wav"]
    assert rows["scene_label"].tolist() == ["a"]
    assert rows[list(CLASSES)].to_numpy()[0] == pytest.approx(FILE_PROBABILITIES, abs=1e-6)
    # The submission's log loss for this file is the reported file/log_loss.
    assert -math.log(rows["a"][0]) == pytest.approx(files["test/file/log_loss"], abs=1e-5)

    # Per window, predict keeps each window's own probabilities.
    assert predict.main(["model.ckpt", "--folder", str(folder), "--out", str(out), "--per-window"]) == 0
    windows = pd.read_csv(out, sep="\t")
    assert windows["start_s"].tolist() == [0.0, 1.0, 2.0]
    expected = [_softmax(r) for r in WINDOW_LOGITS]
    assert windows[list(CLASSES)].to_numpy().tolist() == [pytest.approx(r, abs=1e-6) for r in expected]
