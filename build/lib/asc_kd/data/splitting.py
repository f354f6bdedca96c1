"""Seeded, stratified splits that keep every recording on one side.

Segments cut from one recording sound alike, so a split that puts some of them on each side
measures memory, not generalisation. ``hold_out`` picks whole recordings, class by class, so
each class loses about ``fraction`` of its clips, and within a class prefers recordings that
keep the device mix of the held-out part close to the class's own. Used for the folder
layout's train/test split and for the validation split carved from a training split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from asc_kd.data.spec import DatasetError


def hold_out(
    frame: pd.DataFrame,
    fraction: float,
    seed: int = 0,
    group: str = "recording",
    stratum: str = "target",
    balance: str | None = "device_index",
    what: str = "held-out split",
) -> np.ndarray:
    """Boolean mask of the rows held out: whole groups, about ``fraction`` of every stratum.

    Every stratum with at least two groups keeps at least one on each side. A stratum with a
    single group cannot be split without cutting a recording, and is an error naming it.

    Args:
        frame: one row per clip.
        fraction: share of each stratum's clips to hold out, in (0, 1).
        seed: the split is a function of the frame and the seed only.
        group: column whose values must not be cut (the recording).
        stratum: column split separately (the class).
        balance: column whose mix within a stratum the held-out part should keep (the device).
        what: how errors name the split.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the {what} fraction must lie in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    frame = frame.reset_index(drop=True)
    held = np.zeros(len(frame), dtype=bool)
    for value, rows in frame.groupby(stratum, sort=True):
        groups = list(dict.fromkeys(rows[group]))  # first-seen order, then shuffled
        if len(groups) < 2:
            raise DatasetError(
                f"{stratum} {value!r} has a single {group} ({groups[0]!r}); a {what} needs at least "
                f"two per {stratum} so that no {group} is cut in two"
            )
        rng.shuffle(groups)
        cells = rows[balance] if balance else pd.Series(0, index=rows.index)
        target = cells.value_counts() * fraction
        by_group = {g: cells[rows[group] == g].value_counts() for g in groups}
        taken: pd.Series = pd.Series(0.0, index=target.index)
        chosen: list = []
        for g in groups:
            if len(chosen) == len(groups) - 1 or taken.sum() >= target.sum():
                break
            after = taken.add(by_group[g], fill_value=0)
            gain = (np.minimum(after, target) - np.minimum(taken, target)).sum()
            overshoot = (np.maximum(after - target, 0) - np.maximum(taken - target, 0)).sum()
            if not chosen or gain >= overshoot:
                chosen.append(g)
                taken = after
        held[rows.index[rows[group].isin(chosen)].to_numpy()] = True
    return held
