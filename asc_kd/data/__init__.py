"""Scene datasets: specs and layouts (TAU22, TAU20, folders), audio, cache, the DataModule.

Synthetic scenes live in ``asc_kd.data.synthetic`` (not re-exported here: the DataModule
imports the package, and the generator is needed only to write a set).
"""

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
