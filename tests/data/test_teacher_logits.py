"""Teacher-logits files: round trip and the checks that refuse foreign or damaged files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from asc_kd.data.teacher_logits import LogitsMismatchError, load_logits, save_logits

FILENAMES = ["audio/park-paris-0-1-a.wav", "audio/bus-lyon-2-3-b.wav", "audio/tram-milan-1-7-s2.wav"]
METADATA = {"teachers": ["passt", "cp_resnet"], "split": "train", "dataset_fingerprint": "f00d" * 16}


@pytest.fixture
def logits() -> torch.Tensor:
    return torch.arange(30, dtype=torch.float32).reshape(3, 10) / 7 - 2


def _files(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


def test_round_trip(tmp_path, logits):
    path = save_logits(tmp_path / "sub" / "teacher.npz", FILENAMES, logits, METADATA)
    assert path == tmp_path / "sub" / "teacher.npz"
    assert _files(tmp_path / "sub") == ["teacher.npz"]  # no temporary file left over
    filenames, loaded, metadata = load_logits(path, split="train")
    assert filenames == FILENAMES
    assert loaded.dtype == torch.float32
    assert torch.equal(loaded, logits)
    assert metadata == METADATA
    # The file is a plain npz: readable without pickle.
    with np.load(path, allow_pickle=False) as data:
        assert json.loads(str(data["metadata"])) == METADATA


def test_numpy_float64_input_is_stored_as_float32(tmp_path):
    values = np.linspace(-1, 1, 30).reshape(3, 10)
    save_logits(tmp_path / "t.npz", FILENAMES, values, METADATA)
    _, loaded, _ = load_logits(tmp_path / "t.npz")
    assert loaded.dtype == torch.float32
    np.testing.assert_array_equal(loaded.numpy(), values.astype(np.float32))


def test_refuses_other_split(tmp_path, logits):
    path = save_logits(tmp_path / "t.npz", FILENAMES, logits, METADATA)
    with pytest.raises(LogitsMismatchError, match="split 'train', expected 'test'") as info:
        load_logits(path, split="test")
    assert str(path) in str(info.value)


def test_refuses_nan_file(tmp_path, logits):
    logits[1, 4] = float("nan")
    path = tmp_path / "nan.npz"
    np.savez(
        path,
        filenames=np.asarray(FILENAMES),
        logits=logits.numpy(),
        metadata=np.asarray(json.dumps(METADATA)),
    )
    with pytest.raises(LogitsMismatchError, match="NaN or inf") as info:
        load_logits(path)
    assert str(path) in str(info.value)


def test_refuses_a_file_that_is_not_npz(tmp_path):
    path = tmp_path / "teacher.npz"
    path.write_text("filename\tlogits\naudio/a.wav\t0.1\n")
    with pytest.raises(LogitsMismatchError, match="is not an asc_kd logits file") as info:
        load_logits(path)
    assert str(path) in str(info.value)


def test_refuses_npz_without_metadata(tmp_path, logits):
    path = tmp_path / "bare.npz"
    np.savez(path, filenames=np.asarray(FILENAMES), logits=logits.numpy())
    with pytest.raises(LogitsMismatchError, match="is not an asc_kd logits file"):
        load_logits(path)


def test_refuses_npy_array(tmp_path, logits):
    path = tmp_path / "teacher.npz"
    with path.open("wb") as handle:
        np.save(handle, logits.numpy())
    with pytest.raises(LogitsMismatchError, match="is not an asc_kd logits file"):
        load_logits(path)


def test_refuses_metadata_that_is_not_a_record(tmp_path, logits):
    path = tmp_path / "teacher.npz"
    np.savez(
        path,
        filenames=np.asarray(FILENAMES),
        logits=logits.numpy(),
        metadata=np.asarray(json.dumps(["train"])),
    )
    with pytest.raises(LogitsMismatchError):
        load_logits(path, split="train")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m asc_kd.logits"):
        load_logits(tmp_path / "absent.npz")


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        (torch.full((3, 10), float("nan")), "NaN or inf"),
        (torch.tensor([[0.0, float("inf")]] * 3), "NaN or inf"),
        (torch.zeros(2, 10), "must be \\(clips, classes\\) for 3 clips, got \\(2, 10\\)"),
        (torch.zeros(3), "must be \\(clips, classes\\) for 3 clips, got \\(3,\\)"),
    ],
    ids=["nan", "inf", "rows", "1d"],
)
def test_save_refuses_bad_logits(tmp_path, values, problem):
    with pytest.raises(ValueError, match=problem):
        save_logits(tmp_path / "out" / "t.npz", FILENAMES, values, METADATA)
    assert not (tmp_path / "out" / "t.npz").exists()
    assert not (tmp_path / "out").exists() or _files(tmp_path / "out") == []
