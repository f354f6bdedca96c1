"""The teacher's benchmarks: a training step and the eval forward of the logits export
(``bench teacher``), and PaSST's two attention paths in bf16 on the CPU (``bench attention``)."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from asc_kd.benchmarks.timing import interleaved
from asc_kd.core.errors import ConfigError

log = logging.getLogger(__name__)


def _teacher_recipe(model: str) -> Path:
    """The file of teacher recipe ``model``: a shipped teacher's name, a recipe name or a path."""
    from asc_kd.recipes import resolve_recipe

    return resolve_recipe(model if model.endswith((".yaml", ".yml")) or "/" in model else f"teachers/{model}")


def recipe_batch_size(model: str) -> int:
    """The clips per training step of teacher recipe ``model`` (its ``data.batch_size``; PaSST's
    is CP-JKU's 80): the batch a teacher's fit steps on, so the one its train step is timed at."""
    from asc_kd.recipes import recipe_value

    path = _teacher_recipe(model)
    found = recipe_value([path], "data.batch_size")
    if found is None:
        raise ConfigError(f"teacher recipe {path} sets no data.batch_size; give --batch-size")
    size = found[0]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"teacher recipe {path}: data.batch_size {size!r} is not a whole number of clips")
    return size


def _batch_sizes(model: str, batch_size: int | None, eval_batch_size: int | None) -> tuple[int, int]:
    """The training batch (default: teacher recipe ``model``'s) and the eval batch (default: the
    logits export's) a teacher benchmark times."""
    from asc_kd.training.logits import LOGITS_DATA_DEFAULTS

    batch_size = recipe_batch_size(model) if batch_size is None else batch_size
    eval_batch_size = LOGITS_DATA_DEFAULTS["eval_batch_size"] if eval_batch_size is None else eval_batch_size
    return batch_size, eval_batch_size


def _teacher_task(model: str, manual_attention: bool) -> Any:
    """The teacher task shipped recipe ``teachers/<model>`` builds, with random weights;
    ``manual_attention`` gives the attention code of the recipes asc_kd replaces (hear21passt's
    matmul-softmax-matmul; timm's unfused path)."""
    import warnings

    import timm.layers

    from asc_kd.recipes import read_recipe
    from asc_kd.tasks import ClassificationTask

    arguments = read_recipe(_teacher_recipe(model))
    kwargs = {**(arguments.get("model_kwargs") or {}), "checkpoint": None}
    if arguments["model"] == "passt":
        kwargs["attention"] = "manual" if manual_attention else "fused"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*has random weights.*")
        timm.layers.set_fused_attn(not manual_attention)  # read by timm blocks when built
        try:
            return ClassificationTask(**{**arguments, "model_kwargs": kwargs})
        finally:
            timm.layers.set_fused_attn(True)


def bench_teacher(
    model: str = "passt",
    batch_size: int | None = None,
    eval_batch_size: int | None = None,
    threads: int = 2,
    seconds: float = 10.0,
    device: str = "cpu",
    cpjku: str | None = None,
    compile_model: bool = False,
) -> dict[str, Any]:
    """A teacher's training step and eval forward, clips/s: the baseline vs asc_kd's path.

    The teacher is built as the shipped recipe ``teachers/<model>`` (or ``model``, a recipe name
    or path) builds it: random weights, the same front-end with its masks, patchout in training.
    ``baseline``: the attention code of the public recipes (hear21passt's own; timm's unfused
    path), fp32, eval under ``no_grad``. ``asc_kd``: its attention
    (``FusedAttention``: ``scaled_dot_product_attention``, or hear21passt's matmuls in bf16 on a
    CPU without AMX tiles), eval under ``inference_mode``, bf16 autocast where the
    device does bf16 fast (``fast_bf16``), and with ``compile_model`` the network compiled by
    ``torch.compile`` as the task's ``compile`` does it (the first step, which compiles, is timed
    apart). ``cpjku`` (PaSST only, with ``cpjku``, a checkout of
    their code): CP-JKU's own ``AugmentMelSTFT`` and PaSST as their ``run_passt_training.py``
    builds them, fp32, eval under ``no_grad``. A training step is front-end + forward +
    cross-entropy + backward + Adam step. Also reported: the largest absolute logit difference
    and top-1 agreement of asc_kd's eval vs the baseline's on the eval batch (same weights).

    Each phase is timed at the batch it runs at: a training step at the recipe's batch size
    (``batch_size``, default ``recipe_batch_size``), where the per-step costs (the optimizer's
    update, bf16 copies of the weights) are shared as in a fit; the eval forward at the logits
    export's (``eval_batch_size``, default ``LOGITS_DATA_DEFAULTS``'s).
    """
    from asc_kd.evaluation.inference import autocast, fast_bf16

    batch_size, eval_batch_size = _batch_sizes(model, batch_size, eval_batch_size)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    target_device = torch.device(device)
    baseline = _teacher_task(model, manual_attention=True).to(target_device)
    ours = _teacher_task(model, manual_attention=False).to(target_device)
    ours.load_state_dict(baseline.state_dict())
    if compile_model:
        ours.model.compile()
    waveform = 0.1 * torch.randn(batch_size, ours.segment_samples, device=target_device)
    target = torch.randint(0, len(ours.classes), (batch_size,), device=target_device)
    clips = 0.1 * torch.randn(eval_batch_size, ours.segment_samples, device=target_device)
    bf16 = fast_bf16(target_device)
    modules: dict[str, Any] = {"baseline": baseline, "asc_kd": ours}
    if cpjku is not None:
        from asc_kd.benchmarks.cpjku import load_cpjku, passt_teacher

        if ours.hparams.model != "passt" or target_device.type != "cpu":
            raise ConfigError("--cpjku times CP-JKU's PaSST on the CPU: use --model passt --device cpu")
        mel, network = passt_teacher(load_cpjku(cpjku))
        modules["cpjku"] = torch.nn.Sequential(mel, _Unsqueeze(), _FirstOutput(network))
    optimizers = {
        name: torch.optim.Adam(module.parameters(), lr=1e-5, fused=name != "cpjku")
        for name, module in modules.items()
    }

    def train_step(name: str) -> None:
        module = modules[name].train()
        with autocast(target_device, "auto" if name == "asc_kd" else "fp32"):
            loss = F.cross_entropy(module(waveform).float(), target)
        optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        optimizers[name].step()

    def eval_forward(name: str) -> torch.Tensor:
        module = modules[name].eval()
        if name != "asc_kd":
            with torch.no_grad():
                return module(clips)
        with torch.inference_mode(), autocast(target_device, "auto"):
            return module(clips).float()

    # parity before any training step changes the weights apart; the first call of each phase
    # (compilation, with compile_model) is timed apart from the measurement
    first: dict[str, float] = {}
    reference, start = eval_forward("baseline"), time.perf_counter()
    fast = eval_forward("asc_kd")
    first["asc_kd_eval_first_s"] = time.perf_counter() - start
    with contextlib.redirect_stdout(io.StringIO()):  # CP-JKU's PaSST prints on its first calls
        for name in modules:
            start = time.perf_counter()
            train_step(name)
            first[f"{name}_train_first_s"] = time.perf_counter() - start
            eval_forward(name)
    results: dict[str, Any] = {
        "model": model,
        "compiled": compile_model,
        "batch_size": batch_size,
        "eval_batch_size": eval_batch_size,
        "threads": threads,
        "device": device,
        "bf16_autocast": bf16,
        "eval_max_abs_logit_diff": float((fast - reference).abs().max()),
        "eval_top1_agreement": float((fast.argmax(1) == reference.argmax(1)).float().mean()),
        **{key: round(value, 1) for key, value in first.items()},
    }
    phases = (("train", train_step, batch_size), ("eval", eval_forward, eval_batch_size))
    for phase, run, size in phases:  # warmed up above
        medians = interleaved(
            {name: partial(run, name) for name in modules}, seconds, 3, target_device.type == "cuda"
        )
        for name, median in medians.items():
            results[f"{name}_{phase}_clips_per_s"] = round(size / median, 2)
        for other in ("baseline", "cpjku"):
            if other in modules:
                suffix = "" if other == "baseline" else f"_over_{other}"
                results[f"{phase}_ratio{suffix}"] = round(
                    results[f"asc_kd_{phase}_clips_per_s"] / results[f"{other}_{phase}_clips_per_s"], 2
                )
    results["train_clips_per_s"] = results["asc_kd_train_clips_per_s"]
    results["eval_clips_per_s"] = results["asc_kd_eval_clips_per_s"]
    return results


class _Unsqueeze(torch.nn.Module):
    """(batch, mels, frames) -> (batch, 1, mels, frames), as CP-JKU's ``mel_forward``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1)


class _FirstOutput(torch.nn.Module):
    """CP-JKU's PaSST returns (logits, embedding); the benchmark needs the logits."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)[0]


def bench_attention(
    batch_size: int | None = None, eval_batch_size: int | None = None, threads: int = 2, seconds: float = 5.0
) -> dict[str, Any]:
    """PaSST's attention in bf16 on the CPU: the fused kernel (``scaled_dot_product_attention``)
    against hear21passt's matmul, softmax, matmul, milliseconds per call of one block's attention.

    The block and its token counts are those of the shipped PaSST recipe (random weights): a
    1-s clip's tokens in training (after patchout) at the recipe's batch, forward and backward,
    and in eval at the logits export's batch, forward under ``inference_mode``. Both paths are
    ``FusedAttention`` with ``fused_cpu_bf16`` set one way or the other; ``this_cpu`` says
    which one a bf16 teacher takes on this CPU (the fused kernel only where it has AMX tiles),
    and ``fast_bf16`` whether ``--precision auto`` runs the teacher in bf16 here at all.
    ``*_matmul_speedup`` is the fused path's time over the matmuls'.
    """
    from asc_kd.evaluation.inference import autocast, fast_bf16

    batch_size, eval_batch_size = _batch_sizes("passt", batch_size, eval_batch_size)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    task = _teacher_task("passt", manual_attention=False)
    attention = task.model.blocks[0].attn
    tokens: dict[str, int] = {}
    hook = attention.register_forward_hook(
        lambda module, inputs, output: tokens.setdefault(
            "train" if module.training else "eval", inputs[0].shape[1]
        )
    )
    clip = 0.1 * torch.randn(1, task.segment_samples)
    with torch.no_grad():
        task.train()(clip)
        task.eval()(clip)
    hook.remove()
    paths = {}
    for name, fused in (("fused", True), ("matmul", False)):
        paths[name] = copy.deepcopy(attention)
        paths[name].fused_cpu_bf16 = fused
    width = attention.qkv.in_features
    x_train = torch.randn(batch_size, tokens["train"], width, requires_grad=True)
    x_eval = torch.randn(eval_batch_size, tokens["eval"], width)

    def train(name: str) -> None:
        module = paths[name].train()
        with autocast(cpu, "bf16"):
            out = module(x_train)
        out.float().square().mean().backward()

    def evaluate(name: str) -> None:
        with torch.inference_mode(), autocast(cpu, "bf16"):
            paths[name].eval()(x_eval)

    results: dict[str, Any] = {
        "batch_size": batch_size,
        "eval_batch_size": eval_batch_size,
        "train_tokens": tokens["train"],
        "eval_tokens": tokens["eval"],
        "threads": threads,
        "this_cpu": "fused" if attention.fused_cpu_bf16 else "matmul",
        "fast_bf16": fast_bf16(cpu),
    }
    for phase, run in (("train", train), ("eval", evaluate)):
        for name in paths:
            run(name)  # warm-up
        medians = interleaved({name: partial(run, name) for name in paths}, seconds, 3)
        for name, median in medians.items():
            results[f"{name}_{phase}_ms"] = round(1000 * median, 2)
        results[f"{phase}_matmul_speedup"] = round(medians["fused"] / medians["matmul"], 2)
    return results
