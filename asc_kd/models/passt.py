"""PaSST (Koutini et al. 2022), the teacher the report keeps (hear21passt's implementation).

hear21passt's ``PaSST`` is built with random weights; AudioSet or fine-tuned weights come from
a local file through ``asc_kd.models.pretrained``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import hear21passt.models.passt as upstream_passt
import torch
import torch.nn.functional as F
from torch import Tensor

from asc_kd.core.errors import ConfigError
from asc_kd.models.pretrained import load_or_warn, no_weights, require_file

PASST_RELEASES = "https://github.com/kkoutini/PaSST/releases"

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


class FusedAttention(upstream_passt.Attention):
    """hear21passt's attention through ``scaled_dot_product_attention``: one fused kernel
    (flash / memory-efficient on GPU, a fused CPU kernel) instead of materialising the
    attention matrix, softmax and dropout as separate ops. Same parameters, same state dict.

    Except in bf16 on a CPU without AMX tiles (``fused_cpu_bf16`` false): there the attention
    is hear21passt's own matmul, softmax, matmul, with the values of ``attention="manual"``,
    because ``python -m asc_kd.bench attention`` measured the fused CPU kernel slower on such a
    CPU at PaSST's token counts (56 in training, 110 in eval for a 1-s clip; the page
    docs/performance.md). On a CPU with AMX tiles the fused kernel is kept, as before;
    ``bench attention`` times both paths on any CPU.
    """

    #: Whether the fused kernel also runs bf16 on a CPU: where the CPU has AMX tiles, for which
    #: PyTorch's fused CPU kernel packs its bf16 matrix products (set when the model is built).
    fused_cpu_bf16: bool = True

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, channels = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(batch, tokens, 3, heads, channels // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if q.device.type == "cpu" and q.dtype == torch.bfloat16 and not self.fused_cpu_bf16:
            x = self.attn_drop(((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)) @ v
        else:
            dropout = self.attn_drop.p if self.training else 0.0
            x = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=self.scale)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(batch, tokens, channels)))


class PaSSTLogits(upstream_passt.PaSST):
    """hear21passt's ``PaSST``, returning only the logits instead of ``(logits, embedding)``,
    with ``FusedAttention`` (hear21passt's matmuls in bf16 on a CPU without AMX tiles) unless
    ``attention="manual"`` (hear21passt's own everywhere, for comparison)."""

    classifier_names = ("head.1", "head_dist")

    def __init__(self, attention: Literal["fused", "manual"] = "fused", **kwargs) -> None:
        # hear21passt prints tensor shapes on its first forward; library code must not print.
        upstream_passt.first_RUN = False
        super().__init__(**kwargs)
        if attention not in ("fused", "manual"):
            raise ConfigError(f"attention must be 'fused' or 'manual', got {attention!r}")
        if attention == "fused":
            amx = torch.cpu._is_amx_tile_supported()
            for block in self.blocks:
                block.attn.__class__ = FusedAttention
                block.attn.fused_cpu_bf16 = amx

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
    attention: Literal["fused", "manual"] = "fused",
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
        attention: ``fused`` (``scaled_dot_product_attention``; hear21passt's matmuls in bf16
            on a CPU without AMX tiles, ``FusedAttention``) or ``manual`` (hear21passt's
            matmul-softmax-matmul); the same parameters and, up to rounding, the same outputs.
    """
    if arch not in PASST_ARCHS:
        raise ConfigError(f"unknown PaSST architecture {arch!r}; choose one of {sorted(PASST_ARCHS)}")
    source = f"{PASST_RELEASES} ({upstream_passt.default_cfgs[arch]['url']})"
    if not no_weights(checkpoint):
        require_file(checkpoint, f"PaSST {arch}", source)
    arch_depth, stride = PASST_ARCHS[arch]
    model = PaSSTLogits(
        attention=attention,
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
    return load_or_warn(model, checkpoint, f"PaSST {arch}", source)
