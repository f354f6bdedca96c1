"""DCASE Task 1 metrics as one torchmetrics ``Metric``: overall, per device, group and class.

CP-JKU's code counts per-device accuracy in hand-built dicts, separately in the validation and
the test loop; here one metric holds a (device x true class x predicted class) count tensor
plus the summed log loss, synchronises across processes like any torchmetrics state, and
derives every number from that, for validation, test, quantized models and teacher tables.
Classes, devices and groups come from the dataset's spec (or a checkpoint that recorded it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import Metric

from asc_kd.data.spec import DatasetSpec

#: Probability floor of the log loss, as scikit-learn's log_loss (used by DCASE) clips.
LOG_LOSS_EPS = 1e-15


def file_logits(window_logits: torch.Tensor) -> torch.Tensor:
    """A file's logits from its windows' logits ``(..., windows, classes)``: their mean.

    The one rule for a long clip's file-level score (the DCASE metric is per file): the
    ``file/`` metrics of validation, test and the tables, the teacher logits export, and
    ``python -m asc_kd.predict``, whose probability columns are the softmax of these logits.
    The mean of logits rather than of probabilities, because:

    - the softmax of the mean logits is the normalised geometric mean of the window
      probabilities: windows add evidence, where an arithmetic mean of probabilities caps a
      confident window at 1 and lets a few undecided windows outvote it;
    - the submission's probabilities are then exactly those the ``file/log_loss`` scores, so
      a submission file's log loss and accuracy are the reported ``file/`` values;
    - one window gives its own logits back, so 1-s clips are unchanged.
    """
    return window_logits.mean(dim=-2)


class SceneMetrics(Metric):
    """Accuracy, macro class accuracy, log loss, accuracy per device, group and class, and log
    loss per device and class.

    Classes, devices and device groups are those of ``spec``. ``update(logits, target,
    device)`` takes raw logits, class indices and device indices (the order of the spec's
    devices; -1 for unknown devices, which count only overall).
    ``compute()`` returns a flat dict of scalars, e.g. ``acc``, ``macro_acc``, ``log_loss``,
    ``acc_device_s4``, ``acc_unseen``, ``acc_class_tram``, ``log_loss_device_s4``,
    ``log_loss_class_tram``. A device, group or class without examples
    reports NaN rather than a misleading 0.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, spec: DatasetSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.classes, self.devices, self.groups = spec.classes, spec.devices, spec.device_groups
        n_dev, n_cls = len(self.devices) + 1, len(self.classes)  # last device row: unknown
        self.add_state("counts", torch.zeros(n_dev, n_cls, n_cls, dtype=torch.long), dist_reduce_fx="sum")
        # Summed log loss per (device, true class): the DCASE submission reports it per class and
        # per device beside the overall value.
        self.add_state("nll_sums", torch.zeros(n_dev, n_cls, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, target: torch.Tensor, device: torch.Tensor) -> None:
        if logits.ndim != 2 or logits.shape[1] != len(self.classes):
            raise ValueError(f"logits must be (batch, {len(self.classes)}), got {tuple(logits.shape)}")
        if bool((target < 0).any()):
            raise ValueError("SceneMetrics needs labelled examples; got target -1 (unlabelled)")
        log_probs = F.log_softmax(logits.detach().double(), dim=1)
        log_probs = log_probs.clamp(min=torch.log(torch.tensor(LOG_LOSS_EPS, dtype=torch.float64)))
        nll = -log_probs.gather(1, target.unsqueeze(1)).squeeze(1)
        # Devices outside this metric's list (or -1) count overall only, in the last row.
        device_row = torch.where((device < 0) | (device >= len(self.devices)), len(self.devices), device)
        n_cls = len(self.classes)
        self.nll_sums.view(-1).index_add_(0, device_row * n_cls + target, nll)
        flat = (device_row * n_cls + target) * n_cls + logits.argmax(dim=1)
        self.counts += torch.bincount(flat, minlength=self.counts.numel()).view_as(self.counts)

    @staticmethod
    def _accuracy(counts: torch.Tensor) -> torch.Tensor:
        # counts: (..., true, predicted)
        total = counts.sum(dim=(-2, -1)).double()
        correct = counts.diagonal(dim1=-2, dim2=-1).sum(-1).double()
        return torch.where(total > 0, correct / total.clamp(min=1), torch.full_like(total, float("nan")))

    @staticmethod
    def _mean(sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """``sums / counts``, NaN where nothing was counted."""
        counts = counts.double()
        return torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, float("nan")))

    def confusion(self) -> torch.Tensor:
        """(true, predicted) counts over all devices."""
        return self.counts.sum(0)

    def compute(self) -> dict[str, torch.Tensor]:
        confusion = self.confusion()
        n = confusion.sum()
        per_class = confusion.diagonal().double() / confusion.sum(1).double()
        out = {
            "acc": self._accuracy(confusion),
            "macro_acc": per_class.nanmean(),
            "log_loss": self.nll_sums.sum() / n.clamp(min=1),
        }
        device_acc = self._accuracy(self.counts[:-1])
        device_log_loss = self._mean(self.nll_sums[:-1].sum(1), self.counts[:-1].sum(dim=(1, 2)))
        for name, value, loss in zip(self.devices, device_acc, device_log_loss, strict=True):
            out[f"acc_device_{name}"] = value
            out[f"log_loss_device_{name}"] = loss
        for group, members in self.groups.items():
            rows = [self.devices.index(d) for d in members if d in self.devices]
            out[f"acc_{group}"] = self._accuracy(self.counts[rows].sum(0))
        class_log_loss = self._mean(self.nll_sums.sum(0), confusion.sum(1))
        for name, value, loss in zip(self.classes, per_class, class_log_loss, strict=True):
            out[f"acc_class_{name}"] = value
            out[f"log_loss_class_{name}"] = loss
        return {key: value.float() for key, value in out.items()}


def scene_metrics(
    logits: torch.Tensor,
    target: torch.Tensor,
    device: torch.Tensor,
    spec: DatasetSpec,
    confusion: bool = False,
) -> dict[str, Any]:
    """``SceneMetrics`` of precomputed logits over ``spec``'s classes and devices, as plain floats.

    ``logits`` is (examples, classes) or (examples, windows, classes) for clips scored in
    several windows: the plain keys are then per window (each window carries its clip's
    label), and ``file/...`` keys score each clip by ``file_logits`` (the DCASE 2020 per-file
    metric). With ``confusion`` the (true, predicted) count matrix is added as a
    nested list.
    """
    if logits.ndim == 2:
        logits = logits.unsqueeze(1)
    n_windows = logits.shape[1]
    # The logits are complete here (gathered already when several processes scored them), so
    # nothing is synchronised: a process computing alone must not wait for the others.
    metric = SceneMetrics(spec, sync_on_compute=False)
    metric.update(
        logits.reshape(-1, logits.shape[-1]),
        target.repeat_interleave(n_windows),
        device.repeat_interleave(n_windows),
    )
    out: dict[str, Any] = {k: float(v) for k, v in metric.compute().items()}
    if confusion:
        out["confusion"] = metric.confusion().tolist()
    if n_windows > 1:
        per_file = SceneMetrics(spec, sync_on_compute=False)
        per_file.update(file_logits(logits), target, device)
        out.update({f"file/{k}": float(v) for k, v in per_file.compute().items()})
    return out


def confusion_image(confusion: torch.Tensor, cell: int = 24) -> torch.Tensor:
    """Row-normalised confusion matrix as an RGB uint8 image (H, W, 3), white to blue.

    Made with tensor ops only, so loggers get a picture without a plotting dependency.
    """
    rates = confusion.double() / confusion.sum(1, keepdim=True).clamp(min=1)
    white, blue = torch.tensor([255.0, 255.0, 255.0]), torch.tensor([8.0, 48.0, 107.0])
    rgb = white + rates.float().unsqueeze(-1) * (blue - white)
    return rgb.repeat_interleave(cell, 0).repeat_interleave(cell, 1).round().to(torch.uint8)


def labelled_confusion_image(confusion: torch.Tensor, classes: Sequence[str], cell: int = 24) -> np.ndarray:
    """``confusion_image`` with its axes titled (true rows, predicted columns) and class names
    beside the rows and above the columns, as an RGB uint8 array for loggers (W&B)."""
    from PIL import Image, ImageDraw, ImageFont

    matrix = Image.fromarray(confusion_image(confusion, cell).numpy())
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = max(int(measure.textlength(name, font=font)) for name in classes) + 8
    n = len(classes) * cell
    canvas = Image.new("RGB", (18 + width + n + 4, 18 + width + n + 4), "white")
    draw = ImageDraw.Draw(canvas)
    left = top = 18 + width
    canvas.paste(matrix, (left, top))
    for i, name in enumerate(classes):  # rows: true classes, right-aligned beside the matrix
        draw.text(
            (left - 4 - measure.textlength(name, font=font), top + i * cell + cell // 2 - 5),
            name,
            fill="black",
            font=font,
        )
        label = Image.new("RGB", (width, 12), "white")  # columns: predicted classes, written upwards
        ImageDraw.Draw(label).text((4, 0), name, fill="black", font=font)
        canvas.paste(label.rotate(90, expand=True), (left + i * cell + cell // 2 - 6, 18))
    draw.text((2, top + n // 2), "true", fill="black", font=font)
    draw.text((left + n // 2 - 24, 2), "predicted", fill="black", font=font)
    return np.asarray(canvas, dtype=np.uint8)
