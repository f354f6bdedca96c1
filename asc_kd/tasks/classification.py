"""``ClassificationTask``: a front-end plus a model, trained with cross-entropy.

Everything that defines the network is a hyperparameter (model name or import path and
keyword arguments, front-end name and keyword arguments, the dataset's spec), saved by
``save_hyperparameters`` (the spec as ``DatasetSpec.as_dict``'s plain data):
``asc_kd.tasks.restore.load_task`` rebuilds model and front-end from a checkpoint alone,
without the YAML that trained it, and ``load_from_checkpoint`` goes through it. Validation and
test share one code path and one metric definition (``asc_kd.evaluation.metrics.SceneMetrics``),
cloned with ``val/`` and ``test/`` prefixes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from os import PathLike
from typing import TYPE_CHECKING, Any, Literal

import lightning as L
import torch
from torch import nn
from torchmetrics import MetricCollection

from asc_kd import __version__
from asc_kd.core.batch import Batch
from asc_kd.core.errors import ConfigError
from asc_kd.core.io import saved_device_or_cpu
from asc_kd.data.spec import DatasetSpec
from asc_kd.evaluation.inference import Precision, autocast, uses_bf16, window_logits
from asc_kd.evaluation.metrics import SceneMetrics, file_logits, labelled_confusion_image
from asc_kd.evaluation.tables import run_precision
from asc_kd.models import get_model, model_path
from asc_kd.models.frontends import get_frontend
from asc_kd.tasks.losses import classification_loss
from asc_kd.tasks.restore import load_task
from asc_kd.tracking.loggers import log_wandb_bar_chart, wandb_run_id

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

Schedule = Literal["constant", "cosine", "linear", "exponential"]


def lr_factor(
    epoch: float,
    max_epochs: float,
    schedule: Schedule = "cosine",
    warmup_epochs: float = 0.0,
    lr_decay: float = 0.85,
    decay_start_epoch: int = 0,
    min_factor: float = 0.0,
) -> float:
    """Multiplier of the base learning rate at a (fractional) epoch.

    ``cosine`` and ``linear`` hold 1 after warm-up until ``decay_start_epoch``, then decay to
    ``min_factor`` at ``max_epochs`` (CP-JKU's students: warm-up, plateau, linear ramp down);
    ``exponential`` multiplies by ``lr_decay`` for every epoch completed after
    ``decay_start_epoch`` (the report's AST recipe: 0.5 after the 2nd epoch on AudioSet, 0.85
    after the 5th on TAU22).
    """
    if warmup_epochs > 0 and epoch < warmup_epochs:
        return (epoch + 1e-3) / warmup_epochs
    if schedule == "constant":
        return 1.0
    if schedule == "exponential":
        return lr_decay ** max(0, math.floor(epoch) - decay_start_epoch + 1)
    start = max(warmup_epochs, decay_start_epoch)
    progress = min(1.0, max(0.0, epoch - start) / max(max_epochs - start, 1e-9))
    if schedule == "cosine":
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - (1.0 - min_factor) * progress
    raise ConfigError(f"unknown schedule {schedule!r}")


#: The spec of a task built without a dataset (unit tests, quick experiments): ten classes.
DEFAULT_SPEC = DatasetSpec(name="default", classes=tuple(f"class{i}" for i in range(10)))


def _data_record(datamodule: L.LightningDataModule | None) -> dict[str, Any]:
    """What a checkpoint records about the clips it was trained and tested on, for a resume to
    compare: ``SceneDataModule.data_record`` (the sampled fingerprint and, from the cache, the full
    content hash); nothing for another DataModule."""
    record = getattr(datamodule, "data_record", None)
    return record() if record is not None else {"dataset_fingerprint": None}


class ClassificationTask(L.LightningModule):
    """Scene classifier: waveform -> front-end -> model -> logits.

    Subclass hooks (each has a default; override what your method changes):

    - ``configure_models()`` builds ``self.frontend`` and ``self.model``;
    - ``configure_metrics()`` builds the ``val/`` and ``test/`` metric collections;
    - ``training_loss(logits, batch)`` returns a dict with at least ``loss`` (the tensor that
      is back-propagated); every entry is logged as ``train/<key>``, its mean over each epoch,
      and as ``train/<key>_step`` every ``log_every_n_steps`` steps. ``batch`` is described in
      ``asc_kd.core.batch`` (after Mixup it also holds ``soft_target``).

    Args:
        model: registered model name (``asc_kd.models.list_models()``) or an import path
            (``mypkg.models:TinyCNN``).
        model_kwargs: keyword arguments of the model builder (``n_classes`` is set from the
            spec's classes).
        frontend: registered front-end name (``student_mel``, ``passt_mel``, ``ast_fbank``).
        frontend_kwargs: keyword arguments of the front-end (its ``sample_rate`` is the task's).
        sample_rate: waveform rate the front-end receives (linked from ``data.sample_rate``).
        segment_seconds: length of the windows the model sees (linked from
            ``data.segment_seconds``); longer clips are scored window by window.
        spec: the dataset's spec, whose classes, devices and device groups the task predicts
            and reports (``asc_kd.fit`` links it from the DataModule; default ``DEFAULT_SPEC``).
            A mapping is read with ``DatasetSpec.from_dict``: that is how a checkpoint holds it.
        optimizer: ``adam`` (L2 weight decay, as CP-JKU) or ``adamw`` (decoupled decay).
        lr: peak learning rate.
        weight_decay: weight decay of the optimizer.
        schedule: learning-rate schedule, see ``lr_factor``.
        warmup_epochs: linear warm-up length in epochs (fractions allowed).
        lr_decay: per-epoch factor of the ``exponential`` schedule.
        decay_start_epoch: first epoch after which ``exponential`` decays.
        min_lr_factor: final factor of ``cosine`` / ``linear``.
        channels_last: feed the model channels-last tensors (faster convs on GPU).
        compile: compile the model with ``torch.compile`` (in place; the state dict is unchanged).
        precision: ``fp32``; ``bf16`` runs the model under bf16 autocast (on CPUs with AMX or
            AVX512-BF16 and on GPUs the convolutions run in bf16 at up to twice the speed), while
            the front-end, the loss, BatchNorm's running statistics and the optimizer stay fp32;
            ``auto`` is ``bf16`` where the device does bf16 fast (``fast_bf16``), else ``fp32``.
            A checkpoint records which one ran (``checkpoint["asc_kd"]["precision"]``).
            Quantization calibrates and scores the fp32 model whatever this says.
    """

    def __init__(
        self,
        model: str = "system1",
        model_kwargs: dict[str, Any] | None = None,
        frontend: str = "student_mel",
        frontend_kwargs: dict[str, Any] | None = None,
        sample_rate: int = 32_000,
        segment_seconds: float = 1.0,
        spec: DatasetSpec | None = None,
        optimizer: Literal["adam", "adamw"] = "adam",
        lr: float = 1e-3,
        weight_decay: float = 1e-3,
        schedule: Schedule = "cosine",
        warmup_epochs: float = 0.0,
        lr_decay: float = 0.85,
        decay_start_epoch: int = 0,
        min_lr_factor: float = 0.0,
        channels_last: bool = False,
        compile: bool = False,
        precision: Precision = "fp32",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        if isinstance(spec, Mapping):  # as a checkpoint holds it (DatasetSpec.as_dict)
            spec = DatasetSpec.from_dict(spec)
        self.spec: DatasetSpec = spec or DEFAULT_SPEC
        #: Which recipe and seed made this run (set by ``asc_kd.training.fit``; recorded in checkpoints).
        self.run_info: dict[str, Any] = {}
        self.on_train_epoch_start()  # the sums behind train/<key> (``on_train_epoch_end``)
        self.configure_models()
        self.configure_metrics()

    # -- hooks subclasses override ----------------------------------------------------------
    def configure_models(self) -> None:
        """Build ``self.frontend`` and ``self.model`` from the hyperparameters."""
        hp = self.hparams
        self.frontend = get_frontend(
            hp.frontend, **{"sample_rate": hp.sample_rate, **(hp.frontend_kwargs or {})}
        )
        kwargs = {"n_classes": len(self.classes), **(hp.model_kwargs or {})}
        if kwargs["n_classes"] != len(self.classes):
            raise ConfigError(
                f"model_kwargs.n_classes={kwargs['n_classes']} disagrees with the {len(self.classes)} "
                "classes of the data; leave n_classes out, it is set from the classes"
            )
        self.model: nn.Module = get_model(hp.model, **kwargs)
        if hp.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if hp.compile:
            self.model.compile()

    def configure_metrics(self) -> None:
        """One metric definition, cloned per stage so validation and test agree by design.

        ``file/`` collections score long clips by ``file_logits`` (the mean of the window logits).
        """
        metrics = MetricCollection({"scene": SceneMetrics(self.spec)})
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.val_file_metrics = metrics.clone(prefix="val/file/")
        self.test_file_metrics = metrics.clone(prefix="test/file/")

    def training_loss(self, logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        """Cross-entropy against Mixup's soft targets when present, else the labels."""
        return {"loss": classification_loss(logits, batch.get("soft_target", batch["target"]))}

    # -- the data ---------------------------------------------------------------------------
    @property
    def classes(self) -> tuple[str, ...]:
        """The spec's class names, in the order of the logits."""
        return self.spec.classes

    @property
    def devices(self) -> tuple[str, ...]:
        return self.spec.devices

    @property
    def device_groups(self) -> dict[str, tuple[str, ...]]:
        return self.spec.device_groups

    # -- forward ----------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return int(self.hparams.sample_rate)

    @property
    def segment_samples(self) -> int:
        """Samples of one model input window."""
        return round(self.hparams.segment_seconds * self.hparams.sample_rate)

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """Log-mel features on the waveform's device; (batch, 1, bins, frames)."""
        x = self.frontend(waveform)
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x = self.features(waveform)
        with autocast(x.device, self.hparams.precision):
            logits = self.model(x)
        return logits.float()  # the losses and metrics work in fp32 whatever ran

    @property
    def precision_ran(self) -> str:
        """What the model runs in on its device: ``bf16`` under this task's ``precision`` or a
        bf16 ``trainer.precision``, else ``fp32`` (``fp16`` for a 16-bit trainer). Tables and
        checkpoints record it, so a host without fast bf16 is told apart from one with it."""
        if uses_bf16(self.device, self.hparams.precision):
            return "bf16"
        return run_precision(str(self._trainer.precision) if self._trainer is not None else "32-true")

    def input_shape(self, seconds: float | None = None) -> tuple[int, ...]:
        """Shape of the model input for one clip of ``seconds`` (default: one window)."""
        n = self.segment_samples if seconds is None else round(self.sample_rate * seconds)
        with torch.no_grad():
            was_training = self.frontend.training
            self.frontend.eval()
            shape = tuple(self.frontend(torch.zeros(1, n, device=self.device)).shape)
            self.frontend.train(was_training)
        return shape

    # -- steps ------------------------------------------------------------------------------
    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        logits = self(batch["waveform"])
        losses = self.training_loss(logits, batch)
        # The mean over each epoch, however short (a run of fewer steps than log_every_n_steps still
        # has its training curve), and every log_every_n_steps steps as train/<key>_step.
        batch_size = len(logits)
        means = {f"train/{k}": v for k, v in losses.items()}
        for key, value in means.items():  # summed here, logged once at the epoch's end
            self._epoch_sums[key] = self._epoch_sums.get(key, 0.0) + value.detach() * batch_size
        self._epoch_clips += batch_size
        if self._loggers_write_this_step():
            steps = {f"{key}_step": value for key, value in means.items()}
            self.log_dict(steps, on_step=True, on_epoch=False, prog_bar=True, batch_size=batch_size)
        return losses["loss"]

    def on_train_epoch_start(self) -> None:
        self._epoch_sums: dict[str, torch.Tensor] = {}
        self._epoch_clips = 0

    def on_train_epoch_end(self) -> None:
        """Log each loss term's mean over the epoch's clips (``train/<key>``), averaged over the
        processes: what ``log(on_epoch=True)`` gives, for one ``log`` call per term and epoch
        instead of one per term and step."""
        if self._epoch_clips:
            means = {key: total / self._epoch_clips for key, total in self._epoch_sums.items()}
            self.log_dict(means, sync_dist=True)

    def _loggers_write_this_step(self) -> bool:
        """Whether the loggers receive step values after this step: every ``log_every_n_steps``
        optimizer steps, as Lightning writes them. A ``log`` call costs about 1 ms on a CPU, so
        step values no logger would see are not logged (the progress bar's loss changes as often)."""
        trainer = self._trainer
        if trainer is None:
            return True
        return (self.global_step + 1) % max(1, trainer.log_every_n_steps) == 0 or trainer.should_stop

    def _evaluate(self, batch: Batch, metrics: MetricCollection, file_metrics: MetricCollection) -> None:
        logits = window_logits(self, batch["waveform"], self.segment_samples)  # (B, windows, C)
        n = logits.shape[1]
        metrics.update(
            logits.flatten(0, 1), batch["target"].repeat_interleave(n), batch["device"].repeat_interleave(n)
        )
        if n > 1:
            file_metrics.update(file_logits(logits), batch["target"], batch["device"])

    def _log_metrics(self, *collections: MetricCollection) -> dict[str, torch.Tensor]:
        logged: dict[str, torch.Tensor] = {}
        for metrics in collections:
            if metrics["scene"].update_called:
                # compute() already reduced the counts over every process; the values are the
                # same on every rank, and averaging them (sync_dist) keeps them so, as Lightning
                # expects of epoch-level values in a distributed run.
                values = metrics.compute()
                self.log_dict(values, sync_dist=True)
                logged.update(values)
            metrics.reset()
        return logged

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, self.val_file_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics, self.val_file_metrics)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, self.test_file_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_confusion(self.test_metrics["scene"].confusion(), "test/confusion_matrix")
        self._log_device_chart(self._log_metrics(self.test_metrics, self.test_file_metrics), "test/")

    def _log_device_chart(self, values: Mapping[str, torch.Tensor], prefix: str) -> None:
        """Accuracy per device as a W&B bar chart (``<prefix>device_accuracy``)."""
        head = f"{prefix}acc_device_"
        rows = [[key[len(head) :], float(value)] for key, value in values.items() if key.startswith(head)]
        if not rows or self._trainer is None or not self.trainer.is_global_zero:
            return
        log_wandb_bar_chart(self.trainer, f"{prefix}device_accuracy", rows, ("device", "accuracy"))

    def _log_confusion(self, confusion: torch.Tensor, key: str) -> None:
        """Confusion matrix as an image for loggers that take images (W&B)."""
        if self._trainer is None or not self.trainer.is_global_zero:
            return
        image = labelled_confusion_image(confusion.cpu(), self.classes)
        caption = "rows: true classes, columns: predicted classes (each row sums to 1)"
        for logger in self.trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key=key, images=[image], caption=[caption], step=self.trainer.global_step)

    # -- optimisation -----------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer_class = torch.optim.AdamW if hp.optimizer == "adamw" else torch.optim.Adam
        # One fused kernel per step instead of a loop over parameter tensors (CPU and CUDA).
        optimizer = optimizer_class(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay, fused=True)
        steps_per_epoch = max(1, self._steps_per_epoch())
        max_epochs = max(1, self.trainer.max_epochs or 1)

        def factor(step: int) -> float:
            return lr_factor(
                step / steps_per_epoch,
                max_epochs,
                hp.schedule,
                hp.warmup_epochs,
                hp.lr_decay,
                hp.decay_start_epoch,
                hp.min_lr_factor,
            )

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def _steps_per_epoch(self) -> int:
        trainer = self.trainer
        max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
        return math.ceil(trainer.estimated_stepping_batches / max_epochs)

    # -- checkpoints ------------------------------------------------------------------------
    @classmethod
    def load_from_checkpoint(
        cls,
        checkpoint_path: str | PathLike,
        map_location: Any = None,
        hparams_file: str | PathLike | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        **kwargs: Any,
    ) -> Self:
        """Lightning's ``load_from_checkpoint``, on asc_kd's one restore path (``load_task``), so
        it reads, checks and rebuilds as the commands do.

        As in Lightning: the task is of ``cls``, the class it is called on (a student's checkpoint
        loads as a ``ClassificationTask``), with the recorded hyperparameters it takes and
        ``kwargs`` in place of recorded ones; ``strict`` (default: ``strict_loading``, ``True``)
        wants the checkpoint's state dict to hold exactly the task's keys; without
        ``map_location`` each tensor stays on the device it was saved from where this host has
        one, else goes to the CPU; the task comes back in training mode, as Lightning's does, so
        code written for Lightning keeps working (call ``.eval()`` before inference; ``load_task``
        gives the commands eval mode).

        Refused, each in one line: ``weights_only=False`` (asc_kd reads plain data only),
        ``hparams_file`` (the checkpoint carries its hyperparameters: give the ones to change as
        keyword arguments), and a stream in place of a file's path (asc_kd reads files only).
        """
        name = f"{cls.__name__}.load_from_checkpoint"
        if weights_only is False:
            raise ValueError(
                f"{name}(weights_only=False): asc_kd checkpoints hold plain data and are read with "
                "weights_only=True only; leave weights_only out"
            )
        if hparams_file is not None:
            raise ValueError(
                f"{name}(hparams_file=...): asc_kd checkpoints carry their hyperparameters; give the "
                "ones to change as keyword arguments, e.g. load_from_checkpoint(path, lr=1e-4)"
            )
        if not isinstance(checkpoint_path, (str, PathLike)):
            raise TypeError(
                f"{name}: give the checkpoint's file path, not a {type(checkpoint_path).__name__}"
            )
        task = load_task(
            checkpoint_path,
            cls,
            map_location=saved_device_or_cpu if map_location is None else map_location,
            strict=strict,
            overrides=kwargs,
        )
        return task.train()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record what made the checkpoint, so it describes itself (pyannote does the same).

        The spec goes in as plain data, in the hyperparameters and the record alike: checkpoints
        are read with ``weights_only=True``, which refuses pickled objects.
        """
        if "hyper_parameters" in checkpoint:
            checkpoint["hyper_parameters"]["spec"] = self.spec.as_dict()
        trainer = self._trainer
        loggers = trainer.loggers if trainer is not None else []
        cls = type(self)
        checkpoint.setdefault("asc_kd", {}).update(
            {
                "version": __version__,
                "task": cls.__name__,
                "task_class": f"{cls.__module__}:{cls.__qualname__}",
                "model": self.hparams.model,
                "model_import_path": model_path(self.hparams.model),
                "frontend": {"name": self.hparams.frontend, **self.frontend.config()},
                "spec": self.spec.as_dict(),
                "model_kwargs": dict(self.hparams.model_kwargs or {}),
                "run": dict(self.run_info),
                "precision": self.precision_ran,
                **_data_record(getattr(trainer, "datamodule", None)),
                # Lets `--ckpt_path` continue the same W&B run (see asc_kd.training.fit).
                "wandb_run_id": wandb_run_id(loggers),
            }
        )
