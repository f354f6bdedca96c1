"""Shared fixtures: tiny synthetic datasets (generated once per session), a CPU Trainer, and the
tiny end-to-end pipeline run."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import lightning as L
import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core: one thread each
    import torch

    torch.set_num_threads(1)

from fit_helpers import (  # noqa: E402
    TinyPipeline,
    command_line,
    make_cpu_trainer,
    pipeline_argv,
    said_by,
    slurm_or_skip,
    tree_state,
)

from asc_kd.data.synthetic import SyntheticConfig, generate  # noqa: E402

#: 10 scenes x (8 train segments on a + extras, 2 test segments on all 9 devices).
TINY = SyntheticConfig(train_segments_per_scene=8, test_segments_per_scene=2, other_device_fraction=0.25)
#: 13 classes of 2-s, 22.05 kHz clips in class folders: 4 recordings of 2 clips each.
TINY_FOLDERS = SyntheticConfig(
    layout="folders",
    n_classes=13,
    sample_rate=22050,
    clip_seconds=2.0,
    recordings_per_class=4,
    segments_per_recording=2,
)
#: TAU20 layout: 10-s clips, 1 train segment per scene (on a and b, c, s1-s3), 1 test segment.
TINY_TAU20 = SyntheticConfig(
    layout="tau20", train_segments_per_scene=1, test_segments_per_scene=1, other_device_fraction=1.0
)


#: ``fast_bf16``'s two answers, each forced through ``$ASC_KD_FAST_BF16`` whatever this host has.
BF16_BRANCHES = {"with-fast-bf16": "1", "without-fast-bf16": "0"}


@pytest.fixture(params=list(BF16_BRANCHES))
def bf16_branch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Runs the test once as on a host where bf16 is fast and once as on one where it is not.

    Returns whether ``asc_kd.evaluation.inference.fast_bf16`` now says yes. bf16 is only emulated (slowly)
    on a CPU without AVX512-BF16/AMX, but its numbers are the same, so both branches run here.
    """
    monkeypatch.setenv("ASC_KD_FAST_BF16", BF16_BRANCHES[request.param])
    return BF16_BRANCHES[request.param] == "1"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which bf16 branches ran, and this host's own answer: CI's log shows both were taken."""
    passed = terminalreporter.stats.get("passed", [])
    counts = {name: sum(f"[{name}" in r.nodeid for r in passed) for name in BF16_BRANCHES}
    if any(counts.values()):
        import torch

        from asc_kd.evaluation.inference import hardware_bf16

        host = "with" if hardware_bf16(torch.device("cpu")) else "without"
        ran = ", ".join(f"{n} passed as on a host {name.replace('-', ' ')}" for name, n in counts.items())
        terminalreporter.write_line(f"bf16 branches: {ran} (this host: {host} fast bf16)")


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only tiny synthetic TAU22 dataset; copy it before changing anything in it."""
    return generate(tmp_path_factory.mktemp("tau22") / "tiny", TINY, progress=False)


@pytest.fixture(scope="session")
def folders_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only tiny 13-class folder dataset (2-s clips at 22.05 kHz)."""
    return generate(tmp_path_factory.mktemp("folders") / "tiny", TINY_FOLDERS, progress=False)


@pytest.fixture(scope="session")
def tau20_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only tiny TAU20-layout dataset (10-s clips)."""
    return generate(tmp_path_factory.mktemp("tau20") / "tiny", TINY_TAU20, progress=False)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cache folder shared by tests that only read the tiny datasets."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def cpu_trainer(tmp_path: Path) -> Callable[..., L.Trainer]:
    """A factory of quiet CPU Trainers writing under ``tmp_path``; keyword arguments override."""

    def make(**overrides: object) -> L.Trainer:
        return make_cpu_trainer(tmp_path, **overrides)

    return make


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
    with command_line("python -m asc_kd.pipeline"), said_by("asc_kd.runs") as said:
        assert main(argv) == 0
    return TinyPipeline(argv, out, tiny_root, cache_dir, root_before, tuple(said))


@pytest.fixture(scope="session")
def two_teachers(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two tiny debug teachers on TAU22's ten scenes, fitted from seeds 1 and 2 (their logits
    differ), as checkpoints: for online distillation and the teacher ensemble."""
    import torch
    from tiny_checkpoints import fit_checkpoint

    from asc_kd.data.tau import TAU22
    from asc_kd.tasks import ClassificationTask

    folder = tmp_path_factory.mktemp("teachers")
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        paths.append(
            fit_checkpoint(ClassificationTask(model="debug", lr=0.05, spec=TAU22), folder / f"t{seed}.ckpt")
        )
    return paths


@pytest.fixture(scope="session")
def slurm() -> None:
    """The test needs the one-node SLURM of tests/cluster/start.sh: skipped without one (failed
    under ``CI=true``)."""
    slurm_or_skip()
