"""The code passes the project's own ruff rules (``make lint``), so a line over the limit or an
unformatted file fails the suite CI runs, not only a command nobody is made to run."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fit_helpers import REPO


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(command: list[str]) -> None:
    pytest.importorskip("ruff")
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "--no-cache", "asc_kd", "tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
