"""The task's ``precision``: the model under bf16 autocast, everything around it in fp32, the
precision that ran recorded, and the int8 path untouched by it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from tiny_checkpoints import fit_checkpoint

from asc_kd.data.datamodule import ClipDataset, TAU22DataModule
from asc_kd.data.tau import TAU22
from asc_kd.deployment.quantize import load_artifact, quantize_task
from asc_kd.evaluation.tables import student_rows
from asc_kd.tasks import ClassificationTask
from asc_kd.tasks.restore import load_task, read_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """system1 after two fp32 training steps: a fresh one's zero-initialised head BN gives 0 logits."""
    torch.manual_seed(0)
    task = ClassificationTask(model="system1", spec=TAU22, lr=1e-2)
    return fit_checkpoint(task, tmp_path_factory.mktemp("precision") / "system1.ckpt")


def _pair(checkpoint: Path) -> tuple[ClassificationTask, ClassificationTask]:
    """The same weights with the task's precision fp32 and bf16."""
    fp32 = load_task(checkpoint).eval()
    bf16 = ClassificationTask(model="system1", spec=TAU22, precision="bf16").eval()
    bf16.load_state_dict(fp32.state_dict())
    return fp32, bf16


def test_bf16_runs_the_model_in_bf16_and_hands_back_fp32_logits(trained: Path) -> None:
    fp32, bf16 = _pair(trained)
    waveform = 0.1 * torch.randn(4, 32000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference, fast = fp32(waveform), bf16(waveform)
        inner = bf16.model(bf16.features(waveform))  # no autocast: the weights are still fp32
    assert fast.dtype == reference.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    difference = (fast - reference).abs().max().item()
    assert 0 < difference < 0.1  # bf16 moved the logits (8 mantissa bits), not to other numbers
    assert torch.equal(inner, reference)


def test_the_loss_and_batchnorm_statistics_stay_fp32_in_a_bf16_training_step(trained: Path) -> None:
    _, task = _pair(trained)
    task.train()
    waveform = 0.1 * torch.randn(4, 32000, generator=torch.Generator().manual_seed(2))
    logits = task(waveform)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert loss.dtype == torch.float32
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in task.model.parameters())
    stats = [b for name, b in task.model.named_buffers() if name.endswith("running_mean")]
    assert stats and all(s.dtype == torch.float32 for s in stats)


def test_auto_is_bf16_only_where_the_host_does_it_fast(bf16_branch: bool) -> None:
    task = ClassificationTask(model="debug", spec=TAU22, precision="auto")
    assert task.precision_ran == ("bf16" if bf16_branch else "fp32")
    assert ClassificationTask(model="debug", spec=TAU22).precision_ran == "fp32"
    assert ClassificationTask(model="debug", spec=TAU22, precision="bf16").precision_ran == "bf16"


def test_a_checkpoint_records_the_precision_it_ran_in(tmp_path: Path) -> None:
    task = ClassificationTask(model="debug", spec=TAU22, precision="bf16")
    path = fit_checkpoint(task, tmp_path / "debug.ckpt")
    assert read_checkpoint(path)["asc_kd"]["precision"] == "bf16"
    assert load_task(path).hparams.precision == "bf16"


def test_table2_labels_the_float_row_with_the_precision_that_ran() -> None:
    metrics = {"acc": 0.5, "log_loss": 1.0}
    report = {"fp32": metrics, "int8": metrics, "params": 10, "params_fused": 9, "macs": 100}
    report.update(mem_bytes=10, artifact_bytes=20)
    rows = student_rows(report, "system1", "last", 0, float_precision="bf16")
    assert [row["precision"] for row in rows] == ["bf16", "int8"]
    assert [row["precision"] for row in student_rows(report, "system1", "last", 0)] == ["fp32", "int8"]


def test_quantization_is_bit_for_bit_the_same_whatever_precision_the_task_trained_in(
    trained: Path, tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    datamodule = TAU22DataModule(
        root=str(tiny_root), cache_dir=str(cache_dir), num_workers=0, batch_size=16, check_data=False
    )
    datamodule.prepare_data()
    datamodule.setup("fit")
    test = datamodule.datasets["test"]
    datamodule.datasets["test"] = ClipDataset(test.frame.iloc[:16], test.audio)
    fp32, bf16 = _pair(trained)
    reports = {}
    for name, task in (("fp32", fp32), ("bf16", bf16)):
        reports[name] = quantize_task(
            copy.deepcopy(task), datamodule, tmp_path / f"{name}.int8.pt", 2, progress=False
        )
    artifacts = [load_artifact(tmp_path / f"{name}.int8.pt")[0].state_dict() for name in reports]
    assert artifacts[0].keys() == artifacts[1].keys()
    for key, value in artifacts[0].items():
        other = artifacts[1][key]
        if isinstance(value, torch.Tensor):
            same = value.dequantize() if value.is_quantized else value
            assert torch.equal(same, other.dequantize() if other.is_quantized else other), key
    # the float row scores the fp32 model itself, not the bf16 autocast
    for column in ("fp32", "int8"):  # as text: a class missing from the 16 clips scores NaN
        assert json.dumps(reports["bf16"][column], sort_keys=True) == json.dumps(
            reports["fp32"][column], sort_keys=True
        )


@pytest.mark.parametrize("precision", ["fp16", "half"])
def test_an_unknown_precision_is_refused_by_the_parser(precision: str, tmp_path: Path) -> None:
    from asc_kd.training.fit import fit

    with pytest.raises(Exception, match="precision"):
        fit(["--config", "base", "--model.init_args.precision", precision, "--print_config"])


@pytest.mark.slow
def test_a_compiled_bf16_channels_last_task_fits_and_saves_the_plain_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    kwargs = {"model": "debug", "spec": TAU22, "channels_last": True, "precision": "bf16"}
    task = ClassificationTask(**kwargs, compile=True)
    path = fit_checkpoint(task, tmp_path / "compiled.ckpt")
    plain = ClassificationTask(**kwargs).state_dict()
    stored = torch.load(path, weights_only=False)["state_dict"]
    assert stored.keys() == plain.keys()  # no _orig_mod. prefixes: any task loads it
    assert load_task(path).hparams.compile is True
