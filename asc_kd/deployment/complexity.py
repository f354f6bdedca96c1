"""Model complexity counted the way the DCASE organisers count it (NeSsi).

NeSsi's PyTorch path runs ``torchinfo.summary`` and reports ``total_mult_adds`` as MACs and
``total_params`` as the parameter count; MEM is parameters times bytes per parameter. NeSsi
multiplies MACs by the batch size (NeSsi#3), so we always count at batch 1, on the fp32
graph (counters do not understand quantized modules).

An exported model (the int8 artifact, an ONNX file) carries its fp32 model's numbers
(``complexity_record``, written with it), which ``file_complexity`` reads back: the file and its
checkpoint give the same counts.

``python -m asc_kd.complexity system1`` prints the per-layer table, ``--json`` the numbers.
"""

from __future__ import annotations

import copy
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from asc_kd.core.errors import ConfigError, UserError
from asc_kd.data.spec import DatasetSpec
from asc_kd.models import get_model
from asc_kd.recipes import read_recipe
from asc_kd.tasks import ClassificationTask
from asc_kd.tasks.restore import load_task

#: DCASE 2023/24 Task 1 limits: 128 KB of parameter memory and 30 M MACs per inference.
MAX_PARAM_BYTES = 128 * 1024
MAX_MACS = 30_000_000

BYTES_PER_PARAM = {"int8": 1, "fp16": 2, "bf16": 2, "fp32": 4}
#: The format parameters are stored in, which MEM counts (not the arithmetic precision of a run).
ParameterPrecision = Literal["int8", "fp16", "bf16", "fp32"]


@dataclass
class LayerRow:
    """One leaf layer of the table."""

    layer: str
    input_shape: list[int]
    output_shape: list[int]
    params: int
    macs: int


@dataclass
class Complexity:
    """NeSsi numbers for one model and input shape."""

    params: int
    macs: int
    mem_bytes: int
    precision: str
    input_shape: list[int]
    layers: list[LayerRow] = field(default_factory=list)
    #: Parameters once every BatchNorm is folded into the conv before it (as int8 conversion
    #: does): NeSsi counted this after quantization for the report's systems 2-4 (79.9K, 63.5K).
    params_fused: int = 0

    @property
    def within_limits(self) -> bool:
        return self.mem_bytes <= MAX_PARAM_BYTES and self.macs <= MAX_MACS

    def summary(self) -> dict[str, int]:
        """The numbers DCASE asks for, plus the BN-fused count, as plain ints (JSON, loggers)."""
        return {
            "params": self.params,
            "params_fused": self.params_fused,
            "macs": self.macs,
            "mem_bytes": self.mem_bytes,
        }

    def table(self) -> str:
        """Per-layer markdown table followed by the totals and the limit check (the totals alone
        for numbers read from a file: ``recorded_complexity``)."""
        if not self.layers:  # counted when the file was written: the totals alone
            lines = [f"params {self.params:,}, MACs {self.macs:,} on input {tuple(self.input_shape)}"]
            return "\n".join([*lines, "", *self._verdict()])
        lines = [
            "| layer | input shape | output shape | params | MACs |",
            "|---|---|---|---:|---:|",
        ]
        for row in self.layers:
            lines.append(
                f"| {row.layer} | {tuple(row.input_shape)} | {tuple(row.output_shape)} "
                f"| {row.params:,} | {row.macs:,} |"
            )
        lines.append(f"| **total** | {tuple(self.input_shape)} | | {self.params:,} | {self.macs:,} |")
        return "\n".join([*lines, "", *self._verdict()])

    def _verdict(self) -> list[str]:
        verdict = "within" if self.within_limits else "EXCEEDS"
        return [
            f"MEM ({self.precision}): {self.mem_bytes:,} bytes of {MAX_PARAM_BYTES:,}; "
            f"MACs: {self.macs:,} of {MAX_MACS:,} -> {verdict} the DCASE limits",
            f"parameters with BatchNorm folded into the convs: {self.params_fused:,}",
        ]


class ComplexityError(UserError, ValueError):
    """A model exceeds the DCASE complexity limits."""


def count_complexity(
    model: nn.Module,
    input_shape: tuple[int, ...] | list[int] = (1, 1, 256, 44),
    precision: ParameterPrecision = "int8",
) -> Complexity:
    """Count params and MACs of ``model`` with torchinfo at batch size 1, as NeSsi does.

    Args:
        model: an fp32 model taking a spectrogram batch.
        input_shape: full input shape; the batch dimension is forced to 1.
        precision: parameter precision used for MEM.
    """
    import torchinfo

    _check_precision(precision)
    shape = [1, *list(input_shape)[1:]]
    # A CPU copy: torchinfo moves the model it is given, which must not happen mid-training.
    stats = torchinfo.summary(
        copy.deepcopy(model).cpu(),
        input_size=shape,
        verbose=0,
        col_names=("input_size", "output_size", "num_params", "mult_adds"),
        device="cpu",
    )
    rows = [
        LayerRow(
            layer=f"{info.get_layer_name(False, True)}",
            input_shape=list(info.input_size) if info.input_size else [],
            output_shape=list(info.output_size) if info.output_size else [],
            params=int(info.num_params),
            macs=int(info.macs),
        )
        for info in stats.summary_list
        if info.is_leaf_layer
    ]
    params = int(stats.total_params)
    return Complexity(
        params=params,
        macs=int(stats.total_mult_adds),
        mem_bytes=params * BYTES_PER_PARAM[precision],
        precision=precision,
        input_shape=shape,
        layers=rows,
        params_fused=params - folded_batchnorm_parameters(model, shape),
    )


def _check_precision(precision: str) -> None:
    if precision not in BYTES_PER_PARAM:
        raise ConfigError(f"precision must be one of {sorted(BYTES_PER_PARAM)}, got {precision!r}")


def complexity_record(model: nn.Module, input_shape: tuple[int, ...] | list[int]) -> dict[str, Any]:
    """The counts an exported model carries (the int8 artifact's ``meta.json``, the ONNX file's
    metadata): counters read neither quantized modules nor exported graphs, so the fp32 model is
    counted as it is written, and ``asc-kd complexity`` on the file gives its checkpoint's numbers."""
    counted = count_complexity(model, input_shape)
    return {
        "params": counted.params,
        "params_fused": counted.params_fused,
        "macs": counted.macs,
        "input_shape": counted.input_shape,
        "receptive_field": list(receptive_field(model, input_shape)),
    }


def recorded_complexity(
    record: dict[str, Any], source: str, precision: ParameterPrecision = "int8"
) -> tuple[Complexity, tuple[int, int] | None]:
    """The ``Complexity`` and receptive field that a ``complexity_record`` of ``source`` holds (no
    per-layer rows; the receptive field is None when the file predates it)."""
    _check_precision(precision)
    missing = [key for key in ("params", "macs") if not isinstance(record.get(key), int)]
    if missing:
        raise ConfigError(
            f"{source} records no complexity ({', '.join(missing)} missing): count the checkpoint "
            "it was made from (asc-kd complexity CHECKPOINT.ckpt)"
        )
    params = record["params"]
    rf = record.get("receptive_field")
    complexity = Complexity(
        params=params,
        macs=record["macs"],
        mem_bytes=params * BYTES_PER_PARAM[precision],
        precision=precision,
        input_shape=list(record.get("input_shape") or []),
        params_fused=int(record.get("params_fused", params)),
    )
    return complexity, (int(rf[0]), int(rf[1])) if rf else None


def file_complexity(
    path: str | Path, precision: ParameterPrecision = "int8"
) -> tuple[Complexity, tuple[int, int] | None]:
    """What an exported model (an int8 artifact ``*.int8.pt`` or an ONNX file ``*.onnx`` that
    asc_kd wrote) records of its complexity: the numbers its checkpoint counts.

    The artifact's ``meta.json`` is read from the TorchScript archive without loading the int8
    model; an ONNX file's from its metadata (``onnx``, an optional dependency).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    if path.suffix == ".onnx":
        return recorded_complexity(_onnx_record(path), str(path), precision)
    return recorded_complexity(_artifact_record(path), str(path), precision)


def _artifact_record(path: Path) -> dict[str, Any]:
    """The ``meta.json`` a TorchScript archive keeps among its extra files."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/extra/meta.json")]
            if not names:
                raise ConfigError(
                    f"{path} is not an asc_kd int8 artifact (no meta.json); count the checkpoint it was "
                    "made from (.ckpt)"
                )
            return json.loads(archive.read(names[0]))
    except zipfile.BadZipFile:
        raise ConfigError(
            f"{path} is not an asc_kd int8 artifact (not a TorchScript archive); give a checkpoint "
            "(.ckpt), a recipe (.yaml), an int8 artifact (.int8.pt) or an ONNX file (.onnx)"
        ) from None


#: The ONNX metadata key under which ``asc-kd export`` keeps the model's ``complexity_record``.
ONNX_COMPLEXITY_KEY = "asc_kd_complexity"


def _onnx_record(path: Path) -> dict[str, Any]:
    try:
        import onnx
    except ImportError:
        raise ConfigError(
            f"{path}: reading an ONNX file needs the onnx package (pip install asc_kd[onnx]); or count "
            "the checkpoint it was exported from (.ckpt)"
        ) from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError and others for a file that is not ONNX
        raise ConfigError(f"{path} is not an ONNX model ({type(err).__name__})") from None
    props = {prop.key: prop.value for prop in model.metadata_props}
    if ONNX_COMPLEXITY_KEY not in props:
        raise ConfigError(
            f"{path} records no complexity (asc-kd export writes it): count the checkpoint it was "
            "exported from (.ckpt)"
        )
    return json.loads(props[ONNX_COMPLEXITY_KEY])


def _run_hooked(
    model: nn.Module, input_shape: tuple[int, ...] | list[int], kinds: tuple[type, ...], hook: Any
) -> None:
    """One batch-1 forward pass of a CPU copy of ``model`` with ``hook`` on every module of
    ``kinds``: the layers it actually runs, in execution order (the model itself is untouched)."""
    copy_ = copy.deepcopy(model).cpu().eval()
    handles = [m.register_forward_hook(hook) for m in copy_.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            copy_(torch.zeros(1, *list(input_shape)[1:]))
    finally:
        for handle in handles:
            handle.remove()


def folded_batchnorm_parameters(model: nn.Module, input_shape: tuple[int, ...] | list[int]) -> int:
    """Parameters that disappear when each BatchNorm is folded into the conv that feeds it.

    A BN after a conv (found in execution order, channels matching) becomes the conv's weight
    scale and bias: its 2 x C affine parameters go, and a bias-free conv gains C biases.
    """
    order: list[nn.Module] = []
    kinds = (nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d)
    _run_hooked(model, input_shape, kinds, lambda module, args, out: order.append(module))
    removed = 0
    for previous, module in zip(order, order[1:], strict=False):
        conv = isinstance(previous, nn.Conv1d | nn.Conv2d)
        if conv and isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d) and module.affine:
            if previous.out_channels == module.num_features:
                removed += 2 * module.num_features - (0 if previous.bias is not None else module.num_features)
    return removed


def receptive_field(
    model: nn.Module, input_shape: tuple[int, ...] | list[int] = (1, 1, 256, 44)
) -> tuple[int, int]:
    """Receptive field (frequency bins, frames) of a CNN, from the layers it actually runs.

    Convolutions and poolings are recorded in execution order by forward hooks and chained:
    ``rf += (kernel - 1) * dilation * jump; jump *= stride`` per axis. This is exact for
    chains whose side branches are 1x1 (CP-ResNet's shortcuts) and an upper bound when
    parallel branches have larger kernels. It is what CP-ResNet's rho controls.
    """
    layers: list[tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = []

    def pair(value: int | tuple[int, ...]) -> tuple[int, int]:
        return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        dilation = getattr(module, "dilation", 1)
        layers.append((pair(module.kernel_size), pair(module.stride or module.kernel_size), pair(dilation)))

    _run_hooked(model, input_shape, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d), hook)
    rf, jump = [1, 1], [1, 1]
    for kernel, stride, dilation in layers:
        for axis in (0, 1):
            rf[axis] += (kernel[axis] - 1) * dilation[axis] * jump[axis]
            jump[axis] *= stride[axis]
    return rf[0], rf[1]


def check_limits(complexity: Complexity, name: str = "model", fix: str = "") -> None:
    """Raise ``ComplexityError`` naming which limit ``complexity`` breaks (and ``fix``, the way on)."""
    problems = []
    if complexity.mem_bytes > MAX_PARAM_BYTES:
        problems.append(
            f"parameter memory {complexity.mem_bytes:,} bytes ({complexity.precision}) > {MAX_PARAM_BYTES:,}"
        )
    if complexity.macs > MAX_MACS:
        problems.append(f"MACs {complexity.macs:,} > {MAX_MACS:,}")
    if problems:
        raise ComplexityError(f"{name} exceeds the DCASE limits: " + "; ".join(problems) + fix)


def model_for_counting(name: str, classes: int) -> tuple[nn.Module, tuple[int, ...]]:
    """The model ``name`` says (a model name, a recipe or a checkpoint) and its input for one window.

    A recipe is built without its pretrained weights: counting needs the graph, not the values.
    """
    if name.endswith(".ckpt"):
        task = load_task(name)
        return task.model, task.input_shape()
    if name.endswith((".yaml", ".yml")):
        arguments = read_recipe(name)
        if "checkpoint" in (arguments.get("model_kwargs") or {}):  # counting needs no weights
            arguments["model_kwargs"] = {**arguments["model_kwargs"], "checkpoint": None}
        spec = DatasetSpec(name="counted", classes=tuple(f"class{i}" for i in range(classes)))
        task = ClassificationTask(**arguments, spec=spec)
        return task.model, task.input_shape()
    if Path(name).is_file():
        raise ConfigError(
            f"{name}: not a file complexity counts; give a checkpoint (.ckpt), a recipe (.yaml), an int8 "
            "artifact (.int8.pt) or an ONNX file (.onnx)"
        )

    model = get_model(name, n_classes=classes)
    return model, getattr(model, "input_shape", (1, 1, 256, 44))


__all__ = [
    "Complexity",
    "ComplexityError",
    "LayerRow",
    "MAX_MACS",
    "MAX_PARAM_BYTES",
    "check_limits",
    "complexity_record",
    "file_complexity",
    "model_for_counting",
    "recorded_complexity",
    "count_complexity",
    "receptive_field",
]
