"""``CheckpointSelection``: which checkpoint a run reports, chosen without peeking at the test split.

TAU's validation data is the development-test split unless a held-out validation split is
carved from the training data (``data.validation: holdout``). Picking the epoch with the best
accuracy on the split that is then reported biases every number upwards, so by default a run
reports its **last** epoch (as CP-JKU's recipes and the DCASE24 baseline do) and validation on
the test split is a monitoring curve only. ``selection: best`` picks the best epoch by
``monitor``: on a held-out split that is sound; on the test split it must be asked for with
``allow_selection_on_test: true``, and every table built from it says ``best-on-test (biased)``.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Literal
from weakref import proxy

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

from asc_kd.core.errors import ConfigError
from asc_kd.core.io import remove_stale_partials
from asc_kd.data.spec import DatasetError

Selection = Literal["last", "best"]
#: How a table row labels a checkpoint chosen each way.
LABELS = {"last": "last", "holdout": "best-val-holdout", "test": "best-on-test (biased)"}


class CheckpointSelection(ModelCheckpoint):
    """Keep ``last.ckpt`` (every evaluation) and, with ``selection="best"``, the best by ``monitor``.

    With ``best``, an evaluation that is also the new best writes one file: ``last.ckpt`` becomes a
    hard link to it, so disk use stays at most two checkpoints and a step is written once.

    Every checkpoint it writes records how it was chosen (``checkpoint["asc_kd"]["selection"]``),
    and ``selected_path`` is the file a run reports (tested, quantized, put in the tables).

    Args:
        selection: ``last`` (default) or ``best`` (by ``monitor`` on the validation split).
        allow_selection_on_test: let ``best`` select on the development-test split (biased).
        monitor: metric that ranks checkpoints for ``best``.
        mode: ``max`` or ``min`` of ``monitor``.
        dirpath: folder of the checkpoints (default: under the logger's run folder).
        filename: name pattern of the best checkpoints.
        save_top_k: how many best checkpoints to keep (default: 1 with ``best``, 0 with ``last``).
        resume_on_changed_data: let ``--ckpt_path`` resume a fit on data whose fingerprint differs
            from the one the checkpoint records (refused by default: the run would mix datasets).
        **kwargs: anything else ``ModelCheckpoint`` takes.
    """

    _last_saved_step: int = -1

    def __init__(
        self,
        selection: Selection = "last",
        allow_selection_on_test: bool = False,
        monitor: str | None = "val/acc",
        mode: Literal["min", "max"] = "max",
        dirpath: str | None = None,
        filename: str | None = "best-{epoch}",
        save_top_k: int | None = None,
        resume_on_changed_data: bool = False,
        **kwargs: Any,
    ) -> None:
        if selection not in ("last", "best"):
            raise ConfigError(f"checkpoint.selection must be 'last' or 'best', got {selection!r}")
        kwargs.update(save_last=True, enable_version_counter=False)  # a resumed fit overwrites last.ckpt
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            monitor=monitor if selection == "best" else None,
            mode=mode,
            save_top_k=(1 if selection == "best" else 0) if save_top_k is None else save_top_k,
            **kwargs,
        )
        self.selection = selection
        self.allow_selection_on_test = allow_selection_on_test
        self.resume_on_changed_data = resume_on_changed_data
        self.validation: str = "test"
        self._saving: str | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if trainer.is_global_zero and self.dirpath:
            remove_stale_partials(self.dirpath)  # a fit killed while writing left them
        self.check_selection(str(getattr(trainer.datamodule, "validation", "test")))

    def check_selection(self, validation: str) -> None:
        """Refuse ``best`` without a validation split, or on the test split unless opted in.

        ``fit`` calls this (and ``check_resumed_data``) before the trainer sets up, so a refused
        fit writes nothing; ``setup`` and ``on_load_checkpoint`` call them for a bare ``Trainer``.
        """
        self.validation = validation
        if self.selection == "best" and self.validation == "none":
            raise ConfigError(
                "checkpoint.selection=best needs a validation split; set data.validation: holdout"
            )
        if self.selection == "best" and self.validation == "test" and not self.allow_selection_on_test:
            raise ConfigError(
                "checkpoint.selection=best would pick the epoch by its accuracy on the development-test "
                "split, the split that is then reported (a biased number). Hold out a validation split "
                "with --data.validation holdout, keep the default checkpoint.selection=last, or opt in "
                "with --checkpoint.allow_selection_on_test true (tables then say 'best-on-test (biased)')"
            )

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        super().on_load_checkpoint(trainer, pl_module, checkpoint)
        if trainer.state.fn == TrainerFn.FITTING:
            self.check_resumed_data(checkpoint, str(trainer.ckpt_path), getattr(trainer, "datamodule", None))

    def check_resumed_data(self, checkpoint: dict[str, Any], ckpt_path: str, datamodule: Any) -> None:
        """A resumed fit continues on the data it started on: the clips the checkpoint records
        (their full content hash, else their sampled fingerprint; ``SceneDataModule.data_change``)
        must be the data module's, unless ``resume_on_changed_data``."""
        data_change = getattr(datamodule, "data_change", None)  # a SceneDataModule's
        if self.resume_on_changed_data or data_change is None:
            return
        change = data_change(checkpoint.get("asc_kd") or {})
        if change is not None:
            raise DatasetError(
                f"--ckpt_path {ckpt_path} was trained on other data than {datamodule.root} holds "
                f"now ({change}); resume on the data it was trained on, or on this data on purpose with "
                "--checkpoint.resume_on_changed_data true"
            )

    @property
    def selection_label(self) -> str:
        """``last``, ``best-val-holdout`` or ``best-on-test (biased)``."""
        return "last" if self.selection == "last" else LABELS.get(self.validation, "best")

    @property
    def selected_path(self) -> str:
        """The checkpoint file the run reports."""
        return self.best_model_path if self.selection == "best" else self.last_model_path

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        """Write to a temporary sibling and rename it over ``filepath``: a fit killed while a
        checkpoint is written leaves the previous one whole and loadable."""
        self._saving = filepath
        partial = f"{filepath}.partial-{os.getpid()}"
        try:
            trainer.save_checkpoint(partial, self.save_weights_only)  # global rank 0 writes
            if trainer.is_global_zero:
                os.replace(partial, filepath)
        finally:
            self._saving = None
            if trainer.is_global_zero and os.path.exists(partial):
                os.remove(partial)
        trainer.strategy.barrier("checkpoint_renamed")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> dict[str, Any]:
        state = super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if self._saving is not None:
            is_last = self._saving.endswith(f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}")
            label = "last" if is_last else LABELS.get(self.validation, "best")
            checkpoint.setdefault("asc_kd", {})["selection"] = label
        return state

    # Lightning 2.6 writes last.ckpt only at a step where it also saved a new best (or never,
    # with save_top_k=0), so once the monitored metric stops improving last.ckpt would fall
    # behind and `--ckpt_path last` silently retrain epochs: save it at every evaluation.
    def _save_topk_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Any]) -> None:
        super()._save_topk_checkpoint(trainer, monitor_candidates)
        self._save_last_checkpoint(trainer, monitor_candidates)

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Any]) -> None:
        if not self.save_last or self._last_saved_step == trainer.global_step:
            return
        if self._best_saved_now(trainer):
            self.last_model_path = self.format_checkpoint_name(monitor_candidates, self.CHECKPOINT_NAME_LAST)
            self._hard_link(trainer, self.best_model_path, self.last_model_path)
        else:
            super()._save_last_checkpoint(trainer, monitor_candidates)
        self._last_saved_step = trainer.global_step

    def _best_saved_now(self, trainer: L.Trainer) -> bool:
        """Whether this step's checkpoint is the new best: then ``last.ckpt`` holds the same state."""
        return (
            self.selection == "best"
            and bool(self.best_model_path)
            and self._last_checkpoint_saved == self.best_model_path
            and self._last_global_step_saved == trainer.global_step
        )

    @staticmethod
    def _hard_link(trainer: L.Trainer, target: str, link: str) -> None:
        """Make ``link`` a second name of ``target``'s file: a PaSST checkpoint (~1 GB) is not
        written twice, and ``last.ckpt`` stays whole when the best file is later replaced.
        Where hard links are not supported, the file is copied."""
        if trainer.is_global_zero:
            partial = f"{link}.partial-{os.getpid()}"
            try:
                os.link(target, partial)
            except OSError:
                shutil.copyfile(target, partial)
            os.replace(partial, link)
        trainer.strategy.barrier("checkpoint_linked")
