"""Image CNNs and transformers from timm as spectrogram teachers: EfficientNet, ConvNeXt, Swin."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import timm
from torch import Tensor, nn

from asc_kd.models.pretrained import load_or_warn, no_weights, require_file


def _resize_input(module: nn.Module, args: tuple[Tensor, ...], size: tuple[int, int]) -> tuple[Tensor, ...]:
    x, *rest = args
    if tuple(x.shape[-2:]) != size:
        x = nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return (x, *rest)


def timm_model(name: str, n_classes: int = 10, checkpoint: str | Path | None = None, **kwargs) -> nn.Module:
    """Any timm classifier on 1-channel spectrograms, e.g. ImageNet CNNs as teachers.

    Models with a fixed input size (Swin, ViTs) get a forward pre-hook that bilinearly resizes
    the spectrogram to that size: inputs of any length then work, and the model keeps the
    window and embedding shapes of its ImageNet checkpoint. A hook rather than a wrapper keeps
    timm's parameter names, so timm checkpoints load unchanged.

    Args:
        name: timm model name, optionally with a pretrained tag (``convnext_tiny.fb_in1k``).
        n_classes: number of scene classes.
        checkpoint: local timm weights (``model.safetensors`` from the Hugging Face hub page);
            ``None`` leaves the model untrained (with a warning).
        **kwargs: further ``timm.create_model`` arguments (``drop_path_rate``, ``img_size``).
    """
    cfg = timm.models.get_pretrained_cfg(name)
    source = f"https://huggingface.co/{cfg.hf_hub_id if cfg and cfg.hf_hub_id else 'timm'}"
    if not no_weights(checkpoint):
        require_file(checkpoint, f"timm {name}", source)
    model = timm.create_model(name, pretrained=False, in_chans=1, num_classes=n_classes, **kwargs)
    if model.pretrained_cfg.get("fixed_input_size"):
        size = getattr(getattr(model, "patch_embed", None), "img_size", None)
        size = tuple(size or model.pretrained_cfg["input_size"][-2:])
        model.register_forward_pre_hook(partial(_resize_input, size=size))
    return load_or_warn(model, checkpoint, f"timm {name}", source)


def efficientnet_b2(n_classes: int = 10, checkpoint: str | Path | None = None, **kwargs) -> nn.Module:
    """EfficientNet-B2 teacher (report section 3.2, 55.2 %), from timm."""
    return timm_model("efficientnet_b2", n_classes, checkpoint, **kwargs)


def convnext(
    name: str = "convnext_tiny", n_classes: int = 10, checkpoint: str | Path | None = None, **kwargs
) -> nn.Module:
    """ConvNeXt teacher (report section 3.3, 53.4 %), from timm; the report names no size."""
    return timm_model(name, n_classes, checkpoint, **kwargs)


def swin(
    name: str = "swin_tiny_patch4_window7_224",
    n_classes: int = 10,
    checkpoint: str | Path | None = None,
    img_size: tuple[int, int] | None = None,
    **kwargs,
) -> nn.Module:
    """Swin Transformer teacher (report section 3.4, 56.9 %), from timm.

    Swin's windows need a fixed input size; spectrograms of other sizes are resized to it (see
    ``timm_model``). ``img_size=None`` keeps the checkpoint's 224 x 224. ``img_size=(F, T)``
    avoids resizing, but where a late stage's map is smaller than the 7 x 7 window timm shrinks
    the window, and ImageNet checkpoints then no longer fit those layers.
    """
    if img_size is not None:
        kwargs["img_size"] = tuple(img_size)
    return timm_model(name, n_classes, checkpoint, **kwargs)
