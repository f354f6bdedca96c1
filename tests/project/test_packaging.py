"""The install: ``requirements.lock`` pins a set that satisfies ``pyproject.toml``, and building
asc_kd prints no warnings (a new user's first command)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import tomllib
from fit_helpers import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import asc_kd
from asc_kd.recipes import list_recipes


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


@dataclass(frozen=True)
class Wheel:
    path: Path
    build_output: str


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    """asc_kd built as a wheel from a copy of the repository's package files (its links to
    ``docs/`` and ``notebooks/`` kept as links, as in the repository)."""
    pytest.importorskip("setuptools", minversion="77")
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    for name in ("asc_kd", "docs", "notebooks"):
        shutil.copytree(
            REPO / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
        )
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v"]
    result = subprocess.run(
        [*command, "-w", str(source / "dist"), str(source)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (path,) = (source / "dist").glob("asc_kd-*.whl")
    return Wheel(path, result.stdout + result.stderr)


@pytest.mark.slow
def test_building_asc_kd_prints_no_warning(wheel: Wheel) -> None:
    assert not re.search(r"(?i)deprecat|BuildBackendWarning", wheel.build_output), wheel.build_output[-3000:]


def test_the_wheel_carries_every_recipe(wheel: Wheel) -> None:
    with zipfile.ZipFile(wheel.path) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("asc_kd/recipes/")}
    assert {f"asc_kd/recipes/{name}.yaml" for name in list_recipes()} <= shipped
    assert "asc_kd/recipes/README.md" in shipped
    with zipfile.ZipFile(wheel.path) as archive:
        entry_points = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        assert "asc-kd = asc_kd.__main__:main" in archive.read(entry_points).decode()


def test_the_wheel_carries_the_docs_and_the_version(wheel: Wheel) -> None:
    """``asc-kd docs`` reads the pages (``docs/*.md``, the results notebook) inside the package,
    files of their own there, not the links the repository has; ``asc-kd --version`` reads the
    wheel's version, which is ``asc_kd.__version__`` (checkpoints record that)."""
    with zipfile.ZipFile(wheel.path) as archive:
        names = set(archive.namelist())
        pages = {f"asc_kd/docs/pages/{p.name}": p for p in sorted((REPO / "docs").glob("*.md"))}
        pages["asc_kd/docs/notebooks/results.ipynb"] = REPO / "notebooks" / "results.ipynb"
        assert len(pages) >= 9 and set(pages) <= names, sorted(set(pages) - names)
        assert all(archive.read(name) == path.read_bytes() for name, path in pages.items())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert f"\nVersion: {asc_kd.__version__}\n" in metadata and project["version"] == asc_kd.__version__


@pytest.mark.slow
def test_the_installed_wheel_runs_the_pipeline_from_an_empty_folder(
    wheel: Wheel, tiny_root: Path, tmp_path: Path
) -> None:
    """pip users: no repository, no editable link. A fresh venv holds only the wheel; the
    dependencies come from this venv's site-packages through a path file (no download)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dependencies = sysconfig.get_path("purelib")
    Path(site, "dependencies.pth").write_text(dependencies + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"]
    subprocess.run([*pip, str(wheel.path)], check=True)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["WANDB_MODE"] = "offline"

    def run(*args: str) -> str:
        result = subprocess.run(args, cwd=empty, env=env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        return result.stdout

    located = run(str(python), "-c", "import asc_kd, sys; print(asc_kd.__file__)")
    assert located.startswith(site), located  # the wheel's copy, not the repository's
    assert run(str(venv / "bin" / "asc-kd"), "recipes", "list").split() == list_recipes()
    assert (
        run(str(venv / "bin" / "asc-kd"), "docs", "pipeline") == (REPO / "docs" / "pipeline.md").read_text()
    )
    assert run(str(venv / "bin" / "asc-kd"), "--version") == f"asc_kd {asc_kd.__version__}\n"
    out = empty / "out"
    run(
        str(venv / "bin" / "asc-kd"),
        "pipeline",
        *("--data.root", str(tiny_root), "--data.cache_dir", str(tmp_path / "cache"), "--out", str(out)),
        *("--teachers", "demo/teachers/cnn_tiny", "--systems", "system1", "--max-epochs", "1"),
        *("--data.batch_size", "16", "--quiet", "--no-wandb", "--"),
        *("--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"),
    )
    table = pd.read_csv(out / "table2.csv")
    assert list(zip(table["system"], table["precision"], strict=True)) == [
        ("system1", "fp32"),
        ("system1", "int8"),
    ]
    assert not any(empty.glob("experiments")) and sorted(p.name for p in empty.iterdir()) == ["out"]
