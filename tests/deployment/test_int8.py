"""int8 post-training quantization: fusion, int8 against fp32, memory, the TorchScript artifact."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import pytest
import torch
from fit_helpers import make_cpu_trainer
from torch import nn
from torch.ao.nn import intrinsic, quantized

import asc_kd.deployment.quantize as int8_module
from asc_kd.data.datamodule import TAU22DataModule
from asc_kd.data.tau import SCENES, TAU22
from asc_kd.deployment.quantize import (
    WaveformClassifier,
    export_artifact,
    fusion_groups,
    int8_memory,
    load_artifact,
    quantize_static,
    quantize_task,
)
from asc_kd.models import DebugCNN, cp_resnet, list_models
from asc_kd.models.frontends import get_frontend
from asc_kd.tasks import ClassificationTask

# -- fusion -------------------------------------------------------------------------------------

#: system1 by hand: the input conv, stage 1 = two blocks behind max-pools (sequential indices 1
#: and 3), stage 2 and stage 3 = one block each whose width changes (a conv-BN shortcut), head.
SYSTEM1_GROUPS = [
    ["in_c.0", "in_c.1", "in_c.2"],
    ["stages.0.1.conv1.0", "stages.0.1.conv1.1", "stages.0.1.relu1"],
    ["stages.0.1.conv2.0", "stages.0.1.conv2.1"],
    ["stages.0.3.conv1.0", "stages.0.3.conv1.1", "stages.0.3.relu1"],
    ["stages.0.3.conv2.0", "stages.0.3.conv2.1"],
    ["stages.1.0.conv1.0", "stages.1.0.conv1.1", "stages.1.0.relu1"],
    ["stages.1.0.conv2.0", "stages.1.0.conv2.1"],
    ["stages.1.0.shortcut.0", "stages.1.0.shortcut.1"],
    ["stages.2.0.conv1.0", "stages.2.0.conv1.1", "stages.2.0.relu1"],
    ["stages.2.0.conv2.0", "stages.2.0.conv2.1"],
    ["stages.2.0.shortcut.0", "stages.2.0.shortcut.1"],
    ["head.0", "head.1"],
]


def _names(model: nn.Module, kind: type[nn.Module]) -> set[str]:
    return {name for name, module in model.named_modules() if isinstance(module, kind)}


def test_fusion_groups_of_system1() -> None:
    model = cp_resnet("system1")
    groups = fusion_groups(model)
    assert sorted(groups) == sorted(SYSTEM1_GROUPS)
    names = [name for group in groups for name in group]
    assert len(names) == len(set(names))  # nothing fused twice
    # Every conv and every BN is in exactly one run, each conv first and its BN second.
    assert {group[0] for group in groups} == _names(model, nn.Conv2d)
    assert {group[1] for group in groups} == _names(model, nn.BatchNorm2d)
    # The ReLU after a residual add (relu2) cannot be fused: it follows the add, not a BN.
    assert not any(name.endswith("relu2") for name in names)


def test_fusion_groups_of_debug_cnn() -> None:
    model = DebugCNN()
    assert fusion_groups(model) == [
        ["features.0", "features.1", "features.2"],
        ["features.3", "features.4", "features.5"],
    ]


def test_fusion_groups_of_a_model_without_runs() -> None:
    assert fusion_groups(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2))) == []


# -- int8 against fp32 --------------------------------------------------------------------------


@dataclass
class Quantized:
    """system1 trained on the tiny scenes, its int8 version, test clips and their features."""

    float_model: nn.Module
    int8_model: nn.Module
    frontend: nn.Module
    features: torch.Tensor
    waveforms: torch.Tensor


@pytest.fixture(scope="module")
def trained(tiny_root: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """system1 trained on the tiny scenes (well above chance), its data and a non-default hop."""
    folder = tmp_path_factory.mktemp("trained")
    datamodule = TAU22DataModule(
        root=str(tiny_root), cache_dir=str(cache_dir), num_workers=0, batch_size=32, eval_batch_size=64
    )
    L.seed_everything(0, verbose=False)
    task = ClassificationTask(
        model="system1", lr=3e-3, schedule="constant", frontend_kwargs={"hop_length": 640}, spec=TAU22
    )
    trainer = make_cpu_trainer(folder, max_epochs=6, limit_val_batches=0)
    trainer.fit(task, datamodule=datamodule)
    return task.eval(), datamodule, folder


@pytest.fixture(scope="module")
def system1(trained) -> Quantized:
    task, datamodule, _ = trained
    with torch.no_grad():
        calibration = [
            task.features(b["waveform"])
            for b in itertools.islice(datamodule.loader("train", shuffle=True), 4)
        ]
        test_waveforms = next(iter(datamodule.loader("test")))["waveform"]
        test_features = task.features(test_waveforms)
    int8_model = quantize_static(task.model, calibration)
    return Quantized(task.model, int8_model, task.frontend, test_features, test_waveforms)


def test_int8_system1_is_close_to_fp32(system1: Quantized) -> None:
    with torch.no_grad():
        reference = system1.float_model(system1.features)
        int8 = system1.int8_model(system1.features)
    assert int8.shape == reference.shape == (64, len(SCENES))
    assert int8.dtype == torch.float32  # dequantized at the output
    scale = reference.abs().max().item()
    assert scale > 0.5  # the logits are not trivially flat
    assert (int8 - reference).abs().max().item() < 0.1 * scale
    agreement = (int8.argmax(1) == reference.argmax(1)).float().mean().item()
    assert agreement >= 0.9


def test_quantized_system1_runs_int8_kernels(system1: Quantized) -> None:
    """Both paths run on the CPU; how fast each is belongs to benchmarks, not tests."""
    convs = [m for m in system1.int8_model.modules() if isinstance(m, quantized.Conv2d)]
    assert len(convs) == len(SYSTEM1_GROUPS)
    assert sum(isinstance(m, intrinsic.quantized.ConvReLU2d) for m in convs) == 5  # in_c + 4 conv1
    assert not any(isinstance(m, nn.BatchNorm2d) for m in system1.int8_model.modules())
    with torch.inference_mode():
        fp32 = system1.float_model(system1.features[:8])
        int8 = system1.int8_model(system1.features[:8])
    assert fp32.shape == int8.shape == (8, len(SCENES))
    assert torch.isfinite(int8).all()


def test_quantize_static_leaves_the_float_model_alone() -> None:
    model = DebugCNN().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    quantize_static(model, [torch.randn(4, 1, 256, 44)])
    assert isinstance(model.features[1], nn.BatchNorm2d)  # not fused in place
    assert model.state_dict().keys() == before.keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


#: (in channels, out channels, kernel area, groups) of system1's convs, each followed by a BN.
SYSTEM1_CONVS = [
    (1, 32, 25, 1),  # in_c: 5x5, stride 2
    (32, 32, 9, 1),  # stage 1, block 1: (3, 1)
    (32, 32, 1, 1),
    (32, 32, 9, 1),  # stage 1, block 2: (3, 3)
    (32, 32, 9, 1),
    (32, 64, 9, 2),  # stage 2: (3, 3) in two groups, plus a grouped 1x1 shortcut
    (64, 64, 9, 2),
    (32, 64, 1, 2),
    (64, 92, 9, 1),  # stage 3: (3, 1), plus a 1x1 shortcut
    (92, 92, 1, 1),
    (64, 92, 1, 1),
    (92, 10, 1, 1),  # head: 1x1 to the classes
]


def test_int8_memory_of_system1(system1: Quantized) -> None:
    conv_weights = sum(c_in // groups * c_out * area for c_in, c_out, area, groups in SYSTEM1_CONVS)
    out_channels = sum(c_out for _, c_out, _, _ in SYSTEM1_CONVS)
    assert (conv_weights, out_channels) == (126_408, 638)
    # The float model's 127,684 params are those conv weights plus a weight and bias per BN channel.
    float_params = sum(p.numel() for p in system1.float_model.parameters())
    assert float_params == 127_684 == conv_weights + 2 * out_channels

    memory = int8_memory(system1.int8_model)
    assert memory["int8_weights"] == conv_weights  # BN folded into the convs
    assert memory["fp32_biases"] == out_channels  # one folded bias per output channel
    assert memory["artifact_bytes"] == conv_weights + 4 * out_channels == 128_960
    assert memory["artifact_bytes"] <= 128 * 1024


def test_int8_memory_of_a_float_model_is_zero() -> None:
    assert int8_memory(cp_resnet("system1")) == {"int8_weights": 0, "fp32_biases": 0, "artifact_bytes": 0}


def test_int8_memory_counts_a_linear_layer_once() -> None:
    int8_model = quantize_static(DebugCNN(), [torch.randn(4, 1, 256, 44)])
    weights = 1 * 8 * 9 + 8 * 16 * 9 + 16 * 10  # two convs (BN folded) and the linear head
    biases = 8 + 16 + 10
    assert int8_memory(int8_model) == {
        "int8_weights": weights,
        "fp32_biases": biases,
        "artifact_bytes": weights + 4 * biases,
    }


def test_quantize_static_without_calibration_data() -> None:
    with pytest.raises(ValueError, match="calibration"):
        quantize_static(DebugCNN(), [])
    with pytest.raises(ValueError, match="calibration"):
        quantize_static(DebugCNN(), (f for f in []))


# -- the artifact -------------------------------------------------------------------------------

#: Runs in a fresh interpreter with torch alone, as a deployment would.
FRESH_PROCESS = """
import json, sys, torch
extra = {"meta.json": ""}
module = torch.jit.load(sys.argv[1], map_location="cpu", _extra_files=extra)
waveforms = torch.load(sys.argv[2], weights_only=True)
with torch.no_grad():
    logits = {n: module(waveforms[:n]).tolist() for n in (1, 3)}
json.dump({
    "logits": logits,
    "meta": json.loads(extra["meta.json"]),
    "asc_kd_loaded": any(name.split(".")[0] == "asc_kd" for name in sys.modules),
}, sys.stdout)
"""


def test_artifact_runs_in_a_process_with_torch_alone(system1: Quantized, tmp_path: Path) -> None:
    frontend = system1.frontend
    path = export_artifact(
        frontend, system1.int8_model, tmp_path / "system1.int8.pt", {"classes": list(SCENES), "model": "x"}
    )
    waveforms = system1.waveforms[:3].clone()
    torch.save(waveforms, tmp_path / "waveforms.pt")
    done = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(path), str(tmp_path / "waveforms.pt")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["asc_kd_loaded"] is False
    assert result["meta"]["classes"] == list(SCENES)
    assert result["meta"]["sample_rate"] == 32_000
    assert result["meta"]["format"] == "torchscript-int8"

    in_process = WaveformClassifier(frontend.eval(), system1.int8_model).eval()
    for n in (1, 3):
        with torch.no_grad():
            expected = in_process(waveforms[:n])
        torch.testing.assert_close(torch.tensor(result["logits"][str(n)]), expected, rtol=0, atol=1e-5)

    # load_artifact gives the same module and metadata in this process.
    module, meta = load_artifact(path)
    assert meta == result["meta"]
    with torch.no_grad():
        torch.testing.assert_close(module(waveforms), in_process(waveforms), rtol=0, atol=1e-5)


def test_load_artifact_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"asc_kd\.quantize") as raised:
        load_artifact(tmp_path / "absent.int8.pt")
    assert "absent.int8.pt" in str(raised.value)


@pytest.mark.parametrize("kind", ["garbage", "state_dict"])
def test_load_artifact_of_a_file_that_is_not_one(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "model.int8.pt"
    if kind == "garbage":
        path.write_bytes(b"not a model")
    else:
        torch.save(DebugCNN().state_dict(), path)
    with pytest.raises(ValueError, match="not an asc_kd int8 artifact"):
        load_artifact(path)


def test_load_artifact_of_torchscript_without_metadata(tmp_path: Path) -> None:
    path = tmp_path / "linear.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(path))
    with pytest.raises(ValueError, match="not an asc_kd int8 artifact"):
        load_artifact(path)


def test_students_pool_in_float_after_the_int8_head() -> None:
    from torch.ao.nn.quantized import DeQuantize

    from asc_kd.deployment.quantize import float_pooling

    torch.manual_seed(0)
    model = cp_resnet("system1").eval()
    assert float_pooling(cp_resnet("system1"))
    assert not float_pooling(DebugCNN())  # no classifier_head: dequantized at the output
    features = torch.randn(4, 1, 256, 44)
    quantized = quantize_static(model, [features])
    pool = quantized.model.head[2]
    assert isinstance(pool[0], DeQuantize) and isinstance(pool[1], torch.nn.AdaptiveAvgPool2d)
    assert isinstance(quantized.dequant, torch.nn.Identity)
    out = quantized(features)
    assert out.dtype == torch.float32 and not out.is_quantized and out.shape == (4, 10)


# -- every student quantizes --------------------------------------------------------------------


@pytest.mark.parametrize("name", list_models("students"))
def test_every_registered_student_quantizes_runs_int8_and_loads(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = ClassificationTask(model=name).eval()
    shape = task.input_shape()
    calibration = [torch.randn(8, *shape[1:]) for _ in range(2)]
    int8_model = quantize_static(task.model, calibration)
    with torch.no_grad():
        reference, out = task.model(calibration[0]), int8_model(calibration[0])
    assert out.shape == reference.shape == (8, 10) and torch.isfinite(out).all()
    assert any(isinstance(m, quantized.Conv2d) for m in int8_model.modules())
    path = export_artifact(
        task.frontend, int8_model, tmp_path / f"{name}.int8.pt", {"classes": list(task.classes)}
    )
    module, meta = load_artifact(path)
    with torch.no_grad():
        logits = module(0.1 * torch.randn(2, 32_000))
    assert logits.shape == (2, 10) and meta["classes"] == list(task.classes)


# -- quantize_task: what it calibrates on and what the artifact computes ----------------------------


def test_int8_accuracy_of_a_trained_student_stays_close_to_fp32(trained) -> None:
    task, datamodule, folder = trained
    report = quantize_task(task, datamodule, folder / "acc.int8.pt", calibration_batches=4)
    fp32, int8 = report["fp32"], report["int8"]
    assert fp32["acc"] > 0.3  # 3x chance: a student that learned something, so the check can fail
    assert abs(int8["acc"] - fp32["acc"]) <= 0.06
    assert abs(int8["log_loss"] - fp32["log_loss"]) <= 0.1


def test_calibration_sees_the_task_features_of_training_batches(trained, monkeypatch, tmp_path: Path) -> None:
    task, datamodule, _ = trained
    seen: list[torch.Tensor] = []
    real = int8_module.quantize_static

    def spy(model, calibration, backend="x86"):
        batches = [features.clone() for features in calibration]
        seen.extend(batches)
        return real(model, batches, backend)

    monkeypatch.setattr(int8_module, "quantize_static", spy)
    quantize_task(task, datamodule, tmp_path / "spy.int8.pt", calibration_batches=2)
    expected = [
        task.features(b["waveform"]) for b in itertools.islice(datamodule.loader("train", shuffle=True), 2)
    ]
    assert len(seen) == 2
    for got, want in zip(seen, expected, strict=True):
        torch.testing.assert_close(got, want)
        assert got.std() > 0.1  # real audio, not silence


def test_the_artifact_uses_the_task_front_end(trained, tmp_path: Path) -> None:
    task, datamodule, _ = trained
    assert task.frontend.hop_length == 640
    report = quantize_task(task, datamodule, tmp_path / "fe.int8.pt", calibration_batches=2)
    artifact, meta = load_artifact(report["artifact"])
    waveform = 0.1 * torch.randn(3, 32_000, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        int8_model = artifact.model  # the traced int8 network inside the artifact
        by_task_features = int8_model(task.features(waveform))
        by_default_features = int8_model(get_frontend("student_mel").eval()(waveform))
        logits = artifact(waveform)
    torch.testing.assert_close(logits, by_task_features, rtol=0, atol=1e-5)
    assert (logits - by_default_features).abs().max() > 1e-3
    assert meta["segment_seconds"] == 1.0 and meta["classes"] == list(SCENES)


def test_report_mem_is_parameters_times_one_byte(trained, tmp_path: Path) -> None:
    task, datamodule, _ = trained
    report = quantize_task(task, datamodule, tmp_path / "mem.int8.pt", calibration_batches=1)
    assert report["params"] == report["mem_bytes"] == 127_684  # the report's 127.6K
    assert report["params_fused"] == 127_046
    assert report["artifact_bytes"] == 128_960  # int8 weights + fp32 biases of fused layers
    assert report["calibration_batches"] == 1
