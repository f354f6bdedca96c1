"""TAU22 data: layout and labels, audio cache, synthetic scenes, front-ends, DataModule."""

from asc_kd.data.cache import AudioCache, build_cache, fingerprint_files
from asc_kd.data.datamodule import ClipDataset, TAU22DataModule
from asc_kd.data.frontends import ASTFbank, PasstMel, StudentMel
from asc_kd.data.synthetic import SyntheticConfig, ensure_synthetic, generate
from asc_kd.data.tau22 import (
    CITIES,
    DEVICE_GROUPS,
    DEVICES,
    SCENES,
    DatasetError,
    device_group,
    read_meta,
    read_split,
)

__all__ = [
    "ASTFbank",
    "AudioCache",
    "CITIES",
    "ClipDataset",
    "DEVICES",
    "DEVICE_GROUPS",
    "DatasetError",
    "PasstMel",
    "SCENES",
    "StudentMel",
    "SyntheticConfig",
    "TAU22DataModule",
    "build_cache",
    "device_group",
    "ensure_synthetic",
    "fingerprint_files",
    "generate",
    "read_meta",
    "read_split",
]
