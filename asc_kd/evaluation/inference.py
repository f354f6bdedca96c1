"""Running a trained model over data: windows of long clips, loaders, several processes.

One path for every caller: validation and test inside a task, the teacher logits export, the
int8 evaluation, and predict on any audio (``asc_kd.deployment.predict``). A model sees fixed-length
windows (its ``segment_seconds``, 1 s for DCASE); longer clips are cut into windows and each
window is scored, so a 10-s clip gives ten logit rows and its file-level logits are their mean.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import Literal

import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from asc_kd.data.audio import split_windows

log = logging.getLogger(__name__)
LogitsFn = Callable[[torch.Tensor], torch.Tensor]
Precision = Literal["auto", "fp32", "bf16"]
#: Set to 1 or 0 to take ``fast_bf16``'s answer instead of the hardware's: the tests run both
#: branches on any machine, and a user can make ``auto`` agree across hosts of different CPUs.
FAST_BF16_ENV = "ASC_KD_FAST_BF16"


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast speeds ``device`` up: GPUs with bf16, CPUs with AVX512-BF16 or AMX.

    Elsewhere (AVX2 CPUs) bf16 is emulated: correct, but slower than fp32. ``$ASC_KD_FAST_BF16``
    (``1`` or ``0``) overrides the hardware's answer for every device.
    """
    forced = os.environ.get(FAST_BF16_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if forced:
        raise ValueError(f"${FAST_BF16_ENV} must be 0 or 1, got {forced!r}")
    return hardware_bf16(device)


def hardware_bf16(device: torch.device) -> bool:
    """``fast_bf16``'s answer from the hardware alone, whatever ``$ASC_KD_FAST_BF16`` says."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (
        torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    )


def uses_bf16(device: torch.device, precision: Precision = "auto") -> bool:
    """Whether ``precision`` means bf16 on ``device``: ``bf16``, or ``auto`` where it is fast."""
    return precision == "bf16" or (precision == "auto" and fast_bf16(device))


def autocast(device: torch.device, precision: Precision = "auto") -> contextlib.AbstractContextManager:
    """bf16 autocast where ``uses_bf16``; else nothing."""
    if uses_bf16(device, precision):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` is CUDA when available, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size under ``torch.distributed`` (0, 1 otherwise)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def window_logits(
    model: LogitsFn, waveform: torch.Tensor, window: int, chunk: int | None = None
) -> torch.Tensor:
    """(batch, samples) waveforms -> (batch, windows, classes) logits of consecutive windows.

    Clips of exactly one window go through the model as they are. Longer clips are cut into
    non-overlapping windows (the last aligned to the end, see ``window_starts``) and run
    ``chunk`` windows at a time (default: as many as the batch has clips, so memory stays
    that of a batch of single windows).
    """
    if waveform.shape[-1] == window:
        return model(waveform).unsqueeze(1)
    windows = split_windows(waveform, window)  # (batch, n, window)
    batch, n = windows.shape[:2]
    flat = windows.reshape(batch * n, window)
    step = chunk or batch
    logits = torch.cat([model(flat[i : i + step]) for i in range(0, len(flat), step)])
    return logits.view(batch, n, -1)


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module | LogitsFn,
    loader: DataLoader,
    device: torch.device,
    window: int,
    desc: str = "",
    shard: bool = True,
    precision: Precision = "fp32",
) -> torch.Tensor:
    """Logits of ``model`` for every example of the loader's dataset, in dataset order.

    Returns (examples, windows, classes) in fp32: one window per example for clips of one
    window. ``precision`` ``bf16`` runs the model under bf16 autocast, ``auto`` only where that
    is fast (``fast_bf16``).
    Under ``torch.distributed`` (e.g. ``torchrun``) each rank scores every world-size-th
    example and the shards are summed into place, so every rank returns the full, ordered
    tensor with each example computed exactly once; ``shard=False`` scores everything here.
    """
    rank, world = rank_and_world() if shard else (0, 1)
    n = len(loader.dataset)
    if world > 1:
        shard = Subset(loader.dataset, list(range(rank, n, world)))
        loader = DataLoader(
            shard, batch_size=loader.batch_size, num_workers=loader.num_workers, collate_fn=loader.collate_fn
        )
    if isinstance(model, torch.nn.Module):
        model.eval().to(device)
    out: torch.Tensor | None = None
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False, disable=rank > 0 or not desc):
        with autocast(device, precision):
            logits = window_logits(model, batch["waveform"].to(device), window).float().cpu()
        if out is None:
            out = torch.zeros(n, *logits.shape[1:])
        out[batch["index"]] = logits
    if out is None:
        raise ValueError(f"no examples to score: the {desc or 'split'} is empty")
    if world > 1:
        reduced = out.to(device)
        torch.distributed.all_reduce(reduced)
        out = reduced.cpu()
    return out
