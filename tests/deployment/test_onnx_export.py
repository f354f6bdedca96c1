"""``python -m asc_kd.export`` and ``asc_kd.deployment.export``: one ONNX graph (front-end + model)
that ONNX Runtime runs like PyTorch."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime
import pytest
from tiny_checkpoints import eval_logits, fit_checkpoint, fixed_waveforms

import asc_kd.deployment.export as export_module
from asc_kd.core.errors import ConfigError
from asc_kd.deployment.export import OPSET, export_onnx, onnx_parity
from asc_kd.export import main
from asc_kd.tasks import ClassificationTask
from asc_kd.tasks.restore import load_task


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[ClassificationTask, Path, Path]:
    """A fitted debug classifier, its checkpoint and its ONNX export."""
    folder = tmp_path_factory.mktemp("export")
    task = ClassificationTask(model="debug")
    checkpoint = fit_checkpoint(task, folder / "debug.ckpt")
    out, window, rate = export_onnx(checkpoint, folder / "onnx" / "debug.onnx")
    assert (window, rate) == (32_000, 32_000)
    return task.eval(), checkpoint, out


def _session(path: Path) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_the_graph_is_valid_with_named_io_and_a_dynamic_batch(exported: tuple) -> None:
    _, _, out = exported
    assert out.is_file()
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    assert {o.domain: o.version for o in model.opset_import}[""] == OPSET == 18
    (waveform,) = model.graph.input
    (logits,) = model.graph.output
    assert (waveform.name, logits.name) == ("waveform", "logits")
    batch, samples = waveform.type.tensor_type.shape.dim
    assert batch.dim_param and not batch.dim_value  # symbolic: any batch size
    assert samples.dim_value == 32_000
    assert "DFT" in {node.op_type for node in model.graph.node}  # the front-end's STFT is in the graph
    assert [p.name for p in out.parent.iterdir()] == ["debug.onnx"]  # no partial file left


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_pytorch(exported: tuple, batch: int) -> None:
    task, _, out = exported
    waveform = fixed_waveforms(batch, seed=batch)
    (logits,) = _session(out).run(None, {"waveform": waveform.numpy()})
    assert logits.shape == (batch, 10) and logits.dtype == np.float32
    reference = eval_logits(task, waveform).numpy()
    np.testing.assert_allclose(logits, reference, rtol=0, atol=1e-4)
    assert (logits.argmax(1) == reference.argmax(1)).all()


def test_onnx_parity(exported: tuple) -> None:
    _, checkpoint, out = exported
    parity = onnx_parity(checkpoint, out, n=8, seed=3)
    assert parity["clips"] == 8
    assert parity["max_abs_diff"] < 1e-4
    assert parity["top1_agreement"] == 1.0
    assert onnx_parity(checkpoint, out, n=8, seed=3) == parity  # fixed waveforms: reproducible


def test_the_export_is_the_checkpoint_not_the_live_task(exported: tuple) -> None:
    task, checkpoint, out = exported
    (logits,) = _session(out).run(None, {"waveform": fixed_waveforms().numpy()})
    np.testing.assert_allclose(logits, eval_logits(load_task(checkpoint)).numpy(), rtol=0, atol=1e-4)
    fresh = eval_logits(ClassificationTask(model="debug")).numpy()
    assert np.abs(logits - fresh).max() > 1e-3


def test_cli_writes_next_to_the_checkpoint_and_prints_opset_and_parity(
    exported: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = Path(shutil.copy2(exported[1], tmp_path / "student.ckpt"))
    assert main([str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "student.onnx").is_file()
    assert f"wrote {tmp_path / 'student.onnx'} (opset {OPSET})" in out
    assert "input 'waveform' (batch, 32000) = one 1-s window at 32000 Hz" in out
    assert "onnxruntime vs PyTorch on 4 clips: max abs logit diff" in out
    assert "top-1 agreement 100%" in out
    diff = float(out.split("max abs logit diff ")[1].split(",")[0])
    assert diff < 1e-4


def test_a_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        export_onnx(tmp_path / "missing.ckpt", tmp_path / "out.onnx")
    assert list(tmp_path.iterdir()) == []


class _FailingProto:
    metadata_props = SimpleNamespace(add=lambda **entry: None)  # the complexity record goes in

    def SerializeToString(self) -> bytes:  # noqa: N802 (onnx's name)
        raise RuntimeError("serialisation failed")


@pytest.mark.parametrize("stage", ["export", "serialise"])
def test_a_failed_export_leaves_no_file_and_keeps_an_old_one(
    exported: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    def fake_export(*args, **kwargs):
        if stage == "export":
            raise RuntimeError("export failed")
        return SimpleNamespace(model_proto=_FailingProto())

    monkeypatch.setattr(export_module.torch.onnx, "export", fake_export)
    fresh = tmp_path / "fresh" / "model.onnx"
    with pytest.raises(RuntimeError, match="failed"):
        export_onnx(exported[1], fresh)
    assert not fresh.exists()
    assert not fresh.parent.exists() or list(fresh.parent.iterdir()) == []

    old = tmp_path / "old.onnx"
    old.write_bytes(b"previous model")
    with pytest.raises(RuntimeError, match="failed"):
        export_onnx(exported[1], old)
    assert old.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["old.onnx"]


def test_complexity_reads_an_exported_onnx_file_as_its_checkpoint(
    exported: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from asc_kd.complexity import main as complexity

    _, checkpoint, out = exported
    counted = []
    for source in (checkpoint, out):
        assert complexity([str(source), "--json"]) == 0
        counted.append(json.loads(capsys.readouterr().out))
    assert counted[0] == counted[1]
    assert counted[1]["params"] == 8 * 9 + 2 * 8 + 16 * 8 * 9 + 2 * 16 + 16 * 10 + 10  # the debug CNN
    # An ONNX file from elsewhere records no count: refused, naming the file and the way on.
    foreign = onnx.load(str(out))
    del foreign.metadata_props[:]
    onnx.save(foreign, str(tmp_path / "foreign.onnx"))
    with pytest.raises(ConfigError, match=r"foreign\.onnx records no complexity.*count the checkpoint"):
        complexity([str(tmp_path / "foreign.onnx")])


def test_complexity_of_an_onnx_file_without_onnx_installed_says_how_to_get_it(
    exported: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asc_kd.complexity import main as complexity

    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    with pytest.raises(ConfigError, match=r"needs the onnx package \(pip install asc_kd\[onnx\]\)"):
        complexity([str(exported[2])])
