"""The dataset layouts asc_kd reads, by name, and ``auto`` detection from a root folder.

Adding a layout: write a ``Layout`` subclass (see ``asc_kd.data.spec``) in its own module and
add it to ``LAYOUTS``; a synthetic generator in ``asc_kd.data.synthetic`` lets tests run it.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from asc_kd.core.errors import ConfigError
from asc_kd.data.folders import FolderLayout
from asc_kd.data.spec import DatasetError, Layout
from asc_kd.data.synthetic import MARKER
from asc_kd.data.tau import TAU20Layout, TAU22Layout

LayoutName = Literal["auto", "tau22", "tau20", "folders"]

#: Detection tries these in order; the first that recognises the root wins.
LAYOUTS: dict[str, type[Layout]] = {
    "tau22": TAU22Layout,
    "tau20": TAU20Layout,
    "folders": FolderLayout,
}


def detect_layout(root: str | Path) -> str:
    """Name of the layout ``root`` holds, or a ``DatasetError`` saying what was looked for.

    A set ``asc_kd.data.synthetic`` wrote says its layout in its marker file; any other is
    recognised by each layout's ``detect``, which reads the layout's own markers before any
    clip's length (``asc_kd.data.tau.tau_edition``).
    """
    root = Path(root)
    generated = _generated_layout(root)
    if generated is not None:
        return generated
    for name, layout in LAYOUTS.items():
        if layout.detect(root):
            return name
    if (root / "meta.csv").is_file():  # TAU, but neither markers nor clips say which: read_meta says why
        return "tau22"
    raise DatasetError(
        f"cannot tell the layout of {root}: expected meta.csv (TAU22/TAU20) or one folder of audio "
        f"files per class; set data.layout to one of {', '.join(LAYOUTS)}"
    )


def _generated_layout(root: Path) -> str | None:
    """The layout the synthetic generator recorded in ``root``'s marker, if it wrote one."""
    try:
        recorded = json.loads((root / MARKER).read_text()).get("layout")
    except (OSError, ValueError, AttributeError):
        return None
    return recorded if recorded in LAYOUTS else None


def make_layout(root: str | Path, name: str = "auto", seed: int = 0, **options: Any) -> Layout:
    """The layout reader for ``root``, given the ``data.*`` options that only some layouts take.

    An option the layout does not take must hold its default (``_refuse_unused_options``):
    a folder layout's ``test_fraction`` given for a TAU root would otherwise do nothing, unseen.
    ``seed`` reaches the layouts that draw a split (as ``split_seed``) and no other: it also
    seeds what every layout does (the shuffle order), so it is never refused.
    """
    if name == "auto":
        name = detect_layout(root)
    if name not in LAYOUTS:
        raise ConfigError(f"unknown data.layout {name!r}; choose auto or one of {', '.join(LAYOUTS)}")
    cls = LAYOUTS[name]
    accepted = _parameters(cls)
    _refuse_unused_options(root, name, {k: v for k, v in options.items() if k not in accepted})
    if "split_seed" in accepted:
        options = {**options, "split_seed": seed}
    return cls(root, **{k: v for k, v in options.items() if k in accepted})


def _refuse_unused_options(root: str | Path, name: str, options: dict[str, Any]) -> None:
    """A ``ConfigError`` for the first option that holds another value than the default of the
    layouts that take it (the layout ``name`` of ``root`` does not); an option no layout takes
    is an error too."""
    for key, value in options.items():
        takers = {n: _parameters(c)[key] for n, c in LAYOUTS.items() if key in _parameters(c)}
        if not takers:
            raise ConfigError(f"data.{key} is an option of no layout ({', '.join(LAYOUTS)})")
        if all(value == parameter.default for parameter in takers.values()):
            continue
        raise ConfigError(
            f"data.{key}={value!r} applies only to the {' and '.join(takers)} layout, and {root} is "
            f"a {name} dataset; remove data.{key}"
        )


def _parameters(cls: type[Layout]) -> Mapping[str, inspect.Parameter]:
    return inspect.signature(cls.__init__).parameters
