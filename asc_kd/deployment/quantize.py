"""int8 students: post-training static quantization (or QAT), evaluation, and a self-contained artifact.

Which PyTorch flow, and why. torch 2.11 offers two: the eager-mode flow of
``torch.ao.quantization`` (QuantStub/DeQuantStub, module fusion, observers, ``convert``;
marked deprecated in favour of torchao) and torchao's PT2E flow (``torch.export`` graph,
``prepare_pt2e``/``convert_pt2e``). We use the eager-mode flow because

* it is exactly what the report (section 5) and CP-JKU's DCASE22/23 code use: static PTQ with
  a quantization stub at the model input, calibrated on training data;
* ``convert`` yields modules that run real int8 kernels (fbgemm / x86 / qnnpack) in plain
  eager PyTorch, so int8 CPU inference is faster than fp32 without a compiler step; PT2E's
  converted graph holds quantize/dequantize pairs around fp32 ops and only runs int8 kernels
  after ``torch.compile`` lowering, and it needs torchao, one more pinned dependency;
* the quantized network traces to TorchScript, which gives the artifact below;
* the same fused model takes quantization-aware fine-tuning (``prepare_qat``), CP-JKU's
  DCASE23 path, with no second code path (``asc_kd.quantize --qat-epochs``).
When the eager flow is removed from torch, ``quantize_static`` is the one function to port.

The artifact (``*.int8.pt``) is a TorchScript module of front-end + int8 student that maps
(batch, samples) 32 kHz waveforms to logits; ``torch.jit.load`` runs it in any process with
torch alone (no asc_kd, no training code), and its ``meta.json`` extra file records classes,
sample rate, backend and MEM. CP-JKU's checkpoints did not include the int8 model, so users
had to rebuild it (cpjku_dcase23#6).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.ao import quantization as tq
from torch.ao.nn import quantized as nnq

from asc_kd.core.io import atomic_write, check_writable
from asc_kd.data.options import GivenData, build_datamodule, fit_defaults, recorded_options
from asc_kd.data.spec import DatasetError
from asc_kd.deployment.complexity import BYTES_PER_PARAM, complexity_record
from asc_kd.evaluation.inference import predict_logits
from asc_kd.evaluation.metrics import scene_metrics
from asc_kd.tasks.restore import fit_data_options, load_task
from asc_kd.tracking.lineage import WandbTarget, record_quantize, stage_run

Backend = Literal["x86", "fbgemm", "qnnpack"]
#: How an int8 artifact's file name ends; its report is the same name ending ``.int8.json``.
INT8_SUFFIX = ".int8.pt"


def run_label(recipe: str, seed: Any) -> str:
    """``<recipe>-seed<seed>``: a run's name, as its folder, its W&B run and its int8 artifact
    carry it. An import path (``mypkg.models:TinyCNN``) names its class."""
    name = str(recipe).replace(":", ".").rsplit(".", 1)[-1]
    return f"{name}-seed{seed}"


def int8_name(task: Any) -> str:
    """The file name of a task's int8 artifact, whichever command writes it: ``<run>.int8.pt``.

    ``<run>`` is the name of the run that fitted the task (``run_label``: the recipe's ``name:``,
    else the model, and the seed; ``run_info``, which a fit sets and its checkpoints keep), so the
    fit's ``QuantizationExport``, ``asc-kd quantize`` and the pipeline give one run's artifact one
    name. A task no fit named (a bare ``Trainer``, a hand-made checkpoint) names it after its
    model: ``<model>.int8.pt``.
    """
    run = getattr(task, "run_info", None) or {}
    if run.get("recipe") and run.get("seed") is not None:
        return f"{run_label(run['recipe'], run['seed'])}{INT8_SUFFIX}"
    return f"{str(task.hparams.model).replace(':', '.').rsplit('.', 1)[-1]}{INT8_SUFFIX}"


def find_int8(run_folder: str | Path) -> Path:
    """The int8 artifact of the run whose folder is ``run_folder`` (``<out>/<run>``).

    The pipeline's int8 stage writes ``<run>.int8.pt`` beside the run folder; a fit's
    ``QuantizationExport`` and ``asc-kd quantize`` write it beside the checkpoint, in
    ``<run folder>/checkpoints/``. The first that exists, in this order; a ``FileNotFoundError``
    naming both places and the command that makes one when neither does.
    """
    folder = Path(run_folder)
    name = f"{folder.name}{INT8_SUFFIX}"
    places = [folder.parent / name, folder / "checkpoints" / name]
    for path in places:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"run {folder} has no int8 artifact ({' or '.join(map(str, places))}); make it with "
        f"`asc-kd quantize {folder / 'checkpoints' / 'last.ckpt'} --data.root ROOT`"
    )


@contextmanager
def _quiet() -> Iterator[None]:
    """Hide torch's notices that the eager quantization and TorchScript APIs are deprecated
    (the choice is explained above) and the observers' ``reduce_range`` note: a user cannot act
    on them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
        warnings.filterwarnings("ignore", message=".*reduce_range will be deprecated.*")
        warnings.filterwarnings("ignore", message=".*is deprecated.*", module=r"torch\.")
        yield


class QuantizableModel(nn.Module):
    """Float model between a QuantStub and a DeQuantStub: where activations enter/leave int8.

    With ``dequantize_inside`` the model dequantizes itself (see ``float_pooling``) and the
    outer DeQuantStub is left out.
    """

    def __init__(self, model: nn.Module, dequantize_inside: bool = False) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        self.model = model
        self.dequant = nn.Identity() if dequantize_inside else tq.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.model(self.quant(x)))


class WaveformClassifier(nn.Module):
    """Front-end + model: the whole waveform-to-logits path, as deployed."""

    def __init__(self, frontend: nn.Module, model: nn.Module) -> None:
        super().__init__()
        self.frontend = frontend
        self.model = model

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.model(self.frontend(waveform))


def fusion_groups(model: nn.Module) -> list[list[str]]:
    """Names of conv-BN(-ReLU) runs to fuse, found by walking the module tree.

    Fusing folds BN into the conv and the ReLU into its output range, so the int8 model has
    fewer, better-conditioned layers. Consecutive conv, BN (and ReLU) children of a
    ``Sequential`` are found here; a module whose runs are not laid out that way declares
    them with a ``fusion_groups()`` method returning lists of its own child names (CP-ResNet's
    block does, for the ReLU that follows its first conv-BN outside their Sequential).
    """
    groups: list[list[str]] = []
    covered: set[str] = set()
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        declared = getattr(module, "fusion_groups", None)
        if callable(declared):
            for group in declared():
                groups.append([f"{prefix}{member}" for member in group])
                covered.update(groups[-1])
        if not isinstance(module, nn.Sequential):
            continue
        children = [(f"{prefix}{n}", m) for n, m in module.named_children()]
        i = 0
        while i < len(children) - 1:
            (a, conv), (b, norm) = children[i], children[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and a not in covered:
                group = [a, b]
                if i + 2 < len(children) and isinstance(children[i + 2][1], nn.ReLU):
                    group.append(children[i + 2][0])
                groups.append(group)
                i += len(group)
            else:
                i += 1
    return groups


def float_pooling(model: nn.Module) -> bool:
    """Dequantize right before the classifier head's global average pooling, if it has one.

    The students' head is 1x1 conv -> BN -> global average pool. Pooled in int8, the logits
    keep the conv output's quantization step; pooled in float, the average of ~150 int8 values
    resolves finer, which lowers the int8 log loss at no measurable cost (a mean over 10
    channels). Returns whether a pooling layer was found and wrapped.
    """
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Sequential):
        return False
    for index, layer in enumerate(head):
        if isinstance(layer, nn.AdaptiveAvgPool2d):
            head[index] = nn.Sequential(tq.DeQuantStub(), layer)
            return True
    return False


def prepare_for_quantization(model: nn.Module, backend: Backend = "x86", qat: bool = False) -> nn.Module:
    """Copy, fuse and attach observers (``qat``: fake-quantization modules for fine-tuning).

    The result is calibrated by running data through it (PTQ) or trained (QAT), then
    ``torch.ao.quantization.convert`` turns it into int8 modules.
    """
    torch.backends.quantized.engine = backend
    float_model = copy.deepcopy(model).cpu()
    wrapped = QuantizableModel(float_model, dequantize_inside=float_pooling(float_model)).train(qat)
    groups = [[f"model.{n}" for n in group] for group in fusion_groups(float_model)]
    if groups:
        fuse = tq.fuse_modules_qat if qat else tq.fuse_modules
        fuse(wrapped, groups, inplace=True)
    if qat:
        wrapped.qconfig = tq.get_default_qat_qconfig(backend)
        with _quiet():
            return tq.prepare_qat(wrapped, inplace=False)
    with _quiet():
        wrapped.qconfig = tq.get_default_qconfig(backend)
        return tq.prepare(wrapped, inplace=False)


def convert(prepared: nn.Module) -> nn.Module:
    """int8 modules from a calibrated (PTQ) or fine-tuned (QAT) prepared model."""
    with _quiet():
        return tq.convert(prepared.cpu().eval(), inplace=False).eval()


@torch.no_grad()
def quantize_static(
    model: nn.Module, calibration: Iterable[torch.Tensor], backend: Backend = "x86"
) -> nn.Module:
    """int8 post-training static quantization of a float student (report section 5).

    Args:
        model: float model taking front-end features (batch, 1, F, T).
        calibration: feature batches (a subset of training data) that set activation ranges.
        backend: quantized engine: ``x86``/``fbgemm`` for x86 CPUs, ``qnnpack`` for ARM.
    """
    prepared = prepare_for_quantization(model, backend)
    seen = 0
    for features in calibration:
        prepared(features.cpu())
        seen += len(features)
    if seen == 0:
        raise ValueError("quantize_static needs at least one calibration batch")
    return convert(prepared)


def int8_memory(quantized: nn.Module) -> dict[str, int]:
    """Bytes the parameters of a converted model take in the artifact (``artifact_bytes``).

    Weights are int8 (1 byte each); biases of fused layers stay fp32 (4 bytes) in PyTorch's
    quantized kernels, and are counted as such. This is not the DCASE MEM, which counts the
    model's parameters at 1 byte each (see ``quantize_task``).
    """
    weight_elements = bias_elements = 0
    layers = (nnq.Conv1d, nnq.Conv2d, nnq.Conv3d, nnq.Linear)  # fused ConvReLU2d etc. subclass these
    for module in quantized.modules():
        if isinstance(module, layers):
            w, b = module._weight_bias()
            weight_elements += w.numel()
            bias_elements += 0 if b is None else b.numel()
    return {
        "int8_weights": weight_elements,
        "fp32_biases": bias_elements,
        "artifact_bytes": weight_elements + 4 * bias_elements,
    }


def export_artifact(
    frontend: nn.Module,
    quantized: nn.Module,
    path: str | Path,
    metadata: dict[str, Any],
) -> Path:
    """Trace front-end + int8 model to TorchScript and write it atomically with ``meta.json``."""
    frontend = copy.deepcopy(frontend).cpu().eval()
    module = WaveformClassifier(frontend, quantized).eval()
    window = round(float(metadata.get("segment_seconds", 1.0)) * frontend.sample_rate)
    example = torch.zeros(2, window)
    with torch.no_grad():
        with _quiet():
            traced = torch.jit.trace(module, example, check_trace=False)
    meta = {**metadata, "sample_rate": frontend.sample_rate, "format": "torchscript-int8"}
    with atomic_write(path, "wb") as handle:
        with _quiet():
            torch.jit.save(traced, handle, _extra_files={"meta.json": json.dumps(meta)})
    return Path(path)


def load_artifact(path: str | Path) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load an int8 artifact and its metadata (torch only; what a deployment does)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"int8 artifact {path} not found; make it with `python -m asc_kd.quantize`")
    extra = {"meta.json": ""}
    try:
        with _quiet():
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except RuntimeError as err:
        raise ValueError(f"{path} is not an asc_kd int8 artifact ({err})") from err
    if not extra["meta.json"]:
        raise ValueError(f"{path} is TorchScript but not an asc_kd int8 artifact (no meta.json)")
    return module.eval(), json.loads(extra["meta.json"])


def quantize_task(
    task: Any,
    datamodule: Any,
    out: str | Path,
    calibration_batches: int = 20,
    backend: Backend = "x86",
    source: str | None = None,
    qat_epochs: int = 0,
    qat_lr: float = 1e-4,
    progress: bool = True,
) -> dict[str, Any]:
    """Quantize ``task.model``, export the artifact, evaluate fp32 vs int8; returns the report.

    Calibrates on up to ``calibration_batches`` shuffled training batches (the report's method)
    or, with ``qat_epochs > 0``, fine-tunes with fake quantization (labels, cross-entropy)
    before conversion. Both models are evaluated on the datamodule's test split with the same
    per-device metrics; the report is written as JSON beside the artifact.

    Args:
        task: a ``ClassificationTask`` (student) with its front-end.
        datamodule: a ``SceneDataModule`` of the data the task was trained on.
        out: artifact path (``*.int8.pt``); the report goes to the same stem with ``.json``.
        calibration_batches: most training batches used to calibrate.
        backend: quantized engine.
        source: the checkpoint the task came from, recorded in the report.
        qat_epochs: quantization-aware fine-tuning epochs instead of calibration.
        qat_lr: learning rate of that fine-tuning.
    """
    out = Path(out)
    check_writable(out)
    task = task.cpu().eval()
    classes = list(datamodule.spec.classes)
    if list(task.classes) != classes:
        raise DatasetError(
            f"{source or 'the model'} predicts {len(task.classes)} classes ({', '.join(task.classes[:3])}, "
            f"...), the dataset at {datamodule.root} has {len(classes)} ({', '.join(classes[:3])}, ...); "
            "quantize it with the data it was trained on"
        )
    if not datamodule.datasets:
        datamodule.prepare_data()
        datamodule.setup("fit")
    if qat_epochs > 0:
        quantized = quantization_aware_finetune(task, datamodule, qat_epochs, qat_lr, backend)
        used = 0
    else:
        calibration = datamodule.loader("train", shuffle=True)
        batches = [b["waveform"] for b in itertools.islice(calibration, calibration_batches)]
        with torch.no_grad():
            quantized = quantize_static(task.model, (task.features(w) for w in batches), backend)
        used = len(batches)
    memory = int8_memory(quantized)
    spec = task.spec
    plain = spec.as_dict()
    complexity = complexity_record(task.model, task.input_shape())
    metadata = {
        "model": task.hparams.model,
        "source_checkpoint": source,
        # The spec's classes (the logits' columns), devices and groups, as flat keys: the artifact
        # is read with torch alone, the report by the results notebook.
        **{key: plain[key] for key in ("classes", "devices", "device_groups")},
        "segment_seconds": float(task.hparams.segment_seconds),
        # The data it was calibrated and evaluated on: `predict` reads a dataset as it did.
        "data": recorded_options(getattr(datamodule, "hparams", None) or {}),
        "backend": backend,
        "calibration_batches": used,
        "qat_epochs": qat_epochs,
        # params, params_fused, macs, input_shape, receptive_field: `asc-kd complexity` reads them
        **complexity,
        # MEM as the report and NeSsi count it: parameters x bytes per parameter (int8: 1).
        "mem_bytes": complexity["params"] * BYTES_PER_PARAM["int8"],
        **memory,
    }
    # The artifact is evaluated under a temporary name and takes its own only beside its report:
    # a failure on the way leaves neither, and an earlier pair in their place.
    staged = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        export_artifact(task.frontend, quantized, staged, metadata)
        artifact, _ = load_artifact(staged)
        test = datamodule.loader("test", distributed=False)  # this process scores every clip
        labels = test.dataset.labels
        cpu = torch.device("cpu")

        def evaluate(model: Any, desc: str) -> dict[str, Any]:
            logits = predict_logits(
                model, test, cpu, task.segment_samples, desc if progress else "", shard=False
            )
            return scene_metrics(logits, labels["target"], labels["device"], spec, confusion=True)

        report = {
            **metadata,
            "artifact": str(out),
            # the fp32 model itself, whatever precision the task trained in
            "fp32": evaluate(lambda w: task.model(task.features(w)), "fp32 test"),
            "int8": evaluate(artifact, "int8 test"),
        }
        with atomic_write(out.with_suffix(".json")) as handle:
            json.dump(report, handle, indent=2)
        os.replace(staged, out)
    finally:
        staged.unlink(missing_ok=True)
    return report


def quantization_aware_finetune(
    task: Any, datamodule: Any, epochs: int, lr: float, backend: Backend = "x86"
) -> nn.Module:
    """Fine-tune a fake-quantized copy of ``task.model`` on the labels, then convert to int8.

    The task itself is left untouched: a copy with the prepared model is trained on the CPU
    (quantized kernels are CPU kernels) with a constant learning rate.
    """
    import lightning as L

    student = copy.deepcopy(task)
    student.model = prepare_for_quantization(task.model, backend, qat=True)
    student.hparams.update(lr=lr, schedule="constant", warmup_epochs=0.0, compile=False, precision="fp32")
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        enable_model_summary=False,
    )
    trainer.fit(student, datamodule=datamodule)
    return convert(student.model)


#: The quantize stage's own data defaults: clips read in this process (no loader workers).
QUANTIZE_DATA_DEFAULTS = {"num_workers": 0}


def quantize_stage(
    checkpoint: str,
    data: GivenData,
    out: str | Path | None = None,
    *,
    calibration_batches: int = 20,
    backend: Backend = "x86",
    qat_epochs: int = 0,
    qat_lr: float = 1e-4,
    progress: bool = True,
    wandb: WandbTarget | None = None,
) -> dict[str, Any]:
    """The quantize stage, as ``python -m asc_kd.quantize`` and the pipeline run it: the int8 copy
    of ``checkpoint``'s task and its report (``quantize_task``), and the stage's W&B run.

    The data is the ``--data.*`` options in ``data`` over those the checkpoint's fit recorded
    (``asc_kd.data.options.fit_defaults``: the model's own rate and window among them), over
    ``QUANTIZE_DATA_DEFAULTS``. ``out`` defaults to ``int8_name`` beside the checkpoint. Returns
    the report.
    """
    task = load_task(checkpoint)
    fits = {checkpoint: fit_data_options(checkpoint)}
    datamodule = build_datamodule(data, {**QUANTIZE_DATA_DEFAULTS, **fit_defaults(data, fits)})
    out = Path(out) if out is not None else Path(checkpoint).parent / int8_name(task)
    report = quantize_task(
        task, datamodule, out, calibration_batches, backend, checkpoint, qat_epochs, qat_lr, progress
    )
    if wandb is not None:
        name = f"quantize-{out.name.removesuffix(INT8_SUFFIX)}"
        with stage_run("quantize", name, out.parent, wandb.project, wandb.group) as run:
            record_quantize(run, checkpoint, out, report)
    return report
