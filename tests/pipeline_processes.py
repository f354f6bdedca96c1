"""``python -m asc_kd.pipeline`` and ``asc-kd status`` in processes of their own, for the fault tests
that signal, kill or detach a driver or a job (tests/runs/test_slurm_faults.py,
tests/runs/test_pipeline_faults.py and tests/runs/test_slurm.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fit_helpers import PIPELINE_TEACHERS, REPO, pipeline_argv

#: Epochs of the fit that something happens to after its first.
EPOCHS = 8
ENVIRONMENT = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)}


def teacher_argv(tiny_root: Path, cache_dir: Path, out: Path, *extra: str, epochs: int = EPOCHS) -> list[str]:
    """One tiny teacher of ``epochs`` epochs, as a SLURM job, teachers stage only."""
    argv = pipeline_argv(tiny_root, cache_dir, out, "--executor", "slurm", "--stages", "teachers", *extra)
    argv[argv.index("--teachers") + 1 : argv.index("--ensemble") + 2] = [str(PIPELINE_TEACHERS[0])]
    argv[argv.index("--max-epochs") + 1] = str(epochs)
    return argv


def _pipeline_process(argv: list[str]) -> dict:
    """``python -m asc_kd.pipeline ARGV`` from the repository, offline, stderr into stdout."""
    return {
        "args": [sys.executable, "-m", "asc_kd.pipeline", *argv],
        "cwd": REPO,
        "env": ENVIRONMENT,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.STDOUT,
        "text": True,
    }


def start_pipeline(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(**_pipeline_process(argv))


def run_pipeline(argv: list[str], timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(**_pipeline_process(argv), timeout=timeout)


def wait_for(path: Path, pipeline: subprocess.Popen[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.is_file() and pipeline.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert path.is_file(), pipeline.communicate(timeout=60)[0][-3000:]


#: The run folder of ``teacher_argv``'s one teacher, under the pipeline's output folder.
TEACHER_RUN = Path("teachers") / "teacher-seed0"


def start_until_a_checkpoint(argv: list[str], out: Path) -> tuple[subprocess.Popen[str], Path]:
    """The pipeline of ``argv`` started, once its teacher's first checkpoint is on disk (the fit
    runs, with an epoch to resume from), and that teacher's run folder."""
    pipeline = start_pipeline(argv)
    run = out / TEACHER_RUN
    wait_for(run / "checkpoints" / "last.ckpt", pipeline)
    return pipeline, run


def stop_with_sigterm(pipeline: subprocess.Popen[str]) -> str:
    """Send the driver SIGTERM, as a scheduler stops it; its output, after it exited 128 + 15."""
    pipeline.send_signal(signal.SIGTERM)
    output = pipeline.communicate(timeout=120)[0]
    assert pipeline.returncode == 128 + signal.SIGTERM, output[-3000:]
    return output


def status_when_done(out: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """``asc-kd status OUT`` asked every 2 s until it exits 0 (all done) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        shown = subprocess.run(
            [sys.executable, "-m", "asc_kd", "status", str(out)],
            cwd=REPO,
            env=ENVIRONMENT,
            capture_output=True,
            text=True,
        )
        if shown.returncode == 0 or time.monotonic() > deadline:
            return shown
        time.sleep(2)
