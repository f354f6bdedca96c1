"""Reading audio files: device impulse responses at the model's rate."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

from asc_kd.data.audio import load_impulse_responses
from asc_kd.data.spec import DatasetError


def test_load_impulse_responses(tmp_path):
    generator = np.random.default_rng(0)
    at_16k = generator.standard_normal(100).astype(np.float32) * 0.1
    at_32k = generator.standard_normal(300).astype(np.float32) * 0.1
    soundfile.write(tmp_path / "a_16k.wav", at_16k, 16000, subtype="FLOAT")
    soundfile.write(tmp_path / "b_32k.wav", at_32k, 32000, subtype="FLOAT")
    (tmp_path / "notes.txt").write_text("ignored")

    responses = load_impulse_responses(tmp_path, sample_rate=32000)
    # 100 samples at 16 kHz become 200 at 32 kHz; both are zero-padded to the longest (300).
    assert responses.shape == (2, 300)
    torch.testing.assert_close(responses.pow(2).sum(1), torch.ones(2), atol=1e-5, rtol=0)
    upsampled = torchaudio.functional.resample(torch.from_numpy(at_16k), 16000, 32000)
    assert upsampled.shape == (200,)
    torch.testing.assert_close(responses[0, :200], upsampled / upsampled.norm(), atol=1e-6, rtol=0)
    assert torch.equal(responses[0, 200:], torch.zeros(100))
    expected = torch.from_numpy(at_32k)
    torch.testing.assert_close(responses[1], expected / expected.norm(), atol=1e-6, rtol=0)


def test_load_impulse_responses_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="holds no .wav files") as info:
        load_impulse_responses(tmp_path, 32000)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(DatasetError, match="holds no .wav files"):
        load_impulse_responses(tmp_path / "missing", 32000)


def test_load_impulse_responses_bad_files(tmp_path):
    soundfile.write(tmp_path / "silent.wav", np.zeros(64, dtype=np.float32), 32000)
    with pytest.raises(DatasetError, match="all zeros") as info:
        load_impulse_responses(tmp_path, 32000)
    assert "silent.wav" in str(info.value)
    (tmp_path / "silent.wav").write_bytes(b"garbage" * 20)
    with pytest.raises(DatasetError, match="not a readable impulse response"):
        load_impulse_responses(tmp_path, 32000)
