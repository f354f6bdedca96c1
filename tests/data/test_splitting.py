"""``hold_out``: whole recordings, about the asked share of every class, the device mix kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from asc_kd.data.spec import DatasetError
from asc_kd.data.splitting import hold_out


def _frame(classes: int = 4, recordings: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(classes):
        for r in range(recordings):
            # Each recording has 1-6 segments, mostly on device 0 and some on 1-2.
            for s in range(int(rng.integers(1, 7))):
                rows.append((f"c{c}-r{r}-{s}", c, int(rng.choice(3, p=[0.7, 0.2, 0.1])), f"{c}/r{r}"))
    return pd.DataFrame(rows, columns=["filename", "target", "device_index", "recording"])


@pytest.mark.parametrize("fraction", [0.1, 0.3])
def test_whole_recordings_and_the_share_of_each_class(fraction):
    frame = _frame()
    held = hold_out(frame, fraction, seed=0)
    assert held.dtype == bool and len(held) == len(frame)
    assert not set(frame.loc[held, "recording"]) & set(frame.loc[~held, "recording"])
    for c, rows in frame.groupby("target"):
        share = held[rows.index].mean()
        largest = rows.groupby("recording").size().max() / len(rows)
        assert 0 < share < 1 and abs(share - fraction) <= largest, c


def test_seeded():
    frame = _frame()
    assert (hold_out(frame, 0.2, seed=3) == hold_out(frame, 0.2, seed=3)).all()
    assert (hold_out(frame, 0.2, seed=3) != hold_out(frame, 0.2, seed=4)).any()


def test_device_mix_is_kept_roughly():
    frame = _frame(classes=6, recordings=30, seed=1)
    held = hold_out(frame, 0.2, seed=0)
    mix = frame.loc[held, "device_index"].value_counts(normalize=True)
    overall = frame["device_index"].value_counts(normalize=True)
    assert (mix - overall).abs().max() < 0.08


def test_a_class_with_one_recording_is_an_error():
    frame = pd.DataFrame(
        {"filename": ["a", "b"], "target": [0, 1], "device_index": 0, "recording": ["x", "y"]}
    )
    with pytest.raises(DatasetError, match="single recording"):
        hold_out(frame, 0.5)
    with pytest.raises(ValueError, match="fraction must lie in"):
        hold_out(frame, 1.0)
