"""The int8 report counts MACs on the input the task's front-end makes, not on a default shape, and
``asc-kd complexity`` reads those numbers back from the artifact.

A debug CNN behind a front-end of 64 mel bins and hop 640: one 1-s window at 32 kHz is
(1, 1, 64, 1 + 32000 // 640) = (1, 1, 64, 51). Counted as NeSsi counts (torchinfo mult-adds):

- conv 1 (1 -> 8, 3x3, stride 2, pad 1): output 32 x 26, 8·1·9·32·26 = 59,904
- batch norm 8 channels: 16;  conv 2 (8 -> 16): output 16 x 13, 16·8·9·16·13 = 239,616
- batch norm 16 channels: 32;  linear 16 -> 10 with bias: 170
- total 299,738 (on the default (1, 1, 256, 44) it would be 1,013,978)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from tiny_checkpoints import fit_checkpoint

from asc_kd.callbacks import ComplexityCheck
from asc_kd.complexity import main as complexity
from asc_kd.core.errors import ConfigError
from asc_kd.data.datamodule import ClipDataset, TAU22DataModule
from asc_kd.data.tau import TAU22
from asc_kd.deployment.complexity import count_complexity
from asc_kd.deployment.quantize import quantize_task
from asc_kd.tasks import ClassificationTask
from asc_kd.tasks.restore import load_task

FRONTEND = {"hop_length": 640, "n_mels": 64}
MACS = 59_904 + 16 + 239_616 + 32 + 170
PARAMS = 8 * 9 + 2 * 8 + 16 * 8 * 9 + 2 * 16 + 16 * 10 + 10  # 1,442
DEFAULT_SHAPE_MACS = 202_752 + 16 + 811_008 + 32 + 170


@pytest.fixture
def task() -> ClassificationTask:
    return ClassificationTask(model="debug", frontend_kwargs=FRONTEND, spec=TAU22).eval()


def test_the_hand_count(task: ClassificationTask) -> None:
    assert task.input_shape() == (1, 1, 64, 51)
    assert count_complexity(task.model, task.input_shape()).macs == MACS
    assert count_complexity(task.model).macs == DEFAULT_SHAPE_MACS  # the shape matters


def _small_datamodule(tiny_root: Path, cache_dir: Path) -> TAU22DataModule:
    datamodule = TAU22DataModule(
        root=str(tiny_root), cache_dir=str(cache_dir), num_workers=0, batch_size=16, check_data=False
    )
    datamodule.prepare_data()
    datamodule.setup("fit")
    test = datamodule.datasets["test"]  # 16 test clips are enough to count on: a faster report
    datamodule.datasets["test"] = ClipDataset(test.frame.iloc[:16], test.audio)
    return datamodule


def test_the_int8_report_counts_on_the_task_input(
    task: ClassificationTask, tiny_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    datamodule = _small_datamodule(tiny_root, cache_dir)
    report = quantize_task(
        task, datamodule, tmp_path / "debug.int8.pt", calibration_batches=1, progress=False
    )
    assert report["macs"] == MACS
    assert report["params"] == PARAMS
    assert sum(map(sum, report["int8"]["confusion"])) == 16


def test_complexity_of_an_int8_artifact_is_its_checkpoints(
    tiny_root: Path, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = ClassificationTask(model="debug", frontend_kwargs=FRONTEND, spec=TAU22)
    checkpoint = fit_checkpoint(task, tmp_path / "debug.ckpt")
    artifact = tmp_path / "debug.int8.pt"
    quantize_task(load_task(checkpoint), _small_datamodule(tiny_root, cache_dir), artifact, 1, progress=False)
    counted = []
    for source in (checkpoint, artifact):
        assert complexity([str(source), "--json"]) == 0
        counted.append(json.loads(capsys.readouterr().out))
    # Two bias-free convs each lose their BatchNorm's C parameters when folded: 8 + 16.
    hand = {"params": PARAMS, "params_fused": PARAMS - 24, "macs": MACS, "mem_bytes": PARAMS}
    # Two 3x3 convs of stride 2: 3 + (3 - 1) x 2 = 7 bins and frames.
    assert counted == [{**hand, "receptive_field": [7, 7]}] * 2
    assert complexity([str(artifact), "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "params 1,442, MACs 299,738 on input (1, 1, 64, 51)" in out
    assert "MEM (fp32): 5,768 bytes of 131,072" in out and "(input 64 x 51)" in out
    with pytest.raises(ConfigError, match=r"--input-shape: .*debug\.int8\.pt was counted on its own input"):
        complexity([str(artifact), "--input-shape", "1", "1", "256", "44"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not an archive", "not a TorchScript archive"),
        ({"state_dict": {}}, r"not an asc_kd int8 artifact \(no meta\.json\)"),
    ],
    ids=["text", "torch-save"],
)
def test_complexity_refuses_a_pt_file_asc_kd_did_not_write(
    foreign_file: Callable[[str, bytes | dict], Path], content: bytes | dict, message: str
) -> None:
    path = foreign_file("model.int8.pt", content)
    with pytest.raises(ConfigError, match=message) as raised:
        complexity([str(path)])
    assert str(path) in str(raised.value)


def test_complexity_names_the_files_it_counts_for_another_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    path.write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"weights\.pth: not a file complexity counts; give a checkpoint"):
        complexity([str(path)])


def test_the_fit_time_check_counts_on_the_task_input(task: ClassificationTask) -> None:
    callback = ComplexityCheck()
    callback.on_fit_start(SimpleNamespace(loggers=[]), task)
    assert callback.result.input_shape == [1, 1, 64, 51]
    assert callback.result.macs == MACS
