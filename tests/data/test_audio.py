"""Reading audio files: device impulse responses at the model's rate."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

from asc_kd.data.audio import (
    AudioFileError,
    check_clip_header,
    length_disagreement,
    load_impulse_responses,
    read_clip,
)
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


# -- files libsndfile cannot open: what was found, not its generic text -------------------------


def test_a_garbage_mp3_is_named_as_an_undecodable_mp3_not_a_missing_file(tmp_path):
    path = tmp_path / "clip.mp3"
    path.write_bytes(bytes(range(7, 107)) * 50)  # 5000 bytes, no MPEG frame in them
    with pytest.raises(AudioFileError) as info:
        read_clip(path)
    message = str(info.value)
    assert message == (
        f"not a decodable mp3: {path} (its 5000 bytes start 07 08 09 0a 0b 0c 0d 0e, the header of "
        "no audio format)"
    )
    assert "does not exist" not in message and info.value.field == "format"


def test_a_garbage_wav_keeps_libsndfile_s_own_specific_reason(tmp_path):
    path = tmp_path / "clip.WAV"
    path.write_bytes(b"JUNK" + bytes(96))
    with pytest.raises(AudioFileError) as info:
        check_clip_header(path, None, None)
    assert str(info.value) == (
        f"not a decodable wav: {path} (its 100 bytes start 4a 55 4e 4b 00 00 00 00, the header of no "
        "audio format; libsndfile: Format not recognised.)"
    )
    # A WAV header without its data chunk: what was found, then libsndfile's specific text.
    path.write_bytes(b"RIFF" + bytes(4) + b"WAVE" + b"junk")
    with pytest.raises(AudioFileError, match=r"\(it starts with a WAV \(RIFF\) header; libsndfile: "):
        check_clip_header(path, None, None)


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"", "it is empty, 0 bytes"),
        (b"<!DOCTYPE html><html><body>404</body></html>", "it holds an HTML page"),
        (
            b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 44144\n",
            "it is a Git LFS pointer, not the audio: `git lfs pull` fetches it",
        ),
        (b"PK\x03\x04" + bytes(60), "it starts with a zip archive"),
    ],
    ids=["empty", "html", "git-lfs", "zip"],
)
def test_what_an_undecodable_file_holds_is_said(tmp_path, content, found):
    path = tmp_path / "clip.mp3"
    path.write_bytes(content)
    with pytest.raises(AudioFileError) as info:
        read_clip(path)
    assert str(info.value).startswith(f"not a decodable mp3: {path} ({found}")


# -- clips of several lengths -------------------------------------------------------------------


def test_length_disagreement_names_the_odd_clips_and_counts_both_sides():
    assert length_disagreement({"a.wav": 1.0, "b.wav": 1.0}) is None
    assert length_disagreement({}) is None
    seconds = {f"c{i}.wav": 1.0 for i in range(197)} | {"x.wav": 10.0, "y.wav": 10.0, "z.wav": 10.0}
    assert length_disagreement(seconds) == (
        "3 of 200 clips are 10.000 s, the other 197 are 1.000 s: x.wav, y.wav, z.wav"
    )
    # Several odd lengths: each named with its own; at most `listed` names, then how many more.
    seconds = {"a.wav": 1.0, "b.wav": 2.5, "c.wav": 1.0, "d.wav": 0.25, "e.wav": 1.0004}
    assert length_disagreement(seconds) == (
        "2 of 5 clips differ from the other 3, which are 1.000 s: b.wav (2.500 s), d.wav (0.250 s)"
    )
    seconds = {f"c{i}.wav": 1.0 for i in range(20)} | {f"o{i}.wav": 3.0 for i in range(4)}
    assert length_disagreement(seconds, listed=2) == (
        "4 of 24 clips are 3.000 s, the other 20 are 1.000 s: o0.wav, o1.wav, ... (2 more)"
    )
