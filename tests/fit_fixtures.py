"""Fixtures for end-to-end runs, loaded as a plugin (``pytest_plugins = ["fit_fixtures"]``) so
that the session-scoped tiny pipeline runs once for every module that uses it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fit_helpers import TinyPipeline, command_line, pipeline_argv, tree_state


@pytest.fixture
def fit_command() -> Iterator[None]:
    """The test calls ``asc_kd.fit.main`` as its own command (see ``command_line``)."""
    with command_line("python -m asc_kd.fit"):
        yield


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_root: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TinyPipeline:
    """``python -m asc_kd.pipeline`` on the tiny scenes, run once per session (read-only)."""
    from asc_kd.pipeline import main

    out = tmp_path_factory.mktemp("pipeline") / "out"
    argv = pipeline_argv(tiny_root, cache_dir, out)
    root_before = tree_state(tiny_root)
    with command_line("python -m asc_kd.pipeline"):
        assert main(argv) == 0
    return TinyPipeline(argv, out, tiny_root, cache_dir, root_before)
