"""The documentation pages and the results notebook, where asc_kd is installed.

``pages`` and ``notebooks`` here are links to the repository's ``docs/`` and ``notebooks/``, the
one copy of each page; a wheel carries the files themselves (``pyproject.toml``'s package data).
``python -m asc_kd.docs`` lists and prints them.
"""

from __future__ import annotations

import json
from pathlib import Path

from asc_kd.core.errors import ConfigError

PAGE_FOLDER = Path(__file__).parent / "pages"
NOTEBOOK_FOLDER = Path(__file__).parent / "notebooks"


def list_pages() -> dict[str, Path]:
    """Every page by name (``training`` for ``training.md``), then the notebooks."""
    files = [*sorted(PAGE_FOLDER.glob("*.md")), *sorted(NOTEBOOK_FOLDER.glob("*.ipynb"))]
    if not files:
        raise ConfigError(f"no documentation pages in {PAGE_FOLDER}: this asc_kd was installed without them")
    return {path.stem: path for path in files}


def heading(path: Path) -> str:
    """A page's first heading (a notebook's: its first Markdown cell's)."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")
    else:
        text = path.read_text()
    return next((line.lstrip("#").strip() for line in text.splitlines() if line.startswith("# ")), "")
