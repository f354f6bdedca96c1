"""Students (and, through ``asc_kd.models.teachers``, teachers) by name.

``get_model("system1")`` builds a model; ``list_models()`` says what exists. Registering a
new model is one entry in ``MODELS``: a name and a callable returning an ``nn.Module``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Literal

from torch import nn

from asc_kd.models.cp_mobile import (
    CPMobile,
    CPMobileConfig,
    DCASE24Baseline,
    cp_mobile,
    dcase24_baseline,
)
from asc_kd.models.cp_resnet import PRESETS, CPResNet, CPResNetConfig, cp_resnet
from asc_kd.models.debug import DebugCNN


def _teacher(name: str) -> Callable[..., nn.Module]:
    """Import ``asc_kd.models.teachers`` (timm, hear21passt) only when a teacher is built."""

    def build(**kwargs: Any) -> nn.Module:
        from asc_kd.models import teachers

        return getattr(teachers, name)(**kwargs)

    build.__name__ = build.__qualname__ = name
    build.is_teacher = True  # type: ignore[attr-defined]
    return build


MODELS: dict[str, Callable[..., nn.Module]] = {
    **{name: partial(cp_resnet, name) for name in PRESETS},
    "cp_mobile": cp_mobile,
    "dcase24_baseline": dcase24_baseline,
    "debug": DebugCNN,
    "passt": _teacher("passt"),
    "ast": _teacher("ast"),
    "efficientnet_b2": _teacher("efficientnet_b2"),
    "convnext": _teacher("convnext"),
    "swin": _teacher("swin"),
    "timm": _teacher("timm_model"),
}


def get_model(name: str, /, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name`` with keyword overrides."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return MODELS[name](**kwargs)


def list_models(kind: Literal["all", "students", "teachers"] = "all") -> list[str]:
    """Registered model names, sorted; ``students`` are the small CNNs, ``teachers`` the rest."""
    teachers = {name for name, build in MODELS.items() if getattr(build, "is_teacher", False)}
    if kind == "students":
        return sorted(set(MODELS) - teachers)
    if kind == "teachers":
        return sorted(teachers)
    return sorted(MODELS)


__all__ = [
    "CPMobile",
    "CPMobileConfig",
    "CPResNet",
    "CPResNetConfig",
    "DCASE24Baseline",
    "DebugCNN",
    "MODELS",
    "cp_mobile",
    "cp_resnet",
    "dcase24_baseline",
    "get_model",
    "list_models",
]
