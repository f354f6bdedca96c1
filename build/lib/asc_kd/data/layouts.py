"""The dataset layouts asc_kd reads, by name, and ``auto`` detection from a root folder.

Adding a layout: write a ``Layout`` subclass (see ``asc_kd.data.spec``) in its own module and
add it to ``LAYOUTS``; a synthetic generator in ``asc_kd.data.synthetic`` lets tests run it.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Literal

from asc_kd.data.folders import FolderLayout
from asc_kd.data.spec import DatasetError, Layout
from asc_kd.data.tau import TAU20Layout, TAU22Layout
from asc_kd.errors import ConfigError

LayoutName = Literal["auto", "tau22", "tau20", "folders"]

#: Detection tries these in order; the first that recognises the root wins.
LAYOUTS: dict[str, type[Layout]] = {
    "tau22": TAU22Layout,
    "tau20": TAU20Layout,
    "folders": FolderLayout,
}


def detect_layout(root: str | Path) -> str:
    """Name of the layout ``root`` holds, or a ``DatasetError`` saying what was looked for."""
    root = Path(root)
    for name, layout in LAYOUTS.items():
        if layout.detect(root):
            return name
    if (root / "meta.csv").is_file():  # a TAU meta.csv whose first clip cannot be read
        return "tau22"
    raise DatasetError(
        f"cannot tell the layout of {root}: expected meta.csv (TAU22/TAU20) or one folder of audio "
        f"files per class; set data.layout to one of {', '.join(LAYOUTS)}"
    )


def make_layout(root: str | Path, name: str = "auto", **options: Any) -> Layout:
    """The layout reader for ``root``; options a layout does not take are ignored."""
    if name == "auto":
        name = detect_layout(root)
    if name not in LAYOUTS:
        raise ConfigError(f"unknown data.layout {name!r}; choose auto or one of {', '.join(LAYOUTS)}")
    cls = LAYOUTS[name]
    accepted = inspect.signature(cls.__init__).parameters
    return cls(root, **{k: v for k, v in options.items() if k in accepted})
