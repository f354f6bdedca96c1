"""The install: ``requirements.lock`` pins a set that satisfies ``pyproject.toml``, and building
asc_kd prints no warnings (a new user's first command)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from fit_helpers import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(text) for text in [*project["dependencies"], *extras["dev"]]]


def test_every_pin_has_hashes() -> None:
    text = (REPO / "requirements.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    pinned = [block for block in blocks if "==" in block.splitlines()[0]]
    assert len(pinned) == len(_pins()) > 50
    assert all("--hash=sha256:" in block for block in pinned)


def test_the_lock_satisfies_pyproject() -> None:
    pins = _pins()
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, pyproject.toml asks {requirement}: run `make lock`"
        )
    assert pins["torch"] == "2.11.0" and pins["torchaudio"] == "2.11.0" and pins["torchvision"] == "0.26.0"


@pytest.mark.slow
def test_building_asc_kd_prints_no_warning(tmp_path: Path) -> None:
    pytest.importorskip("setuptools", minversion="77")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "asc_kd", tmp_path / "asc_kd", ignore=shutil.ignore_patterns("__pycache__"))
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v"]
    result = subprocess.run(
        [*command, "-w", str(tmp_path / "dist"), str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert not re.search(r"(?i)deprecat|BuildBackendWarning", output), output[-3000:]
    assert list((tmp_path / "dist").glob("asc_kd-*.whl"))
