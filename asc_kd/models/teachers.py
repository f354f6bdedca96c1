"""Teachers of the Tencent DCASE23 report, section 3: PaSST, AST, EfficientNet, ConvNeXt, Swin.

Every builder returns an ``nn.Module`` mapping a ``(batch, 1, mel bins, frames)`` log-mel batch
to ``(batch, n_classes)`` logits, like the students. Models are always built with random
weights; pretrained weights come only from a local file passed as ``checkpoint`` (nothing is
downloaded at run time), through ``load_pretrained``, which adapts published checkpoints to
our configuration: a new classifier for our classes, a 3-channel stem summed to 1 channel,
positional embeddings fitted to our input length.

State-dict keys stay those of the upstream code (hear21passt's ``PaSST``, Yuan Gong's ``AST``,
timm), so published checkpoints load without renaming.
"""

from __future__ import annotations

import logging
import math
import warnings
from functools import partial
from pathlib import Path
from typing import Literal, TypeVar

import hear21passt.models.passt as upstream_passt
import safetensors.torch
import timm
import torch
from timm.layers import PatchEmbed
from timm.models.deit import VisionTransformerDistilled
from torch import Tensor, nn

logger = logging.getLogger(__name__)

PASST_RELEASES = "https://github.com/kkoutini/PaSST/releases"
AST_REPOSITORY = "https://github.com/YuanGongND/ast"

#: hear21passt architectures: name -> (depth, patch stride). All are 768-wide with 12 heads,
#: 16x16 patches and class + distillation tokens, pretrained on 10-s AudioSet clips.
PASST_ARCHS: dict[str, tuple[int, int]] = {
    "passt_s_swa_p16_128_ap476": (12, 10),
    "passt_s_kd_p16_128_ap486": (12, 10),
    "passt_l_kd_p16_128_ap47": (7, 10),
    "passt_s_p16_s16_128_ap468": (12, 16),
    "passt_b_f128_p16_s16_ap_459": (12, 16),
    "passt_u600_f128_p16_s16_ap_460": (12, 16),
}

Anchor = Literal["start", "center"]
Model = TypeVar("Model", bound=nn.Module)


# -- loading local checkpoints ------------------------------------------------------------------
def _require_file(checkpoint: str | Path, what: str = "", source: str | None = None) -> Path:
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        message = f"{what} checkpoint file not found: {path}." if what else f"No such checkpoint: {path}."
        if source:
            message += (
                f" It is published at {source}; download it and pass its local path as "
                "`checkpoint` (nothing is downloaded at run time)."
            )
        raise FileNotFoundError(message)
    return path


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a ``.pt``/``.pth``/``.ckpt`` or ``.safetensors`` file, unwrapped from containers.

    ``torch.load`` runs with ``weights_only=True``, so a checkpoint cannot execute code. The
    ``state_dict`` (Lightning) and ``model`` (DeiT, many research repos) containers are
    unwrapped, as often as they nest.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        state: object = safetensors.torch.load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    while isinstance(state, dict):
        inner = next((state[k] for k in ("state_dict", "model") if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict) or not any(isinstance(v, Tensor) for v in state.values()):
        found = sorted(state)[:10] if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path} holds no state dict of tensors; found {found}.")
    return {k: v for k, v in state.items() if isinstance(v, Tensor)}


def _classifier_names(model: nn.Module) -> tuple[str, ...]:
    """Parameter-name prefixes of the classifier: ours, or timm's ``pretrained_cfg``."""
    names = getattr(model, "classifier_names", None)
    if names is None:
        names = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or ()
    return (names,) if isinstance(names, str) else tuple(names)


def _is_under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _strip_wrapper_prefixes(state: dict[str, Tensor], model_keys: set[str]) -> dict[str, Tensor]:
    """Drop ``module.`` (DataParallel) and ``model.`` (our Lightning tasks) key prefixes."""
    for prefix in ("module.", "model."):
        if all(k.startswith(prefix) for k in state) and not any(k.startswith(prefix) for k in model_keys):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def fit_grid(grid: Tensor, size: tuple[int, int], anchor: Anchor) -> Tensor:
    """Fit a ``(1, dim, rows, cols)`` positional-embedding grid to ``size``, axis by axis.

    A shorter axis is cropped and a longer one bilinearly interpolated, as the originals do:
    AST crops the middle of its AudioSet embeddings (``anchor="center"``), and PaSST's forward
    uses the first columns of its time embeddings for shorter inputs (``anchor="start"``), so a
    PaSST checkpoint cropped from the start computes exactly what it computed before.
    """
    dtype = grid.dtype
    grid = grid.float()
    for axis, new in ((2, size[0]), (3, size[1])):
        old = grid.shape[axis]
        if new < old:
            grid = grid.narrow(axis, old // 2 - new // 2 if anchor == "center" else 0, new)
        elif new > old:
            target = [grid.shape[2], grid.shape[3]]
            target[axis - 2] = new
            grid = nn.functional.interpolate(grid, size=tuple(target), mode="bilinear", align_corners=False)
    return grid.to(dtype)


def _source_grid(n_patches: int, rows: int) -> tuple[int, int] | None:
    """Grid of a flattened checkpoint embedding: square (ImageNet ViTs) or ``rows`` high (AST)."""
    side = math.isqrt(n_patches)
    if side * side == n_patches:
        return side, side
    if n_patches % rows == 0:
        return rows, n_patches // rows
    return None


def _fit_flat_pos_embed(value: Tensor, target: torch.Size, owner: nn.Module) -> Tensor | None:
    """Refit a timm ViT ``pos_embed`` of shape ``(1, prefix tokens + rows * cols, dim)``."""
    grid_size = getattr(getattr(owner, "patch_embed", None), "grid_size", None)
    if grid_size is None or value.dim() != 3 or value.shape[::2] != target[::2]:
        return None
    n_prefix = 0 if getattr(owner, "no_embed_class", False) else int(getattr(owner, "num_prefix_tokens", 0))
    rows, cols = grid_size
    source = _source_grid(value.shape[1] - n_prefix, rows)
    if source is None or target[1] != n_prefix + rows * cols:
        return None
    patches = value[:, n_prefix:].reshape(1, *source, -1).permute(0, 3, 1, 2)
    patches = fit_grid(patches, (rows, cols), "center").flatten(2).transpose(1, 2)
    return torch.cat([value[:, :n_prefix], patches], dim=1)


def _adapt(key: str, value: Tensor, target: torch.Size, model: nn.Module) -> Tensor | None:
    """The checkpoint tensor reshaped to the model's, or ``None`` when no rule applies."""
    leaf = key.rsplit(".", 1)[-1]
    if value.dim() == 4 and len(target) == 4 and value.shape[1] == 3 and target[1] == 1:
        # RGB stem of an ImageNet model: a grey image is R = G = B, so sum the filters.
        summed = value.float().sum(dim=1, keepdim=True).to(value.dtype)
        return summed if summed.shape == target else None
    if leaf == "pos_embed":
        owner = model.get_submodule(key.rpartition(".")[0])
        return _fit_flat_pos_embed(value, target, owner)
    if leaf.endswith("pos_embed") and value.dim() == 4 and len(target) == 4 and value.shape[:2] == target[:2]:
        # PaSST's factorised time (1, dim, 1, T) and frequency (1, dim, F, 1) embeddings.
        return fit_grid(value, (target[2], target[3]), "start")
    return None


def adapt_state_dict(
    state: dict[str, Tensor], model: nn.Module, name: str = "checkpoint"
) -> dict[str, Tensor]:
    """Fit a checkpoint's tensors to ``model``; raise ``ValueError`` on anything else.

    Classifier tensors of another shape (another number of classes) are dropped, so the model
    keeps its fresh head. 3-channel stems are summed to 1 channel and positional embeddings
    fitted to the model's patch grid (``fit_grid``). Checkpoint keys the model lacks are
    ignored with a warning (AST checkpoints carry DeiT's unused ImageNet heads); model tensors
    the checkpoint lacks, other than the classifier and BatchNorm step counters, are an error.

    Args:
        state: checkpoint tensors, e.g. from ``read_state_dict``.
        model: the model to load into.
        name: how errors refer to the checkpoint (its path).
    """
    model_state = model.state_dict()
    classifier = _classifier_names(model)
    state = _strip_wrapper_prefixes(state, set(model_state))
    adapted: dict[str, Tensor] = {}
    notes: list[str] = []
    for key, value in state.items():
        if key not in model_state:
            continue
        target = model_state[key].shape
        if value.shape == target:
            adapted[key] = value
        elif _is_under(key, classifier):
            notes.append(f"dropped classifier {key} {tuple(value.shape)}")
        elif (fitted := _adapt(key, value, target, model)) is not None and fitted.shape == target:
            adapted[key] = fitted
            notes.append(f"fitted {key} {tuple(value.shape)} -> {tuple(target)}")
        else:
            raise ValueError(
                f"{name}: parameter {key!r} has shape {tuple(value.shape)} in the checkpoint but "
                f"{tuple(target)} in the {type(model).__name__}; the checkpoint was saved from a "
                "model of another size or input configuration."
            )
    missing = [
        k
        for k in model_state
        if k not in adapted and not _is_under(k, classifier) and not k.endswith("num_batches_tracked")
    ]
    if missing:
        raise ValueError(
            f"{name} lacks {len(missing)} tensors of the {type(model).__name__}, e.g. "
            f"{', '.join(missing[:5])}; it was saved from another architecture."
        )
    unexpected = [k for k in state if k not in model_state]
    if unexpected:
        logger.warning(
            "%s: ignored %d tensors the %s lacks, e.g. %s",
            name,
            len(unexpected),
            type(model).__name__,
            ", ".join(unexpected[:5]),
        )
    for note in notes:
        logger.info("%s: %s", name, note)
    return adapted


def load_pretrained(model: Model, checkpoint: str | Path, source: str | None = None) -> Model:
    """Load a local checkpoint into ``model`` (in place, and returned), adapting it as needed.

    Args:
        model: the model to load into.
        checkpoint: path of a ``.pt``/``.pth``/``.ckpt`` or ``.safetensors`` file.
        source: where the file is published, for the error message when it is missing.
    """
    path = _require_file(checkpoint, source=source)
    model.load_state_dict(adapt_state_dict(read_state_dict(path), model, str(path)), strict=False)
    logger.info("loaded %s into %s", path, type(model).__name__)
    return model


def _load_or_warn(model: Model, checkpoint: str | Path | None, what: str, source: str) -> Model:
    if checkpoint is None:
        warnings.warn(
            f"The {what} teacher has random weights: no checkpoint was given. Pretrained weights "
            f"are published at {source}; pass the local file as `checkpoint`.",
            stacklevel=3,
        )
        return model
    return load_pretrained(model, checkpoint, source)


# -- PaSST ---------------------------------------------------------------------------------------
class PaSSTLogits(upstream_passt.PaSST):
    """hear21passt's ``PaSST``, returning only the logits instead of ``(logits, embedding)``."""

    classifier_names = ("head.1", "head_dist")

    def __init__(self, **kwargs) -> None:
        # hear21passt prints tensor shapes on its first forward; library code must not print.
        upstream_passt.first_RUN = False
        super().__init__(**kwargs)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)[0]


def passt(
    arch: str = "passt_s_swa_p16_128_ap476",
    n_classes: int = 10,
    checkpoint: str | Path | None = None,
    input_fdim: int = 128,
    input_tdim: int = 100,
    s_patchout_t: int = 0,
    s_patchout_f: int = 6,
    u_patchout: int = 0,
    embed_dim: int = 768,
    depth: int | None = None,
    num_heads: int = 12,
    drop_path_rate: float = 0.0,
) -> PaSSTLogits:
    """PaSST, the teacher the report keeps: an ensemble of them reached 62.5 % (Table 1).

    The defaults are CP-JKU's DCASE22 fine-tuning of the AudioSet ``passt_s_swa_p16_128_ap476``:
    128 mel bins, stride-10 patches, frequency patchout of 6 rows and no time patchout (both
    only act in training). ``input_tdim=100`` frames is 1 s of ``PasstMel``; CP-JKU kept the
    10-s time embeddings and the model used their first columns, which ``load_pretrained``
    reproduces by cropping them, so their DCASE22 teacher state dicts (passt_253..256.pt,
    github.com/CPJKU/cpjku_dcase22 releases) load as well as the AudioSet ones.

    Args:
        arch: hear21passt architecture, a key of ``PASST_ARCHS``.
        n_classes: number of scene classes.
        checkpoint: local state dict; ``None`` leaves the model untrained (with a warning).
        input_fdim: mel bins of the input.
        input_tdim: frames of the input; shorter inputs use the first time embeddings.
        s_patchout_t: time columns of patches dropped in training (structured patchout).
        s_patchout_f: frequency rows of patches dropped in training.
        u_patchout: single patches dropped in training (unstructured patchout).
        embed_dim: token width; only smaller for tests and demos.
        depth: transformer blocks; ``None`` means the architecture's.
        num_heads: attention heads.
        drop_path_rate: stochastic depth at the last block.
    """
    if arch not in PASST_ARCHS:
        raise KeyError(f"unknown PaSST architecture {arch!r}; choose one of {sorted(PASST_ARCHS)}")
    source = f"{PASST_RELEASES} ({upstream_passt.default_cfgs[arch]['url']})"
    if checkpoint is not None:
        _require_file(checkpoint, f"PaSST {arch}", source)
    arch_depth, stride = PASST_ARCHS[arch]
    model = PaSSTLogits(
        u_patchout=u_patchout,
        s_patchout_t=s_patchout_t,
        s_patchout_f=s_patchout_f,
        img_size=(input_fdim, input_tdim),
        patch_size=16,
        stride=stride,
        in_chans=1,
        num_classes=n_classes,
        embed_dim=embed_dim,
        depth=arch_depth if depth is None else depth,
        num_heads=num_heads,
        distilled=True,
        drop_path_rate=drop_path_rate,
    )
    return _load_or_warn(model, checkpoint, f"PaSST {arch}", source)


# -- AST -----------------------------------------------------------------------------------------
class OverlappingPatchEmbed(PatchEmbed):
    """timm's patch embedding with a stride below the patch size: AST's overlapping patches."""

    def __init__(self, *, stride: tuple[int, int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.stride = stride
        self.proj = nn.Conv2d(
            self.proj.in_channels,
            self.proj.out_channels,
            kernel_size=self.patch_size,
            stride=stride,
            bias=self.proj.bias is not None,
            device=kwargs.get("device"),
            dtype=kwargs.get("dtype"),
        )
        self.grid_size = tuple(
            (n - p) // s + 1 for n, p, s in zip(self.img_size, self.patch_size, stride, strict=True)
        )
        self.num_patches = self.grid_size[0] * self.grid_size[1]

    def feat_ratio(self, as_scalar: bool = True) -> tuple[int, int] | int:
        return max(self.stride) if as_scalar else self.stride


class AST(nn.Module):
    """Audio Spectrogram Transformer (Gong et al. 2021) on a timm DeiT backbone.

    As in AST: 16x16 patches at stride 10 (overlap 6), class and distillation tokens whose
    outputs are averaged and fed to one LayerNorm + Linear head (``mlp_head``). Attribute names
    match AST's, so its published checkpoints load once their ``module.`` prefix is stripped.
    """

    classifier_names = ("mlp_head.1",)

    def __init__(
        self,
        n_classes: int = 10,
        input_fdim: int = 128,
        input_tdim: int = 98,
        fstride: int = 10,
        tstride: int = 10,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
    ) -> None:
        super().__init__()
        self.v = VisionTransformerDistilled(
            img_size=(input_fdim, input_tdim),
            patch_size=16,
            in_chans=1,
            num_classes=0,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            embed_layer=partial(OverlappingPatchEmbed, stride=(fstride, tstride)),
        )
        self.mlp_head = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, n_classes))

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.v.forward_features(x)
        return self.mlp_head(self.v.forward_head(tokens, pre_logits=True))


def ast(
    n_classes: int = 10,
    checkpoint: str | Path | None = None,
    input_fdim: int = 128,
    input_tdim: int = 98,
    fstride: int = 10,
    tstride: int = 10,
    embed_dim: int = 768,
    depth: int = 12,
    num_heads: int = 12,
) -> AST:
    """AST teacher (report section 3.1, 56.7 %) on ``ASTFbank``'s 128-bin fbank.

    ``input_tdim=98`` is 1 s of ``ASTFbank`` (25-ms frames every 10 ms at 16 kHz). The AudioSet
    checkpoint's 12 x 101 positional grid is cropped to the middle 9 columns, as AST does.

    Args:
        n_classes: number of scene classes.
        checkpoint: local AST state dict; ``None`` leaves the model untrained (with a warning).
        input_fdim: fbank bins of the input.
        input_tdim: frames of the input (fixed: the positional embeddings are sized for it).
        fstride: patch stride over frequency.
        tstride: patch stride over time.
        embed_dim: token width; small values give tiny test and demo teachers.
        depth: transformer blocks.
        num_heads: attention heads.
    """
    source = f"{AST_REPOSITORY} (AudioSet-pretrained audioset_10_10_0.4593.pth)"
    if checkpoint is not None:
        _require_file(checkpoint, "AST", source)
    model = AST(n_classes, input_fdim, input_tdim, fstride, tstride, embed_dim, depth, num_heads)
    return _load_or_warn(model, checkpoint, "AST", source)


# -- timm image models ---------------------------------------------------------------------------
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
    if checkpoint is not None:
        _require_file(checkpoint, f"timm {name}", source)
    model = timm.create_model(name, pretrained=False, in_chans=1, num_classes=n_classes, **kwargs)
    if model.pretrained_cfg.get("fixed_input_size"):
        size = getattr(getattr(model, "patch_embed", None), "img_size", None)
        size = tuple(size or model.pretrained_cfg["input_size"][-2:])
        model.register_forward_pre_hook(partial(_resize_input, size=size))
    return _load_or_warn(model, checkpoint, f"timm {name}", source)


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


__all__ = [
    "AST",
    "PASST_ARCHS",
    "OverlappingPatchEmbed",
    "PaSSTLogits",
    "adapt_state_dict",
    "ast",
    "convnext",
    "efficientnet_b2",
    "fit_grid",
    "load_pretrained",
    "passt",
    "read_state_dict",
    "swin",
    "timm_model",
]
