"""Fixtures of the deployment tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch


@pytest.fixture
def foreign_file(tmp_path: Path) -> Callable[[str, bytes | dict], Path]:
    """Write a file asc_kd did not write, named ``name`` under ``tmp_path``: raw bytes as they are,
    a dict through ``torch.save`` (a PyTorch file without what asc_kd's own hold)."""

    def write(name: str, content: bytes | dict) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            torch.save(content, path)
        return path

    return write
