"""SceneMetrics on a hand-made batch whose every number is worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from asc_kd.data.spec import DatasetSpec
from asc_kd.data.tau import DEVICES, SCENES, TAU22
from asc_kd.evaluation.metrics import SceneMetrics, scene_metrics

# Six examples: (device, true class, predicted class).
EXAMPLES = [
    ("a", 0, 0),  # correct
    ("a", 1, 2),  # wrong
    ("s1", 2, 2),  # correct
    ("s4", 3, 3),  # correct
    ("s4", 3, 0),  # wrong
    ("c", 9, 9),  # correct
]


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits 2 on the predicted class and 0 elsewhere, class indices, device indices."""
    logits = torch.zeros(len(EXAMPLES), len(SCENES))
    for row, (_, _, predicted) in enumerate(EXAMPLES):
        logits[row, predicted] = 2.0
    target = torch.tensor([t for _, t, _ in EXAMPLES])
    device = torch.tensor([DEVICES.index(d) for d, _, _ in EXAMPLES])
    return logits, target, device


def _computed(*updates: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> dict[str, float]:
    metric = SceneMetrics(TAU22)
    for update in updates:
        metric.update(*update)
    return {key: value.item() for key, value in metric.compute().items()}


def test_hand_made_batch() -> None:
    out = _computed(_batch())
    assert out["acc"] == pytest.approx(4 / 6)
    # Classes with examples: airport 1/1, bus 0/1, metro 1/1, metro_station 1/2, tram 1/1.
    assert out["macro_acc"] == pytest.approx((1 + 0 + 1 + 0.5 + 1) / 5)
    # p(true) = e^2 / (e^2 + 9) when predicted, 1 / (e^2 + 9) otherwise: 4 right, 2 wrong.
    assert out["log_loss"] == pytest.approx(math.log(math.e**2 + 9) - 8 / 6, rel=1e-6)
    assert out["acc_device_a"] == pytest.approx(0.5)
    assert out["acc_device_c"] == 1.0
    assert out["acc_device_s1"] == 1.0
    assert out["acc_device_s4"] == pytest.approx(0.5)
    assert out["acc_real"] == pytest.approx(2 / 3)
    assert out["acc_seen"] == 1.0
    assert out["acc_unseen"] == pytest.approx(0.5)
    assert out["acc_class_airport"] == 1.0
    assert out["acc_class_bus"] == 0.0
    assert out["acc_class_metro"] == 1.0
    assert out["acc_class_metro_station"] == pytest.approx(0.5)
    assert out["acc_class_tram"] == 1.0


def test_log_loss_per_device_and_class_is_the_mean_over_their_examples() -> None:
    out = _computed(_batch())
    right = math.log(math.e**2 + 9) - 2  # -log p(true) when predicted
    wrong = math.log(math.e**2 + 9)
    for key, expected in {
        "log_loss_device_a": (right + wrong) / 2,
        "log_loss_device_s1": right,
        "log_loss_device_s4": (right + wrong) / 2,
        "log_loss_device_c": right,
        "log_loss_class_airport": right,
        "log_loss_class_bus": wrong,
        "log_loss_class_metro_station": (right + wrong) / 2,
        "log_loss_class_tram": right,
    }.items():
        assert out[key] == pytest.approx(expected, rel=1e-6), key
    assert math.isnan(out["log_loss_device_b"]) and math.isnan(out["log_loss_class_park"])


def test_keys() -> None:
    out = _computed(_batch())
    expected = {"acc", "macro_acc", "log_loss", "acc_real", "acc_seen", "acc_unseen"}
    expected |= {f"acc_device_{d}" for d in DEVICES} | {f"acc_class_{c}" for c in SCENES}
    expected |= {f"log_loss_device_{d}" for d in DEVICES} | {f"log_loss_class_{c}" for c in SCENES}
    assert set(out) == expected


def test_empty_devices_groups_and_classes_are_nan() -> None:
    out = _computed(_batch())
    for device in ("b", "s2", "s3", "s5", "s6"):
        assert math.isnan(out[f"acc_device_{device}"]), device
    for scene in ("park", "public_square", "shopping_mall", "street_pedestrian", "street_traffic"):
        assert math.isnan(out[f"acc_class_{scene}"]), scene
    logits, target, device = _batch()
    only_a = _computed((logits[:2], target[:2], device[:2]))
    assert math.isnan(only_a["acc_seen"]) and math.isnan(only_a["acc_unseen"])
    assert only_a["acc_real"] == pytest.approx(0.5)


def test_unknown_device_counts_only_overall() -> None:
    logits, target, _ = _batch()
    out = _computed((logits, target, torch.full_like(target, -1)))
    assert out["acc"] == pytest.approx(4 / 6)
    assert all(math.isnan(out[f"acc_device_{d}"]) for d in DEVICES)
    assert math.isnan(out["acc_real"])


def test_two_halves_equal_one_update() -> None:
    logits, target, device = _batch()
    whole = _computed((logits, target, device))
    halves = _computed((logits[:3], target[:3], device[:3]), (logits[3:], target[3:], device[3:]))
    assert whole.keys() == halves.keys()
    for key, value in whole.items():
        assert value == pytest.approx(halves[key], nan_ok=True), key


def test_confusion_counts() -> None:
    metric = SceneMetrics(TAU22)
    metric.update(*_batch())
    confusion = metric.confusion()
    assert confusion.shape == (10, 10)
    assert confusion.sum() == 6
    expected = torch.zeros(10, 10, dtype=torch.long)
    for _, true, predicted in EXAMPLES:
        expected[true, predicted] += 1
    assert torch.equal(confusion, expected)
    assert confusion[3, 3] == 1 and confusion[3, 0] == 1 and confusion[1, 2] == 1


def test_reset_clears_counts() -> None:
    metric = SceneMetrics(TAU22)
    metric.update(*_batch())
    metric.reset()
    assert metric.confusion().sum() == 0


def test_unlabelled_target_is_refused() -> None:
    logits, target, device = _batch()
    target[2] = -1
    with pytest.raises(ValueError, match="unlabelled"):
        SceneMetrics(TAU22).update(logits, target, device)


@pytest.mark.parametrize("shape", [(6, 9), (6, 11), (6,), (6, 10, 1)])
def test_wrong_logit_shape_is_refused(shape: tuple[int, ...]) -> None:
    _, target, device = _batch()
    with pytest.raises(ValueError, match="logits"):
        SceneMetrics(TAU22).update(torch.zeros(shape), target, device)


def test_confusion_image_is_row_normalised_white_to_blue() -> None:
    from asc_kd.evaluation.metrics import confusion_image

    confusion = torch.tensor([[3, 1], [0, 0]])
    image = confusion_image(confusion, cell=2)
    assert image.shape == (4, 4, 3) and image.dtype == torch.uint8
    assert image[0, 0].tolist() == [
        round(255 + 0.75 * (8 - 255)),
        round(255 + 0.75 * (48 - 255)),
        round(255 + 0.75 * (107 - 255)),
    ]
    assert image[0, 2].tolist() == [
        round(255 + 0.25 * (8 - 255)),
        round(255 + 0.25 * (48 - 255)),
        round(255 + 0.25 * (107 - 255)),
    ]
    assert image[2, 0].tolist() == [255, 255, 255]  # a class without examples stays white


def test_labelled_confusion_image_names_classes_and_axes() -> None:
    from asc_kd.evaluation.metrics import confusion_image, labelled_confusion_image

    confusion = torch.arange(100).view(10, 10)
    image = labelled_confusion_image(confusion, SCENES, cell=24)
    matrix = confusion_image(confusion, cell=24).numpy()
    assert image.dtype == np.uint8 and image.shape[2] == 3
    height, width = image.shape[:2]
    top, left = height - 4 - 240, width - 4 - 240  # the matrix sits at the bottom right
    np.testing.assert_array_equal(image[top : top + 240, left : left + 240], matrix)
    assert (image[top:, :left] < 128).any()  # class names beside the rows
    assert (image[:top, left:] < 128).any()  # class names above the columns


def test_windowed_logits_give_segment_and_file_metrics() -> None:
    # Two clips of three windows: clip 0 (class 1) is right in 2 of 3 windows, clip 1 (class 2)
    # in 1 of 3; by mean logits clip 0 is right and clip 1 wrong.
    logits = torch.full((2, 3, 10), -5.0)
    logits[0, 0, 1] = logits[0, 1, 1] = 4.0
    logits[0, 2, 3] = 2.0
    logits[1, 0, 2] = 1.0
    logits[1, 1, 7] = logits[1, 2, 7] = 6.0
    out = scene_metrics(logits, torch.tensor([1, 2]), torch.tensor([0, 8]), TAU22)
    assert out["acc"] == pytest.approx(3 / 6)
    assert out["file/acc"] == pytest.approx(1 / 2)
    assert out["acc_real"] == pytest.approx(2 / 3) and out["acc_unseen"] == pytest.approx(1 / 3)
    assert out["file/acc_real"] == 1.0 and out["file/acc_unseen"] == 0.0
    single = scene_metrics(logits[:, :1], torch.tensor([1, 2]), torch.tensor([0, 8]), TAU22)
    assert "file/acc" not in single and single["acc"] == pytest.approx(1.0)


def test_devices_the_metric_does_not_know_count_overall_only() -> None:
    metric = SceneMetrics(DatasetSpec("ab", ("a", "b")))  # no devices, as the default spec
    metric.update(torch.tensor([[3.0, 0.0]]), torch.tensor([0]), torch.tensor([5]))
    assert metric.compute()["acc"] == 1.0
