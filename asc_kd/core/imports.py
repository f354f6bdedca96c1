"""Objects named by import path, so user code outside the package works in every command.

``mypkg.models:TinyCNN`` and ``mypkg.models.TinyCNN`` both name the class ``TinyCNN`` of the
module ``mypkg.models``, imported from the working directory or ``PYTHONPATH``, as Python
itself would when the command was started from there.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from asc_kd.core.errors import UserError


class ImportPathError(UserError, ValueError):
    """An import path names a module or attribute that cannot be imported; says which."""


def is_import_path(name: str) -> bool:
    """Whether ``name`` looks like ``module:attr`` or ``module.attr`` rather than a short name."""
    return ":" in name or "." in name


def import_object(path: str, what: str = "object") -> Any:
    """The object at ``path`` (``module:attr`` or ``module.attr``), imported on demand."""
    if ":" in path:
        module_name, _, attribute = path.partition(":")
    else:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise ImportPathError(f"{what} {path!r} is not an import path like 'mypkg.module:Name'")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # `python -m` puts the working directory first; keep that
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ImportPathError(
            f"cannot import module {err.name!r} for {what} {path!r}; run the command from the folder "
            "that holds it or add that folder to PYTHONPATH"
        ) from err
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ImportPathError(f"module {module_name!r} has no {attribute!r} (the {what} {path!r})")
        target = getattr(target, part)
    return target
