"""The performance page (``docs/performance.md``): every benchmark of the report run one after
another, each ratio written beside the machine, versions and date it was measured with, so a
figure never outlives its conditions (``python -m asc_kd.bench report``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from asc_kd.benchmarks import (
    bench_attention,
    bench_data,
    bench_demo,
    bench_eval,
    bench_fit_epoch,
    bench_precision,
    bench_quant,
    bench_teacher,
    bench_train,
)
from asc_kd.data.options import GivenData


def machine_description() -> dict[str, str]:
    """What a figure was measured on: CPU model and the flags that change speed, threads, GPU,
    versions. Written beside every figure of ``performance_report``."""
    import importlib.metadata
    import platform

    from asc_kd.data.cache import usable_cpus
    from asc_kd.evaluation.inference import hardware_bf16

    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    features = [name for name in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if name in flags]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    versions = ", ".join(
        [
            f"torch {torch.__version__}",
            *(f"{n} {importlib.metadata.version(n)}" for n in ("lightning", "asc_kd")),
        ]
    )
    return {
        "CPU": f"{model}; {usable_cpus()} usable cores; {', '.join(features) or 'no AVX2'}",
        "fast bf16 on the CPU": "yes" if hardware_bf16(torch.device("cpu")) else "no (emulated)",
        "GPU": gpu,
        "versions": f"Python {platform.python_version()}, {versions}",
    }


def _x(value: float) -> str:
    return f"**{value:.2f}x**"


def _over_cpjku(result: dict[str, Any], key: str) -> str:
    """`` and {ratio} over CP-JKU's own code`` when the run had ``--cpjku``."""
    return f"; over CP-JKU's own code {_x(result[key])}" if key in result else ""


def _train_row(r: dict[str, Any]) -> str:
    cpjku = f"CP-JKU's own code {r['cpjku_clips_per_s']}, " if "cpjku_clips_per_s" in r else ""
    compiled = (
        f", compiled {r['asc_kd_compiled_clips_per_s']} (compiling {r['asc_kd_compiled_warmup_s']:.0f} s)"
        if "asc_kd_compiled_clips_per_s" in r
        else ""
    )
    return (
        f"{cpjku}in-package baseline {r['baseline_clips_per_s']}; asc_kd fp32 "
        f"{r['asc_kd_fp32_clips_per_s']}, channels-last {r['asc_kd_channels_last_clips_per_s']}, "
        f"bf16 channels-last {r['asc_kd_bf16_clips_per_s']}{compiled} clips/s; best ({r['best']}) "
        f"over the baseline {_x(r['ratio_best_over_baseline'])}{_over_cpjku(r, 'ratio_best_over_cpjku')}"
    )


def _teacher_row(r: dict[str, Any]) -> str:
    cpjku = (
        f"; CP-JKU's own code: train {r['cpjku_train_clips_per_s']}, eval {r['cpjku_eval_clips_per_s']}"
        if "cpjku_train_clips_per_s" in r
        else ""
    )
    return (
        f"bf16 {'on' if r['bf16_autocast'] else 'off'}; train (batch {r['batch_size']}) "
        f"{r['baseline_train_clips_per_s']} vs "
        f"{r['asc_kd_train_clips_per_s']} clips/s: {_x(r['train_ratio'])}"
        f"{_over_cpjku(r, 'train_ratio_over_cpjku')}; eval (batch {r['eval_batch_size']}) "
        f"{r['baseline_eval_clips_per_s']} vs "
        f"{r['asc_kd_eval_clips_per_s']}: {_x(r['eval_ratio'])}{_over_cpjku(r, 'eval_ratio_over_cpjku')}"
        f"{cpjku}; first train step {r['asc_kd_train_first_s']:.0f} s, first eval "
        f"{r['asc_kd_eval_first_s']:.0f} s{' (compiling)' if r['compiled'] else ''}; "
        f"largest logit difference "
        f"{r['eval_max_abs_logit_diff']:.1e}, top-1 agreement {100 * r['eval_top1_agreement']:.0f} %"
    )


def _attention_row(r: dict[str, Any]) -> str:
    phases = "; ".join(
        f"{phase} ({r[size]} clips, {r[f'{phase}_tokens']} tokens) fused {r[f'fused_{phase}_ms']:.1f} "
        f"vs matmuls {r[f'matmul_{phase}_ms']:.1f} ms: the matmuls {_x(r[f'{phase}_matmul_speedup'])}"
        for phase, size in (("train", "batch_size"), ("eval", "eval_batch_size"))
    )
    takes = "the fused kernel" if r["this_cpu"] == "fused" else "the matmuls"
    used = "" if r["fast_bf16"] else " (bf16 is not fast here: `--precision auto` keeps fp32)"
    return f"{phases}; a bf16 PaSST on this CPU takes {takes}{used}"


def _precision_row(r: dict[str, Any]) -> str:
    return (
        f"test accuracy fp32 {r['fp32_acc_mean']:.3f} ± {r['fp32_acc_std']:.3f} vs bf16 "
        f"{r['bf16_acc_mean']:.3f} ± {r['bf16_acc_std']:.3f} ({r['seeds']} seeds, synthetic; gap "
        f"{r['gap']:.3f}, {'within' if r['within_spread'] else 'OUTSIDE'} the larger spread); fits "
        f"{r['fp32_fit_s']:.0f} s vs {r['bf16_fit_s']:.0f} s"
    )


def _demo_row(r: dict[str, Any]) -> str:
    stages = ", ".join(
        f"{name.removesuffix('_s').replace('_', ' ')} {value:.0f} s"
        for name, value in r.items()
        if name.endswith("_s") and name != "wall_s"
    )
    return f"**{r['wall_s']:.0f} s** ({stages})"


Run = Callable[[float, "str | None"], dict[str, Any]]

#: The report's benchmarks: name -> (command, what is compared, how to run it with the minimum
#: seconds per variant and the CP-JKU checkout or None, how to show it).
REPORT: dict[str, tuple[str, str, Run, Callable[[dict[str, Any]], str]]] = {
    "data": (
        "python -m asc_kd.bench data",
        "training batches: wav decode + resample vs the memmap cache",
        lambda s, c: bench_data(GivenData({"num_workers": 0}), s),
        lambda r: (
            f"{r['wav_clips_per_s']:,} vs {r['cache_clips_per_s']:,} clips/s: {_x(r['ratio_cache_over_wav'])}"
        ),
    ),
    "train": (
        "python -m asc_kd.bench train --compile [--cpjku DIR]",
        "KD step of system1, batch 64, the recipe's training front-end: the in-package imitation of "
        "CP-JKU's components (and their own code with --cpjku) vs asc_kd's variants",
        lambda s, c: bench_train(64, s, 2, True, cpjku=c),
        _train_row,
    ),
    "eval": (
        "python -m asc_kd.bench eval",
        "eval forward of system1, batch 256: glibc's default malloc vs kept freed memory",
        lambda s, c: bench_eval("system1", 256, s, 2, 2),
        lambda r: (
            f"{r['malloc_default_clips_per_s']} vs {r['asc_kd_clips_per_s']} clips/s "
            f"({r['malloc_default_page_faults_per_clip']:.0f} vs "
            f"{r['asc_kd_page_faults_per_clip']:.0f} page faults per clip): {_x(r['ratio'])}"
        ),
    ),
    "teacher": (
        "python -m asc_kd.bench teacher --compile [--cpjku DIR]",
        "PaSST teacher, random weights, a training step at its recipe's batch and the eval "
        "forward at the logits export's: hear21passt's attention in fp32 (and CP-JKU's own "
        "code with --cpjku) vs asc_kd (its attention, bf16 autocast where the device does it "
        "fast, compiled: the task's `compile: true`); eval is `asc_kd.logits --precision auto`'s path",
        lambda s, c: bench_teacher("passt", threads=2, seconds=s, cpjku=c, compile_model=True),
        _teacher_row,
    ),
    "attention": (
        "python -m asc_kd.bench attention",
        "one PaSST block's attention in bf16 autocast, a 1-s clip's tokens: training (patchout, "
        "the recipe's batch, forward and backward) and eval (the logits export's batch): the fused "
        "kernel (scaled_dot_product_attention) vs hear21passt's matmul, softmax, matmul",
        lambda s, c: bench_attention(threads=2, seconds=s),
        _attention_row,
    ),
    "quant": (
        "python -m asc_kd.bench quant",
        "system1 trained 8 epochs on synthetic scenes: fp32 vs int8 on the CPU",
        lambda s, c: bench_quant(GivenData({"num_workers": 0}), None, 8, 2, s),
        lambda r: (
            f"{r['fp32_clips_per_s']} vs {r['int8_clips_per_s']} clips/s: "
            f"{_x(r['speedup_int8_over_fp32'])}; accuracy {r['fp32_acc']:.4f} vs "
            f"{r['int8_acc']:.4f} (synthetic); "
            f"int8 parameters {r['mem_bytes_int8']:,} bytes"
        ),
    ),
    "fit": (
        "python -m asc_kd.bench train --fit",
        "a KD epoch of system1 through asc_kd.fit (the recipe's precision and memory format) vs "
        "the bare step on one resident batch, and vs the same epoch's work in a plain loop (the "
        "fit's loader, roll, Mixup and step, no Lightning); both timed after every fit epoch "
        "as clips over their whole span, each epoch against the mean of its references before "
        "and after it, medians of the per-epoch ratios",
        lambda s, c: bench_fit_epoch(GivenData(), 64, 2),
        lambda r: (
            f"{r['epoch_clips_per_s']} vs {r['bare_step_clips_per_s']} clips/s: "
            f"{100 * r['epoch_over_bare']:.0f} % of the bare step; the plain loop "
            f"{r['loop_clips_per_s']} clips/s ({100 * r['loop_over_bare']:.0f} % of the bare step): "
            f"the fit is {100 * r['epoch_over_loop']:.0f} % of the loop"
        ),
    ),
    "precision": (
        "python -m asc_kd.bench precision",
        "make demo's system1 (KD from one demo teacher) fitted with the task's precision fp32 vs bf16",
        lambda s, c: bench_precision(3, 2),
        _precision_row,
    ),
    "demo": (
        "python -m asc_kd.bench demo",
        "`make demo` from an empty folder and an empty audio cache, by stage",
        lambda s, c: bench_demo(),
        _demo_row,
    ),
}


#: Opens each machine's section of the page; what follows it up to the next one is the section.
SECTION_MARK = "<!-- machine: {} -->"
_MARK_PREFIX = SECTION_MARK.split("{}")[0]
_TABLE_HEAD = ["| command | compared | result | took | measured |", "|---|---|---|---|---|"]


def machine_key(machine: dict[str, str]) -> str:
    """What tells two machines' figures apart on the page: the CPU line (model, cores, speed
    flags) and the GPU."""
    return f"{machine['CPU']}; GPU {machine['GPU']}"


def machine_sections(page: str) -> dict[str, list[str]]:
    """The machine sections of a page, by key, in page order (their lines after the mark, without
    trailing blank lines). A page without marks, or text before the first mark, holds no
    section; text after a mark belongs to that section, and a rerun on that machine rewrites it."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in page.splitlines():
        if line.startswith(_MARK_PREFIX) and line.endswith(" -->"):
            current = sections[line[len(_MARK_PREFIX) : -len(" -->")]] = []
        elif current is not None:
            current.append(line)
    for lines in sections.values():
        while lines and not lines[-1].strip():
            lines.pop()
    return sections


def _row_key(command: str) -> str:
    """A result row's first cell, which names the row in its section."""
    return f"| `{command}`"


def _rows_by_command(section: list[str]) -> dict[str, str]:
    """A section's result rows by their first cell (``_row_key``)."""
    return {line.split(" | ")[0]: line for line in section if line.startswith("| `")}


def _machine_table(machine: dict[str, str]) -> list[str]:
    return [f"| {key} | {value} |" for key, value in machine.items()]


def _section(machine: dict[str, str], rows: list[str]) -> list[str]:
    return [
        f"## {machine['CPU']}" + ("" if machine["GPU"] == "none" else f"; {machine['GPU']}"),
        "",
        "| machine | |",
        "|---|---|",
        *_machine_table(machine),
        "",
        *_TABLE_HEAD,
        *rows,
    ]


def performance_report(
    out: str | Path,
    only: list[str] | None = None,
    seconds: float = 5.0,
    progress: bool = True,
    cpjku: str | None = None,
) -> str:
    """Run the report's benchmarks one after another and write them into this machine's section
    of a markdown page.

    Hosts differ (a Xeon with AMX, an EPYC without it, a GPU node), and a ratio holds only on
    the machine it was measured on, so the page keeps one section per machine
    (``machine_key``): a run replaces, in its own machine's section, the rows of the benchmarks
    it ran, each with its date, and leaves the other rows and the other machines' sections as
    they were. Rows measured under another machine table (other versions, another bf16
    verdict) are dropped rather than shown under the new one. A page written before sections
    existed (no section marks) is replaced whole.
    ``seconds`` is the minimum measuring time of each variant; ``cpjku``, a checkout of CP-JKU's
    code, adds their own code to the train and teacher rows. Returns the page's text.
    """
    from datetime import datetime, timezone

    from tqdm.auto import tqdm

    from asc_kd.core.io import atomic_write

    names = only or list(REPORT)
    unknown = sorted(set(names) - set(REPORT))
    if unknown:
        raise ValueError(f"unknown benchmarks {unknown}; choose from {', '.join(REPORT)}")
    out = Path(out)
    sections = machine_sections(out.read_text()) if out.is_file() else {}
    machine = machine_description()
    key = machine_key(machine)
    previous = sections.get(key, [])
    # rows measured under other versions (or another bf16 verdict) are not kept under this table
    same_table = all(line in previous for line in _machine_table(machine))
    rows = _rows_by_command(previous) if same_table else {}
    for name in tqdm(names, desc="benchmarks", unit="benchmark", disable=not progress):
        command, compared, run, show = REPORT[name]
        start = time.perf_counter()
        result = run(seconds, cpjku)
        took = time.perf_counter() - start
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        rows[_row_key(command)] = (
            f"{_row_key(command)} | {compared} | {show(result)} | {took:.0f} s | {when} |"
        )
    order = [_row_key(command) for command, *_ in REPORT.values()]
    sections[key] = _section(machine, [rows[c] for c in order if c in rows])
    page = "\n".join(
        [
            "# Performance",
            "",
            "Written by `python -m asc_kd.bench report`, one section per machine it ran on; a run",
            "replaces the rows it measured in its own machine's section, with their date, and keeps",
            "the rest. A row is the code as it was on its date. Each ratio compares two variants",
            "measured one after the other in the same run on that machine (torch on 2 threads), so",
            "machine load hits both alike; absolute clips/s differ between machines. Accuracies are",
            "on synthetic scenes.",
            "",
            *(line for k, section in sections.items() for line in (SECTION_MARK.format(k), *section, "")),
        ]
    )
    with atomic_write(out) as handle:
        handle.write(page)
    return page
