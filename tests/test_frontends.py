import pytest
import torch
import torchaudio
from torchaudio.compliance import kaldi

from asc_kd.data.frontends import ASTFbank, PasstMel, StudentMel

FRONTENDS = (StudentMel, PasstMel, ASTFbank)


@pytest.fixture
def waveform() -> torch.Tensor:
    """Two 1-s clips at 32 kHz: a tone plus noise, so every mel bin has energy."""
    generator = torch.Generator().manual_seed(0)
    t = torch.arange(32000) / 32000
    tone = 0.3 * torch.sin(2 * torch.pi * 440.0 * t)
    return tone + 0.1 * torch.randn(2, 32000, generator=generator)


@pytest.mark.parametrize(
    ("frontend", "shape"),
    [
        (StudentMel, (2, 1, 256, 44)),
        # Pre-emphasis drops one sample: 1 + 31999 // 320 = 100 frames.
        (PasstMel, (2, 1, 128, 100)),
        (ASTFbank, (2, 1, 128, 98)),
    ],
)
@pytest.mark.parametrize("training", [True, False])
def test_output_shape(frontend, shape, training, waveform):
    module = frontend().train(training)
    assert module(waveform).shape == shape
    assert module.sample_rate == 32000


def test_student_mel_matches_torchaudio(waveform):
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=32000, n_fft=2048, win_length=2048, hop_length=737, n_mels=256, f_min=0.0
    )
    expected = torch.log(mel(waveform) + 1e-5)
    raw = StudentMel(normalize=False)(waveform)
    normalized = StudentMel()(waveform)
    torch.testing.assert_close(raw[:, 0], expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(normalized[:, 0], (expected + 4.5) / 5, atol=1e-4, rtol=0)


@pytest.mark.parametrize("target_length", [None, 90, 120])
def test_ast_fbank_matches_kaldi(target_length, waveform):
    module = ASTFbank(target_length=target_length)
    resampled = torchaudio.functional.resample(waveform, 32000, 16000)
    for clip, features in zip(resampled, module(waveform), strict=True):
        fbank = kaldi.fbank(
            clip.unsqueeze(0),
            htk_compat=True,
            sample_frequency=16000,
            use_energy=False,
            window_type="hanning",
            num_mel_bins=128,
            dither=0.0,
            frame_shift=10,
            frame_length=25,
        )
        if target_length is not None:
            fbank = torch.nn.functional.pad(fbank, (0, 0, 0, max(0, target_length - len(fbank))))
            fbank = fbank[:target_length]
        expected = (fbank + 4.2677393) / (4.5689974 * 2)
        torch.testing.assert_close(features[0], expected.T, atol=1e-3, rtol=0)


def test_ast_fbank_without_resampling(waveform):
    clip = waveform[:, :16000]
    fbank = kaldi.fbank(clip[:1], htk_compat=True, window_type="hanning", num_mel_bins=128, dither=0.0)
    features = ASTFbank(sample_rate=16000)(clip)
    expected = (fbank + 4.2677393) / (4.5689974 * 2)
    torch.testing.assert_close(features[0, 0], expected.T, atol=1e-3, rtol=0)


def test_passt_mel_eval_matches_direct_computation(waveform):
    module = PasstMel().eval()
    emphasized = waveform[:, 1:] - 0.97 * waveform[:, :-1]
    window = torch.hann_window(800, periodic=False)
    spec = torch.stft(emphasized, 1024, hop_length=320, win_length=800, window=window, return_complex=True)
    banks, _ = kaldi.get_mel_banks(128, 1024, 32000.0, 0.0, 15000.0, 100.0, -500.0, 1.0)
    banks = torch.nn.functional.pad(banks, (0, 1))
    expected = (torch.log(banks @ spec.abs().pow(2) + 1e-5) + 4.5) / 5
    first = module(waveform)
    torch.testing.assert_close(first[:, 0], expected, atol=1e-4, rtol=1e-4)
    assert torch.equal(first, module(waveform))


def test_passt_mel_training_jitters_and_masks(waveform):
    module = PasstMel()
    expected = module.eval()(waveform)
    torch.manual_seed(0)
    augmented = module.train()(waveform)
    assert not torch.allclose(augmented, expected)
    # Masks write log-mel 0 before the (x + 4.5) / 5 normalisation.
    assert (augmented == 0.9).any()


def test_passt_mel_jitter_without_masks_changes_filterbank(waveform):
    module = PasstMel(freqm=0, timem=0)
    expected = module.eval()(waveform)
    torch.manual_seed(0)
    jittered = module.train()(waveform)
    assert not torch.allclose(jittered, expected)
    assert not (jittered == 0.9).any()


def test_passt_mel_rejects_fmax_beyond_nyquist():
    with pytest.raises(ValueError, match="Nyquist"):
        PasstMel(fmax=16000.0)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_rejects_non_batched_waveform(frontend):
    with pytest.raises(ValueError, match=r"\(batch, samples\)"):
        frontend()(torch.zeros(32000))


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_filterbanks_are_buffers_that_follow_to(frontend, waveform):
    module = frontend().eval()
    buffers = dict(module.named_buffers())
    assert {"window", "mel_fb"} <= buffers.keys()
    # Derived from config(), so kept out of checkpoints.
    assert module.state_dict() == {}
    module.to(torch.float64)
    assert all(buffer.dtype == torch.float64 for buffer in module.buffers())
    assert module(waveform).dtype == torch.float64
    module.to("meta")
    assert all(buffer.device.type == "meta" for buffer in module.buffers())


@pytest.mark.parametrize(
    ("frontend", "kwargs"),
    [
        (StudentMel, {}),
        (StudentMel, {"n_mels": 64, "fmin": 50.0, "fmax": 8000.0, "normalize": False}),
        (PasstMel, {}),
        (PasstMel, {"n_mels": 96, "fmin": 20.0, "fmax": 12000.0, "n_jitter": 4}),
        (ASTFbank, {}),
        (ASTFbank, {"sample_rate": 44100, "n_mels": 64, "target_length": 100}),
    ],
)
def test_config_round_trip(frontend, kwargs, waveform):
    module = frontend(**kwargs).eval()
    rebuilt = frontend(**module.config()).eval()
    assert rebuilt.config() == module.config()
    assert torch.equal(rebuilt(waveform), module(waveform))
    buffers = dict(rebuilt.named_buffers())
    for name, buffer in module.named_buffers():
        assert torch.equal(buffer, buffers[name]), name


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_features_stay_float32_under_autocast(frontend, waveform):
    module = frontend().eval()
    expected = module(waveform)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        features = module(waveform)
    assert features.dtype == torch.float32
    torch.testing.assert_close(features, expected)
