"""ONNX export of a student with its front-end, for runtimes without PyTorch.

The ONNX graph maps (batch, samples) waveforms at the model's rate to logits: the mel
front-end (STFT, mel filterbank, log) is folded in, its STFT as ONNX's ``DFT`` operator over
the windowed frames (opset 17+), so a deployment needs no separate feature code. Opset 18,
dynamic batch size, fp32. Parity with PyTorch is checked on fixed waveforms right after export
(``onnxruntime``, an optional dependency: ``pip install asc_kd[onnx]``) and the max abs logit
difference is printed.

How this relates to the int8 artifact of ``python -m asc_kd.quantize``: that one is the
submission model (int8 weights and activations, TorchScript, eager-mode PyTorch kernels).
PyTorch's eager int8 modules do not export to ONNX; for an int8 ONNX model, quantize this fp32
graph with onnxruntime's static quantizer (``onnxruntime.quantization.quantize_static``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from asc_kd.core.io import atomic_write
from asc_kd.core.noise import quiet_onnx
from asc_kd.deployment.complexity import ONNX_COMPLEXITY_KEY, complexity_record
from asc_kd.deployment.quantize import WaveformClassifier
from asc_kd.tasks.restore import load_task

OPSET = 18


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = OPSET) -> tuple[Path, int, int]:
    """Export front-end + model of a checkpoint as one ONNX graph, written atomically, with the
    model's complexity (``complexity_record``) in its metadata.

    Returns the file, the input length in samples (one model window: the time axis is fixed)
    and the sample rate.
    """
    task = load_task(checkpoint)
    module = WaveformClassifier(task.frontend, task.model).eval()
    example = torch.zeros(2, task.segment_samples)
    batch = torch.export.Dim("batch", min=1)
    with quiet_onnx():
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["waveform"],
            output_names=["logits"],
            dynamic_shapes={"waveform": {0: batch}},
            verbose=False,
        )
    proto = program.model_proto
    record = complexity_record(task.model, task.input_shape())  # what `asc-kd complexity FILE.onnx` says
    proto.metadata_props.add(key=ONNX_COMPLEXITY_KEY, value=json.dumps(record))
    with atomic_write(out, "wb") as handle:
        handle.write(proto.SerializeToString())
    return Path(out), task.segment_samples, task.sample_rate


def onnx_parity(checkpoint: str | Path, onnx_path: str | Path, n: int = 4, seed: int = 0) -> dict[str, float]:
    """Max abs logit difference and top-1 agreement of ONNX Runtime vs PyTorch on fixed waveforms."""
    import onnxruntime

    task = load_task(checkpoint)
    generator = torch.Generator().manual_seed(seed)
    waveform = 0.1 * torch.randn(n, task.segment_samples, generator=generator)
    with torch.no_grad():
        reference = task(waveform).numpy()
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"waveform": waveform.numpy()})[0]
    return {
        "max_abs_diff": float(np.abs(logits - reference).max()),
        "top1_agreement": float((logits.argmax(1) == reference.argmax(1)).mean()),
        "clips": n,
    }
