"""W&B as the default logger, usable without an account or network, and everything a fit logs
to it beside metrics (tables, charts, the run's id and folder).

Training must not fail because nobody ran ``wandb login`` (a recurring complaint about the
recipes we replace): ``AutoWandbLogger`` goes online only when an API key is configured and
``WANDB_MODE`` does not say otherwise, and tells once how to upload an offline run later.
The project never reads, writes or logs the key itself. Its runs are quiet on the console
(``asc_kd.core.noise.wandb_quiet``; ``WANDB_QUIET=false`` for W&B's end-of-run blocks).
"""

from __future__ import annotations

import json
import logging
import netrc
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

from asc_kd.core.noise import wandb_quiet

log = logging.getLogger(__name__)


def wandb_logged_in() -> bool:
    """Whether an API key is configured (environment or ~/.netrc); the key is not read out."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


class AutoWandbLogger(WandbLogger):
    """``WandbLogger`` that runs offline when not logged in (or when ``offline=True``).

    Args:
        project: W&B project name.
        save_dir: folder for the ``wandb/`` run directories.
        offline: force offline (True) or online (False); default: decide from the login.
        group: W&B group (the pipeline puts all its runs in one).
        job_type: W&B job type (the pipeline's: teacher, logits, student, quantize, tables).
        **kwargs: anything ``WandbLogger`` takes (``name``, ``id``, ``tags``, ...).
    """

    def __init__(
        self,
        project: str = "asc_kd",
        save_dir: str = "outputs",
        offline: bool | None = None,
        group: str | None = None,
        job_type: str | None = None,
        **kwargs: Any,
    ) -> None:
        mode = os.environ.get("WANDB_MODE")
        if offline is None:
            offline = mode in ("offline", "dryrun") or (mode != "online" and not wandb_logged_in())
        if offline:
            log.warning(
                "W&B is offline (no login found); upload later with `wandb sync %s/wandb/offline-run-*`",
                save_dir,
            )
        for key, value in (("group", group), ("job_type", job_type)):
            if value is not None:
                kwargs[key] = value
        if kwargs.get("settings") is None:  # no end-of-run history and summary blocks on the console
            import wandb

            kwargs["settings"] = wandb.Settings(quiet=wandb_quiet())
        super().__init__(project=project, save_dir=save_dir, offline=offline, **kwargs)
        # Lightning passes anonymous=None, which wandb answers with a warning no one can act on.
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)

    @property
    def experiment(self) -> Any:
        """The W&B run, started on first use in ``save_dir`` (made then, not when the logger is
        built: a fit refused before it starts leaves no folder behind)."""
        if self._experiment is None:
            Path(self.save_dir).mkdir(parents=True, exist_ok=True)
        return super().experiment

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log at W&B step = the trainer's global step, so a resumed run (whose offline part
        starts a new folder) continues the step count instead of starting again at 0."""
        if step is None:
            return super().log_metrics(metrics, step)
        values = {
            f"{self._prefix}{self.LOGGER_JOIN_CHAR}{k}" if self._prefix else k: v for k, v in metrics.items()
        }
        self.experiment.log({**values, "trainer/global_step": step}, step=max(step, self.experiment.step))


def log_to_wandb(trainer: Any, values: Mapping[str, Any]) -> None:
    """Log media (tables, charts) to each W&B logger of ``trainer`` at its global step.

    A bare ``experiment.log`` would advance W&B's own step counter, and the trainer's next
    metrics, logged at their global step, would then merge into a later row (two training
    steps' values in one row, the first lost). Logging at the global step keeps one row per step.
    """
    if not trainer.is_global_zero:
        return
    step = trainer.global_step
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            experiment = logger.experiment
            experiment.log({**values, "trainer/global_step": step}, step=max(step, experiment.step))


def _wandb_loggers(loggers: Iterable[Any]) -> list[WandbLogger]:
    return [logger for logger in loggers if isinstance(logger, WandbLogger)]


def log_wandb_table(trainer: Any, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Log ``rows`` as a W&B table at the trainer's global step, when the trainer logs to W&B."""
    if _wandb_loggers(trainer.loggers):
        import wandb

        log_to_wandb(trainer, {key: wandb.Table(columns=list(columns), data=[list(row) for row in rows])})


def log_wandb_bar_chart(
    trainer: Any, key: str, rows: Sequence[tuple[str, float]], labels: tuple[str, str]
) -> None:
    """Log ``(label, value)`` rows as a W&B bar chart titled ``"<value> per <label>"``."""
    if _wandb_loggers(trainer.loggers):
        import wandb

        table = wandb.Table(columns=list(labels), data=[list(row) for row in rows])
        chart = wandb.plot.bar(table, *labels, title=f"{labels[1]} per {labels[0]}")
        log_to_wandb(trainer, {key: chart})


def wandb_run_id(loggers: Iterable[Any]) -> str | None:
    """The W&B run id of these loggers (kept in checkpoints, so a resumed fit continues the run)."""
    return next((logger.version for logger in _wandb_loggers(loggers)), None)


def wandb_run_dir(loggers: Iterable[Any]) -> str | None:
    """The folder of the W&B run's files, if the run has started."""
    return next(
        (logger.experiment.dir for logger in _wandb_loggers(loggers) if logger._experiment is not None), None
    )


def finish_wandb_run() -> None:
    """End the process's W&B run, so the next fit in this process does not log into it."""
    if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
        sys.modules["wandb"].finish()


class LogConfigCallback(SaveConfigCallback):
    """Save the resolved CLI config as ``config.yaml`` in the run's own folder (the trainer's
    ``default_root_dir``, one per recipe and seed, so runs never overwrite each other's), make it
    the logger's run config (one level: ``model``, ``data``, ``trainer``, ...) and, for W&B, also
    keep the YAML in the run's files (offline runs too, so a later ``wandb sync`` uploads it).

    It is saved at fit start, not at setup as Lightning's ``SaveConfigCallback`` does: a fit that
    is refused while it sets up or reads its checkpoint (a resume on other data, a checkpoint of
    another model) leaves the folder's ``config.yaml`` that of the run that is there.
    """

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Nothing yet: the config is saved at fit start."""

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if self.already_saved:
            return
        if trainer.is_global_zero:
            folder = Path(trainer.default_root_dir)
            folder.mkdir(parents=True, exist_ok=True)
            self.parser.save(
                self.config, str(folder / self.config_filename), skip_unset=False, overwrite=True
            )
            self.save_config(trainer, pl_module, "fit")
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)

    def save_config(self, trainer: Any, pl_module: Any, stage: str) -> None:
        config = json.loads(self.parser.dump(self.config, skip_unset=False, format="json"))
        for logger in trainer.loggers:
            logger.log_hyperparams(config)
            if isinstance(logger, WandbLogger):
                run_dir = Path(logger.experiment.dir)
                (run_dir / "asc_kd_config.yaml").write_text(self.parser.dump(self.config, skip_unset=False))
