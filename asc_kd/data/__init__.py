"""Scene datasets: specs and layouts (TAU22, TAU20, folders), audio, cache, the DataModule.

Synthetic scenes live in ``asc_kd.data.synthetic`` (not re-exported here: the DataModule
imports the package, and the generator is needed only to write a set). The names below are
imported on first use: a module of this package that needs no torch (``asc_kd.data.options``,
read by a command's ``--help``) is imported without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asc_kd.data.cache import AudioCache, build_cache, fingerprint_files
    from asc_kd.data.datamodule import (
        ClipDataset,
        DatasetFingerprint,
        FolderDataModule,
        SceneDataModule,
        TAU20DataModule,
        TAU22DataModule,
        dataset_fingerprint,
    )
    from asc_kd.data.layouts import LAYOUTS, detect_layout, make_layout
    from asc_kd.data.spec import DatasetError, DatasetSpec, Layout

#: Each name this package exports, and the module that defines it.
_EXPORTS = {
    "AudioCache": "asc_kd.data.cache",
    "build_cache": "asc_kd.data.cache",
    "fingerprint_files": "asc_kd.data.cache",
    "ClipDataset": "asc_kd.data.datamodule",
    "DatasetFingerprint": "asc_kd.data.datamodule",
    "FolderDataModule": "asc_kd.data.datamodule",
    "SceneDataModule": "asc_kd.data.datamodule",
    "TAU20DataModule": "asc_kd.data.datamodule",
    "TAU22DataModule": "asc_kd.data.datamodule",
    "dataset_fingerprint": "asc_kd.data.datamodule",
    "LAYOUTS": "asc_kd.data.layouts",
    "detect_layout": "asc_kd.data.layouts",
    "make_layout": "asc_kd.data.layouts",
    "DatasetError": "asc_kd.data.spec",
    "DatasetSpec": "asc_kd.data.spec",
    "Layout": "asc_kd.data.spec",
}

__all__ = [
    "LAYOUTS",
    "AudioCache",
    "ClipDataset",
    "DatasetError",
    "DatasetFingerprint",
    "DatasetSpec",
    "FolderDataModule",
    "Layout",
    "SceneDataModule",
    "TAU20DataModule",
    "TAU22DataModule",
    "build_cache",
    "dataset_fingerprint",
    "detect_layout",
    "fingerprint_files",
    "make_layout",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
