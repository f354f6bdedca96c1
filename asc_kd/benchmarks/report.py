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

from asc_kd.benchmarks.figures import (
    bench_data,
    bench_eval,
    bench_fit_epoch,
    bench_quant,
    bench_teacher,
    bench_train,
)


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


#: The report's benchmarks: name -> (command, what is compared, how to run it, how to show it).
REPORT: dict[str, tuple[str, str, Callable[[float], dict[str, Any]], Callable[[dict[str, Any]], str]]] = {
    "data": (
        "python -m asc_kd.bench data",
        "training batches: wav decode + resample vs the memmap cache",
        lambda s: bench_data(["--data.num_workers", "0"], s),
        lambda r: (
            f"{r['wav_clips_per_s']:,} vs {r['cache_clips_per_s']:,} clips/s: {_x(r['ratio_cache_over_wav'])}"
        ),
    ),
    "train": (
        "python -m asc_kd.bench train",
        "KD step of system1, batch 64: CP-JKU's components vs asc_kd (eager; channels-last)",
        lambda s: bench_train(64, s, 2, False),
        lambda r: (
            f"{r['baseline_clips_per_s']} vs {r['asc_kd_clips_per_s']} clips/s; channels-last "
            f"{r['asc_kd_channels_last_clips_per_s']}; best ({r['best']}): "
            f"{_x(r['ratio_best_over_baseline'])}"
        ),
    ),
    "eval": (
        "python -m asc_kd.bench eval",
        "eval forward of system1, batch 256: glibc's default malloc vs kept freed memory",
        lambda s: bench_eval("system1", 256, s, 2, 2),
        lambda r: (
            f"{r['malloc_default_clips_per_s']} vs {r['asc_kd_clips_per_s']} clips/s "
            f"({r['malloc_default_page_faults_per_clip']:.0f} vs "
            f"{r['asc_kd_page_faults_per_clip']:.0f} page faults per clip): {_x(r['ratio'])}"
        ),
    ),
    "teacher": (
        "python -m asc_kd.bench teacher",
        "PaSST teacher, batch 8, random weights: hear21passt's attention in fp32 vs asc_kd "
        "(fused attention; bf16 autocast where the device does it fast)",
        lambda s: bench_teacher("passt", 8, 2, s),
        lambda r: (
            f"bf16 {'on' if r['bf16_autocast'] else 'off'}; train {r['baseline_train_clips_per_s']} vs "
            f"{r['asc_kd_train_clips_per_s']} clips/s: {_x(r['train_ratio'])}; eval "
            f"{r['baseline_eval_clips_per_s']} vs {r['asc_kd_eval_clips_per_s']}: {_x(r['eval_ratio'])}; "
            f"largest logit difference {r['eval_max_abs_logit_diff']:.1e}, top-1 agreement "
            f"{100 * r['eval_top1_agreement']:.0f} %"
        ),
    ),
    "quant": (
        "python -m asc_kd.bench quant",
        "system1 trained 8 epochs on synthetic scenes: fp32 vs int8 on the CPU",
        lambda s: bench_quant(["--data.num_workers", "0"], None, 8, 2, s),
        lambda r: (
            f"{r['fp32_clips_per_s']} vs {r['int8_clips_per_s']} clips/s: "
            f"{_x(r['speedup_int8_over_fp32'])}; accuracy {r['fp32_acc']:.4f} vs "
            f"{r['int8_acc']:.4f} (synthetic); "
            f"int8 parameters {r['mem_bytes_int8']:,} bytes"
        ),
    ),
    "fit": (
        "python -m asc_kd.bench train --fit",
        "a KD epoch of system1 through asc_kd.fit vs the bare step on one resident batch",
        lambda s: bench_fit_epoch((), 64, 2),
        lambda r: (
            f"{r['epoch_clips_per_s']} vs {r['bare_step_clips_per_s']} clips/s: "
            f"{100 * r['epoch_over_bare']:.0f} % of the bare step"
        ),
    ),
}


def performance_report(
    out: str | Path, only: list[str] | None = None, seconds: float = 5.0, progress: bool = True
) -> str:
    """Run the report's benchmarks one after another and write them as a markdown page.

    The page names the machine, the versions and the date beside every same-run ratio, so a
    figure never outlives the conditions it was measured in: rerunning the command replaces it.
    ``seconds`` is the minimum measuring time of each variant. Returns the page's text.
    """
    from datetime import datetime, timezone

    from tqdm.auto import tqdm

    from asc_kd.core.io import atomic_write

    names = only or list(REPORT)
    unknown = sorted(set(names) - set(REPORT))
    if unknown:
        raise ValueError(f"unknown benchmarks {unknown}; choose from {', '.join(REPORT)}")
    rows = []
    for name in tqdm(names, desc="benchmarks", unit="benchmark", disable=not progress):
        command, compared, run, show = REPORT[name]
        start = time.perf_counter()
        result = run(seconds)
        rows.append(f"| `{command}` | {compared} | {show(result)} | {time.perf_counter() - start:.0f} s |")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = "\n".join(f"| {key} | {value} |" for key, value in machine_description().items())
    page = "\n".join(
        [
            "# Performance",
            "",
            f"Written by `python -m asc_kd.bench report` on {when}; rerunning it replaces this page.",
            "Each ratio compares two variants measured one after the other in the same run on the",
            "machine below (torch on 2 threads), so machine load hits both alike; absolute clips/s",
            "differ between machines. Accuracies are on synthetic scenes.",
            "",
            "| machine | |",
            "|---|---|",
            machine,
            "",
            "| command | compared | result | took |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )
    with atomic_write(Path(out)) as handle:
        handle.write(page)
    return page
