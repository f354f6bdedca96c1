"""``asc_kd.core.noise``: a third-party hint or Lightning note reaches the console once per
process, whatever its numbers and however often the filters change; W&B runs are quiet unless
``WANDB_QUIET`` says no."""

from __future__ import annotations

import warnings

import pytest
from fit_helpers import said_by
from lightning.fabric.utilities.rank_zero import rank_zero_warn
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from asc_kd.core import noise
from asc_kd.core.noise import LIGHTNING_NOTES, silence, wandb_quiet

WORKERS = "The 'train_dataloader' does not have many workers which may be a bottleneck."
SRUN = (
    "The `srun` command is available on your system but is not used. HINT: If your intention is to "
    "run Lightning on SLURM, prepend your python command with `srun` like so: srun python python -m x"
)


def _interval(batches: int) -> str:
    return f"The number of training batches ({batches}) is smaller than the logging interval"


def test_each_hint_is_shown_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(noise, "_shown", set())
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        for batches in (2, 2, 5):  # one fit after another: each installs the filters again
            silence()
            rank_zero_warn(WORKERS, category=PossibleUserWarning)
            rank_zero_warn(_interval(batches), category=PossibleUserWarning)
        warnings.warn("the user's own setup is odd", UserWarning, stacklevel=1)
    assert [str(w.message) for w in shown] == [WORKERS, _interval(2), "the user's own setup is odd"]


def test_what_filters_hold_back_is_not_counted_as_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(noise, "_shown", set())
    with warnings.catch_warnings(record=True) as shown:
        silence()
        with warnings.catch_warnings():  # --quiet holds warnings back
            warnings.simplefilter("ignore")
            rank_zero_warn(WORKERS, category=PossibleUserWarning)
        warnings.simplefilter("default")
        rank_zero_warn(WORKERS, category=PossibleUserWarning)
    assert [str(w.message) for w in shown] == [WORKERS]


def test_each_lightning_note_is_said_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(noise, "_shown", set())
    with said_by(LIGHTNING_NOTES[0]) as pytorch, said_by(LIGHTNING_NOTES[1]) as fabric:
        for batches in (1, 1, 2):  # one fit after another
            silence()
            rank_zero_info("GPU available: False, used: False")
            rank_zero_info(
                f"`Trainer(limit_val_batches={batches})` was configured so {batches} batch will be used."
            )
            rank_zero_info(f"Restoring states from the checkpoint path at run{batches}/last.ckpt")
    assert pytorch + fabric == [
        "GPU available: False, used: False",
        "`Trainer(limit_val_batches=1)` was configured so 1 batch will be used.",
        "Restoring states from the checkpoint path at run1/last.ckpt",
        "Restoring states from the checkpoint path at run2/last.ckpt",  # a number in a path counts
    ]


@pytest.mark.parametrize(
    ("value", "quiet"), [(None, True), ("true", True), ("1", True), ("false", False), ("0", False)]
)
def test_wandb_runs_are_quiet_unless_wandb_quiet_says_no(
    value: str | None, quiet: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("WANDB_QUIET", raising=False)
    else:
        monkeypatch.setenv("WANDB_QUIET", value)
    assert wandb_quiet() is quiet


def test_lightning_s_srun_hint_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(noise, "_shown", set())
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        silence()
        rank_zero_warn(SRUN, category=PossibleUserWarning)
        rank_zero_warn(WORKERS, category=PossibleUserWarning)
    assert [str(w.message) for w in shown] == [WORKERS]
