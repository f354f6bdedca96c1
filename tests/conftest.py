"""Shared fixtures: a tiny synthetic TAU22 dataset, generated once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

from asc_kd.data.synthetic import SyntheticConfig, generate  # noqa: E402

#: 10 scenes x (8 train segments on a + extras, 2 test segments on all 9 devices).
TINY = SyntheticConfig(train_segments_per_scene=8, test_segments_per_scene=2, other_device_fraction=0.25)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only tiny synthetic dataset; copy it before changing anything in it."""
    return generate(tmp_path_factory.mktemp("tau22") / "tiny", TINY, progress=False)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cache folder shared by tests that only read the tiny dataset."""
    return tmp_path_factory.mktemp("cache")
