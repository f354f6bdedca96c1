"""Long clips scored window by window: every window counts for its file, and each window is
scored against its own clip's label, in the task's validation/test path and the inference
helpers alike.

The model is replaced by a function of the window's mean value ``m``: the logit of class ``k`` is
``-(m - k)²``, so a window of value 2 predicts class 2 and every number below is worked out by
hand. Two 3.5-s clips at 32 kHz, 1-s windows: windows start at 0, 1 and 2 s, and one more is
aligned to the end (2.5-3.5 s), so each clip has four windows.

- clip X, label 1, seconds of value 0, 0, 1, 4 -> window means 0, 0, 1, 2.5
- clip Y, label 2, seconds of value 2, 2, 2, 0 -> window means 2, 2, 2, 1
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import soundfile
import torch
from torch.utils.data import DataLoader

import asc_kd.training.logits as logits_module
from asc_kd.data.datamodule import SceneDataModule
from asc_kd.data.spec import DatasetSpec
from asc_kd.data.teacher_logits import load_logits
from asc_kd.deployment.predict import Scorer, predict_files
from asc_kd.evaluation.inference import predict_logits, window_logits
from asc_kd.evaluation.metrics import scene_metrics
from asc_kd.tasks import ClassificationTask
from asc_kd.training.logits import TeacherRun, export_logits

RATE = 32_000
CLASSES = ("a", "b", "c")
SPEC = DatasetSpec("abc", CLASSES, ("d0", "d1"))
SECONDS = [[0.0, 0.0, 1.0, 4.0], [2.0, 2.0, 2.0, 0.0]]
TARGET = torch.tensor([1, 2])
DEVICE = torch.tensor([0, 1])

# Window logits, by hand: -(m - k)² for k = 0, 1, 2.
X_ROWS = [[0.0, -1.0, -4.0], [0.0, -1.0, -4.0], [-1.0, 0.0, -1.0], [-6.25, -2.25, -0.25]]
Y_ROWS = [[-4.0, -1.0, 0.0], [-4.0, -1.0, 0.0], [-4.0, -1.0, 0.0], [-1.0, 0.0, -1.0]]
# File logits: the mean of the four rows. X: (-7.25, -4.25, -9.25)/4 -> class 1 (its label),
# though its first three windows alone, or its first window, say class 0. Y -> class 2.
X_FILE = [-1.8125, -1.0625, -2.3125]
Y_FILE = [-3.25, -0.75, -0.25]
# Window predictions: X 0, 0, 1, 2 against label 1 (one right); Y 2, 2, 2, 1 against 2 (three).
WINDOW_ACC = 4 / 8
FILE_ACC = 2 / 2


def _nll(row: list[float], target: int) -> float:
    return math.log(sum(math.exp(v) for v in row)) - row[target]


WINDOW_LOG_LOSS = (sum(_nll(r, 1) for r in X_ROWS) + sum(_nll(r, 2) for r in Y_ROWS)) / 8
FILE_LOG_LOSS = (_nll(X_FILE, 1) + _nll(Y_FILE, 2)) / 2


def _waveform() -> torch.Tensor:
    """(2, 3.5 s): each second constant; the last half second holds the fourth value."""
    clips = []
    for values in SECONDS:
        parts = [torch.full((RATE,), v) for v in values[:3]] + [torch.full((RATE // 2,), values[3])]
        clips.append(torch.cat(parts))
    return torch.stack(clips)


def _by_mean(window: torch.Tensor) -> torch.Tensor:
    m = window.double().mean(-1, keepdim=True)
    return (-((m - torch.arange(3, dtype=torch.float64)) ** 2)).float()


@pytest.fixture
def task() -> ClassificationTask:
    task = ClassificationTask(model="debug", spec=SPEC)
    task.forward = _by_mean  # the task's own window splitting, the hand-made model
    return task.eval()


def test_the_windows_and_their_logits(task: ClassificationTask) -> None:
    logits = window_logits(task, _waveform(), task.segment_samples)
    assert logits.shape == (2, 4, 3)
    torch.testing.assert_close(logits, torch.tensor([X_ROWS, Y_ROWS]))


@pytest.mark.parametrize("stage", ["validation", "test"])
def test_the_task_scores_each_window_by_its_clip_and_each_file_by_all_its_windows(
    task: ClassificationTask, stage: str
) -> None:
    batch = {"waveform": _waveform(), "target": TARGET, "device": DEVICE, "index": torch.arange(2)}
    step = task.validation_step if stage == "validation" else task.test_step
    with torch.no_grad():
        step(batch, 0)
    prefix = "val" if stage == "validation" else "test"
    windows = {k: float(v) for k, v in getattr(task, f"{prefix}_metrics").compute().items()}
    files = {k: float(v) for k, v in getattr(task, f"{prefix}_file_metrics").compute().items()}
    assert windows[f"{prefix}/acc"] == pytest.approx(WINDOW_ACC)
    assert windows[f"{prefix}/acc_device_d0"] == pytest.approx(1 / 4)
    assert windows[f"{prefix}/acc_device_d1"] == pytest.approx(3 / 4)
    assert windows[f"{prefix}/log_loss"] == pytest.approx(WINDOW_LOG_LOSS, rel=1e-6)
    assert files[f"{prefix}/file/acc"] == pytest.approx(FILE_ACC)
    assert files[f"{prefix}/file/log_loss"] == pytest.approx(FILE_LOG_LOSS, rel=1e-6)


def test_predict_scores_each_file_by_the_mean_of_its_window_logits(
    task: ClassificationTask, tmp_path: Path
) -> None:
    """The prediction path (``asc_kd.deployment.predict``) on the two clips as wav files: the same four
    windows per file, and each file's probabilities the softmax of its mean window logits."""
    for name, clip in zip(("x.wav", "y.wav"), _waveform(), strict=True):
        soundfile.write(tmp_path / name, clip.numpy(), RATE, subtype="FLOAT")
    scorer = Scorer(task, RATE, task.segment_samples, list(CLASSES), "hand-made model")
    frame = predict_files(scorer, tmp_path, ["x.wav", "y.wav"])
    assert frame["scene_label"].tolist() == ["b", "c"]  # X: class 1, though 3 of its 4 windows are not
    expected = torch.tensor([X_FILE, Y_FILE]).softmax(-1)
    assert frame[list(CLASSES)].to_numpy().tolist() == [pytest.approx(r, abs=1e-6) for r in expected.tolist()]
    windows = predict_files(scorer, tmp_path, ["x.wav"], per_window=True)
    assert windows["start_s"].tolist() == [0.0, 1.0, 2.0, 2.5]
    by_window = torch.tensor(X_ROWS).softmax(-1).tolist()
    assert windows[list(CLASSES)].to_numpy().tolist() == [pytest.approx(r, abs=1e-6) for r in by_window]


def test_predict_logits_and_scene_metrics_agree_with_the_hand_values(task: ClassificationTask) -> None:
    waveform = _waveform()
    dataset = [{"waveform": waveform[i], "index": torch.tensor(i)} for i in range(2)]
    loader = DataLoader(dataset, batch_size=1)
    logits = predict_logits(task, loader, torch.device("cpu"), task.segment_samples)
    torch.testing.assert_close(logits, torch.tensor([X_ROWS, Y_ROWS]))
    out = scene_metrics(logits, TARGET, DEVICE, SPEC)
    assert out["acc"] == pytest.approx(WINDOW_ACC)
    assert out["log_loss"] == pytest.approx(WINDOW_LOG_LOSS, rel=1e-6)
    assert out["file/acc"] == pytest.approx(FILE_ACC)
    assert out["file/log_loss"] == pytest.approx(FILE_LOG_LOSS, rel=1e-6)


def test_the_file_rule_is_the_mean_of_logits_not_of_probabilities() -> None:
    """Clip X is where the two rules part: mean probabilities would say class 0."""
    probabilities = torch.tensor(X_ROWS).softmax(-1).mean(0)
    assert probabilities.argmax().item() == 0
    assert torch.tensor(X_FILE).argmax().item() == 1
    out = scene_metrics(torch.tensor([X_ROWS]), TARGET[:1], DEVICE[:1], SPEC)
    assert out["file/acc"] == 1.0


def test_the_logits_export_of_a_split_of_long_clips_saves_each_file_s_mean_window_logits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``logits --split test`` on long clips: each file's saved logits are the file rule over its
    four windows (X_FILE, Y_FILE), not its first window's (X_ROWS[0], which says class 0).

    The clips are X and Y at a quarter of their values (audio stays in [-1, 1]); the teacher
    scores four times a window's mean, so its window logits are X_ROWS and Y_ROWS again.
    """
    root = tmp_path / "scenes"
    clips = {"b/x.wav": _waveform()[0], "c/y.wav": _waveform()[1]}
    clips |= {f"{label}/train{i}.wav": _waveform()[i] for label in CLASSES for i in (0, 1)}
    for name, clip in clips.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(root / name, (clip / 4).numpy(), RATE, subtype="FLOAT")
    (root / "evaluation_setup").mkdir()
    train = "\n".join(name for name in clips if "train" in name)
    (root / "evaluation_setup" / "fold1_train.csv").write_text(f"filename\n{train}\n")
    (root / "evaluation_setup" / "fold1_evaluate.csv").write_text("filename\nb/x.wav\nc/y.wav\n")
    datamodule = SceneDataModule(str(root), cache_dir=str(tmp_path / "cache"), num_workers=0, use_cache=False)
    assert datamodule.spec.classes == CLASSES and datamodule.spec.clip_seconds == 3.5

    def teacher(run: TeacherRun, datamodule: SceneDataModule) -> ClassificationTask:
        task = ClassificationTask(model="debug", spec=datamodule.spec)
        task.forward = lambda window: _by_mean(4 * window)
        return task.eval()

    monkeypatch.setattr(logits_module, "load_teacher", teacher)
    out = tmp_path / "test_logits.npz"
    export_logits([TeacherRun("hand-made", "hand-made")], datamodule, out, split="test", progress=False)
    keys, logits, metadata = load_logits(out, split="test", classes=CLASSES)
    assert keys == ["b/x.wav", "c/y.wav"] and metadata["windowed"] is False
    torch.testing.assert_close(logits, torch.tensor([X_FILE, Y_FILE]))
