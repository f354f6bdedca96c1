"""AST, the Audio Spectrogram Transformer (Gong et al. 2021), on timm's DeiT backbone."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from timm.layers import PatchEmbed
from timm.models.deit import VisionTransformerDistilled
from torch import Tensor, nn

from asc_kd.models.pretrained import load_or_warn, no_weights, require_file

AST_REPOSITORY = "https://github.com/YuanGongND/ast"


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
    if not no_weights(checkpoint):
        require_file(checkpoint, "AST", source)
    model = AST(n_classes, input_fdim, input_tdim, fstride, tstride, embed_dim, depth, num_heads)
    return load_or_warn(model, checkpoint, "AST", source)
