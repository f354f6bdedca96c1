"""Models by name: the students, the teachers, and your own.

``get_model("system1")`` builds a registered model; ``list_models()`` says what exists. Your
own model needs no edit of this package: name it by import path (``mypkg.models:TinyCNN`` or
``mypkg.models.TinyCNN``) wherever a model name is accepted, or register a short name with
``@register_model("tiny_cnn")`` in a module you import. A model maps a ``(batch, 1, mel bins,
frames)`` log-mel batch to ``(batch, n_classes)`` logits; when its builder takes an
``n_classes`` argument it receives the dataset's class count.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from typing import Any, Literal, TypeVar

from torch import nn

from asc_kd.core.errors import ConfigError
from asc_kd.core.imports import import_object, is_import_path
from asc_kd.models.cp_mobile import CPMobile, CPMobileConfig, DCASE24Baseline, cp_mobile, dcase24_baseline
from asc_kd.models.cp_resnet import CP_RESNET_PRESETS, CPResNet, CPResNetConfig, cp_resnet
from asc_kd.models.debug import DebugCNN

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])


def _teacher(module: str, name: str) -> Callable[..., nn.Module]:
    """Import a teacher module (timm, hear21passt) only when a teacher is built."""

    def build(**kwargs: Any) -> nn.Module:
        return import_object(f"asc_kd.models.{module}:{name}", "teacher")(**kwargs)

    build.__name__ = build.__qualname__ = name
    build.is_teacher = True  # type: ignore[attr-defined]
    build.import_path = f"asc_kd.models.{module}:{name}"  # type: ignore[attr-defined]
    return build


MODELS: dict[str, Callable[..., nn.Module]] = {
    **{name: partial(cp_resnet, name) for name in CP_RESNET_PRESETS},
    "cp_mobile": cp_mobile,
    "dcase24_baseline": dcase24_baseline,
    "debug": DebugCNN,
    "passt": _teacher("passt", "passt"),
    "ast": _teacher("audio_spectrogram_transformer", "ast"),
    "efficientnet_b2": _teacher("timm_teachers", "efficientnet_b2"),
    "convnext": _teacher("timm_teachers", "convnext"),
    "swin": _teacher("timm_teachers", "swin"),
    "timm": _teacher("timm_teachers", "timm_model"),
}


def register_model(name: str, teacher: bool = False) -> Callable[[Builder], Builder]:
    """Decorator: make a model class or builder available as ``name`` in every command.

    The module holding it must be imported before the name is used (a checkpoint records the
    import path too, so loading it does not depend on that).
    """

    def register(builder: Builder) -> Builder:
        if name in MODELS and MODELS[name] is not builder:
            raise ConfigError(f"model name {name!r} is already registered")
        if teacher:
            builder.is_teacher = True  # type: ignore[attr-defined]
        MODELS[name] = builder
        return builder

    return register


def resolve_model(name: str) -> Callable[..., nn.Module]:
    """The builder registered as ``name``, or the class or function at that import path."""
    if name in MODELS:
        return MODELS[name]
    if is_import_path(name):
        builder = import_object(name, "model")
        if not callable(builder):
            raise ConfigError(f"model {name!r} is not a class or function")
        return builder
    raise ConfigError(
        f"unknown model {name!r}; registered models: {', '.join(list_models())}, or give an import "
        "path such as mypkg.models:TinyCNN"
    )


def model_path(name: str) -> str | None:
    """Import path (``module:Class``) of a model from outside asc_kd, given by short name or
    import path (``None`` for built-in models).

    Checkpoints record it, so a model registered with ``register_model`` in your own module
    loads again without importing that module first.
    """
    builder = resolve_model(name)
    module = getattr(builder, "__module__", "") or ""
    if isinstance(builder, partial) or module.startswith("asc_kd."):
        return None
    return f"{module}:{builder.__qualname__}"


def get_model(name: str, /, **kwargs: Any) -> nn.Module:
    """Build the model named ``name`` (short name or import path) with keyword arguments.

    ``n_classes`` is dropped for builders that do not take it.
    """
    builder = resolve_model(name)
    if "n_classes" in kwargs and not _accepts(builder, "n_classes"):
        kwargs.pop("n_classes")
    return builder(**kwargs)


def _accepts(builder: Callable[..., Any], argument: str) -> bool:
    if getattr(builder, "is_teacher", False):
        return True  # lazy teacher builders forward **kwargs; every teacher takes n_classes
    try:
        parameters = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return True
    return argument in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


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
    "model_path",
    "register_model",
    "resolve_model",
]
