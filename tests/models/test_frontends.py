"""Front-ends against independent computations of their definitions, and every recipe's masks."""

import math

import numpy as np
import pytest
import torch
import torchaudio
import yaml
from torchaudio.compliance import kaldi

from asc_kd.core.errors import ConfigError
from asc_kd.models import frontends
from asc_kd.models.frontends import (
    ASTFbank,
    PasstMel,
    StudentMel,
    apply_banks,
    band_spans,
    draw_mel_bands,
    get_frontend,
    power_spectrum,
    stft_power,
)
from asc_kd.recipes import RECIPES

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
        (StudentMel, {"mel_scale": "kaldi", "fmax_aug_range": 1000, "fmin_aug_range": 10, "freqm": 48}),
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


# -- CP-JKU's student front-end -----------------------------------------------------------------


def _kaldi_mel_banks_numpy(n_mels: int, n_fft: int, rate: float, low: float, high: float) -> np.ndarray:
    """Kaldi's triangular mel banks from their definition (mel = 1127 ln(1 + f / 700))."""

    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    delta = (mel(high) - mel(low)) / (n_mels + 1)
    bins = mel(np.arange(n_fft // 2) * rate / n_fft)  # Kaldi leaves out the Nyquist bin
    banks = np.zeros((n_mels, n_fft // 2 + 1))
    for i in range(n_mels):
        left, centre, right = mel(low) + delta * np.array([i, i + 1, i + 2])
        up = (bins - left) / (centre - left)
        down = (right - bins) / (right - centre)
        banks[i, : n_fft // 2] = np.maximum(0.0, np.minimum(up, down))
    return banks


def _cpjku_student_mel(audio: np.ndarray, hop: int = 737, fmax: float = 16000.0) -> np.ndarray:
    """AugmentMelSTFT's eval path written from its definition in numpy, float64: pre-emphasis
    0.97, centred STFT (reflect padding, symmetric Hann 2048), power, Kaldi mel banks from 0 to
    ``fmax``, log(x + 1e-5), (x + 4.5) / 5."""
    n_fft = 2048
    emphasised = audio[:, 1:] - 0.97 * audio[:, :-1]
    padded = np.pad(emphasised, ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
    n_frames = 1 + emphasised.shape[1] // hop
    window = np.hanning(n_fft)  # symmetric
    frames = np.stack([padded[:, t * hop : t * hop + n_fft] for t in range(n_frames)], axis=1)
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2  # (batch, frames, bins)
    mel = _kaldi_mel_banks_numpy(256, n_fft, 32000.0, 0.0, fmax) @ power.transpose(0, 2, 1)
    return (np.log(mel + 1e-5) + 4.5) / 5.0


def test_student_mel_in_cpjku_convention_matches_its_definition(waveform):
    frontend = StudentMel(preemphasis=0.97, mel_scale="kaldi", periodic_window=False).eval()
    ours = frontend(waveform)[:, 0].double().numpy()
    reference = _cpjku_student_mel(waveform.double().numpy())
    assert ours.shape == reference.shape == (2, 256, 44)
    assert np.abs(ours - reference).max() < 1e-4
    # The torchaudio-style default is a different front-end: a model must keep its own.
    default = StudentMel().eval()(waveform)[:, 0].double().numpy()
    assert np.abs(default - reference).max() > 1.0


def _student_recipe_frontend(**overrides) -> StudentMel:
    task = yaml.safe_load((RECIPES / "students" / "kd.yaml").read_text())["model"]["init_args"]
    assert task["frontend"] == "student_mel"
    return StudentMel(**{**task["frontend_kwargs"], **overrides})


def _kaldi_mel(f: float) -> float:
    return 1127.0 * math.log(1.0 + f / 700.0)


def test_student_recipe_eval_front_end_is_cpjku_students(waveform):
    """CP-JKU's students set fmax=None, fmax_aug_range=1000: their eval band ends at
    32000 // 2 - 1000 // 2 = 15500 Hz, not at Nyquist."""
    frontend = _student_recipe_frontend().eval()
    assert frontend.fmax == 15500.0
    banks = frontend.mel_fb.double()
    # FFT bin k sits at k * 32000 / 2048 = 15.625 k Hz: bin 992 is 15500 Hz exactly, the top
    # edge, where the last filter reaches 0; bin 991 (15484.375 Hz) is the last one it weights.
    assert banks[:, 992:].abs().max() == 0
    # 256 filters: 258 equally spaced mel edges from 0. Kaldi computes in float32: two mel values
    # near 3540 (float32 spacing 2.4e-4) over a 13.8-mel step differ from float64 by up to ~4e-5.
    delta = _kaldi_mel(15500.0) / 257
    top = (_kaldi_mel(15500.0) - _kaldi_mel(15484.375)) / delta  # 0.0789, falling edge
    assert banks[255, 991].item() == pytest.approx(top, abs=5e-5)
    # The first filter peaks at 13.8 mel (8.6 Hz), so 15.625 Hz (24.9 mel) is on its falling side.
    assert banks[0, 1].item() == pytest.approx(2 - _kaldi_mel(15.625) / delta, abs=2e-5)  # 0.194
    assert banks[0, 0] == 0  # the left edge, 0 Hz
    # Whole output on the same audio against the numpy definition with fmax = 15500.
    ours = frontend(waveform)[:, 0].double().numpy()
    reference = _cpjku_student_mel(waveform.double().numpy(), fmax=15500.0)
    assert np.abs(ours - reference).max() < 1e-4
    # Up to Nyquist instead, the top bins move by far more than that.
    assert np.abs(_cpjku_student_mel(waveform.double().numpy(), fmax=16000.0) - reference).max() > 0.1
    assert torch.equal(frontend(waveform), frontend(waveform))


def test_mel_band_jitter_stays_in_its_stated_range():
    lows, highs = draw_mel_bands(0.0, 15500.0, 10, 1000, n=20000, generator=torch.Generator().manual_seed(0))
    # low = fmin + randint(10): 0..9 Hz; high = 15500 + 500 - randint(1000): 15001..16000 Hz.
    assert set(lows.tolist()) == set(range(10))
    assert highs.min() == 15001 and highs.max() == 16000
    assert len(set(highs.tolist())) > 990
    lows, highs = draw_mel_bands(0.0, 15500.0, 1, 1, n=100)
    assert set(lows.tolist()) == {0} and set(highs.tolist()) == {15500}


def test_student_training_draws_a_fresh_band_per_batch_from_the_global_seed(waveform):
    frontend = _student_recipe_frontend(fmin_aug_range=10, freqm=0).train()
    torch.manual_seed(3)
    low, high = (float(v[0]) for v in draw_mel_bands(0.0, 15500.0, 10, 1000))
    torch.manual_seed(3)
    jittered = frontend(waveform)
    fixed = _student_recipe_frontend(fmin=low, fmax=high, fmax_aug_range=1, freqm=0).eval()
    assert torch.equal(jittered, fixed(waveform))
    assert not torch.equal(jittered, frontend.eval()(waveform))
    frontend.train()
    assert not torch.equal(frontend(waveform), frontend(waveform))  # another band each batch


def test_student_recipe_jitters_the_top_edge_alone_with_its_own_values(waveform):
    """kd.yaml: ``fmin_aug_range: 1`` (fmin stays 0) and ``fmax_aug_range: 1000``. Under
    ``torch.manual_seed(0)`` the batch's draws are randint(1) = 0 and randint(1000) = 239, so
    its band is 0 to 15500 + 500 - 239 = 15761 Hz, against 15500 Hz in eval."""
    frontend = _student_recipe_frontend(freqm=0).train()
    assert (frontend.fmin_aug_range, frontend.fmax_aug_range, frontend.fmax) == (1, 1000, 15500.0)
    torch.manual_seed(0)
    assert (torch.randint(1, (1,)).item(), torch.randint(1000, (1,)).item()) == (0, 239)
    torch.manual_seed(0)
    jittered = frontend(waveform)
    band = _student_recipe_frontend(fmax=15761.0, fmax_aug_range=1, freqm=0).eval()
    assert torch.equal(jittered, band(waveform))
    assert not torch.equal(jittered, frontend.eval()(waveform))


def test_student_recipe_masks_up_to_47_mel_bins_in_training_only():
    # fmax 15500 without jitter: the recipe's eval band with only the masks left on.
    frontend = _student_recipe_frontend(fmax=15500.0, fmax_aug_range=1)
    assert frontend.freqm == 48 and frontend.timem == 0
    waveform = 0.1 * torch.randn(64, 32000, generator=torch.Generator().manual_seed(1))
    clean = frontend.eval()(waveform)[:, 0]
    torch.manual_seed(0)
    batch = frontend.train()(waveform)
    masked = batch[:, 0]
    widths = []
    for example in range(64):
        rows = (masked[example] != clean[example]).any(-1).nonzero().flatten()
        if len(rows):
            assert rows[-1] - rows[0] + 1 == len(rows)  # one band of bins
            assert (masked[example, rows] == 0.9).all()  # log-mel 0 after (x + 4.5) / 5
        widths.append(len(rows))
    assert max(widths) <= 47  # torchaudio's mask width is floor(U(0, 48))
    assert max(widths) >= 30 and sum(w > 0 for w in widths) > 50
    # contiguous as the unmasked output, which for one channel is also channels-last: the convs
    # take it without a copy
    assert batch.is_contiguous() and batch.is_contiguous(memory_format=torch.channels_last)


def test_student_mel_defaults_do_not_augment(waveform):
    frontend = StudentMel(preemphasis=0.97, mel_scale="kaldi", periodic_window=False)
    assert frontend.fmax == 16000
    state = torch.get_rng_state()
    assert torch.equal(frontend.train()(waveform), frontend.eval()(waveform))
    assert torch.equal(torch.get_rng_state(), state)  # draws nothing: other recipes' seeds hold


def test_student_mel_refuses_a_jitter_beyond_nyquist():
    with pytest.raises(ValueError, match="Nyquist"):
        StudentMel(fmax=16000.0, fmax_aug_range=1000)


def test_student_mel_refuses_an_unknown_mel_scale():
    with pytest.raises(ValueError, match="mel_scale"):
        StudentMel(mel_scale="slaney")


# -- every recipe's masks fit 1-s clips -------------------------------------------------------------


def _recipe_frontends() -> list[tuple[str, str, dict]]:
    found = []
    for path in sorted(RECIPES.rglob("*.yaml")):
        config = yaml.safe_load(path.read_text()) or {}
        init = ((config.get("model") or {}).get("init_args")) or {}
        if name := init.get("frontend"):
            found.append((str(path.relative_to(RECIPES)), name, init.get("frontend_kwargs") or {}))
    return found


RECIPE_FRONTENDS = _recipe_frontends()


def test_every_teacher_and_student_recipe_is_checked():
    names = {path for path, _, _ in RECIPE_FRONTENDS}
    assert {"teachers/passt.yaml", "teachers/efficientnet_b2.yaml", "teachers/convnext.yaml"} <= names
    assert {"teachers/swin.yaml", "teachers/ast.yaml", "students/kd.yaml"} <= names


@pytest.mark.parametrize(("path", "name", "kwargs"), RECIPE_FRONTENDS, ids=[r[0] for r in RECIPE_FRONTENDS])
def test_recipe_front_end_masks_under_a_quarter_of_a_1_s_clip(path: str, name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    frontend = get_frontend(name, **kwargs).train()
    waveform = 0.1 * torch.randn(64, 32000)
    features = frontend(waveform)[:, 0]  # (clips, bins, frames)
    masked = (features == features[:, :1, :]).all(dim=1)  # a time-masked frame is constant over bins
    assert masked.float().mean() < 0.25, f"{path}: {masked.float().mean():.0%} of the frames masked"


def test_passt_default_mask_fits_the_clip_length():
    torch.manual_seed(0)
    frontend = PasstMel().train()  # timem=192 was made for 10-s clips
    short = frontend(0.1 * torch.randn(64, 32000))[:, 0]
    share = (short == short[:, :1, :]).all(dim=1).float().mean()
    assert share < 0.15  # capped at 20 % of 100 frames, ~10 % on average


@pytest.mark.parametrize("frontend", [StudentMel(), StudentMel(mel_scale="kaldi"), PasstMel(), ASTFbank()])
def test_banded_filterbank_product_equals_the_dense_one(frontend):
    banks = frontend.mel_fb
    spans = band_spans(banks)
    power = torch.rand(3, banks.shape[1], 7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(apply_banks(banks, spans, power), banks @ power, atol=1e-6, rtol=1e-5)
    # every non-zero filter entry lies inside its block's span, and the spans are sparse
    inside = torch.zeros_like(banks, dtype=torch.bool)
    for r0, r1, c0, c1 in spans:
        inside[r0:r1, c0:c1] = True
    assert not banks[~inside].any()
    assert inside.float().mean() < 0.3


def test_band_spans_of_empty_filters_give_exact_zeros():
    banks = torch.zeros(40, 9)
    banks[20:24, 3:5] = 1.0  # blocks 0 and 2 have no non-zero entry
    spans = band_spans(banks, rows=16)
    assert spans == ((0, 16, 0, 1), (16, 32, 3, 5), (32, 40, 0, 1))
    power = torch.rand(2, 9, 4)
    out = apply_banks(banks, spans, power)
    assert out.shape == (2, 40, 4)
    assert torch.equal(out[:, :16], torch.zeros(2, 16, 4))
    torch.testing.assert_close(out, banks @ power)


def test_power_spectrum_is_squared_magnitude():
    spec = torch.complex(torch.tensor([3.0, 0.0, -1.5]), torch.tensor([4.0, -2.0, 2.0]))
    torch.testing.assert_close(power_spectrum(spec), torch.tensor([25.0, 4.0, 6.25]))


def test_stft_power_of_a_hand_computed_clip():
    """n_fft 4, hop 2, a rectangular window: [1..5] reflect-padded by 2 is [3,2,1,2,3,4,5,4,3],
    whose frames [3,2,1,2], [1,2,3,4], [3,4,5,4] have |DFT|^2 (bins 0..2) as below."""
    power = stft_power(torch.tensor([[1.0, 2, 3, 4, 5]]), 4, 2, torch.ones(4))
    expected = torch.tensor([[[64.0, 100.0, 256.0], [4.0, 8.0, 4.0], [0.0, 4.0, 0.0]]])
    torch.testing.assert_close(power, expected)
    # pre-emphasis 0.5 of [1..6] is [1.5, 2, 2.5, 3, 3.5]: half of [3, 4, 5, 6, 7], a quarter of its power
    emphasised = stft_power(torch.tensor([[1.0, 2, 3, 4, 5, 6]]), 4, 2, torch.ones(4), preemphasis=0.5)
    torch.testing.assert_close(
        emphasised, stft_power(torch.tensor([[3.0, 4, 5, 6, 7]]), 4, 2, torch.ones(4)) / 4
    )


@pytest.mark.parametrize(
    ("n_fft", "win_length", "hop_length", "samples", "preemphasis"),
    [
        (2048, 2048, 737, 32000, 0.97),
        (1024, 800, 320, 32000, 0.0),
        (512, 400, 160, 3002, 0.97),
        (511, 511, 100, 257, 0.0),
    ],
    ids=["student", "passt-window-shorter-than-fft", "odd-length", "odd-fft-shortest-clip"],
)
def test_stft_power_equals_torch_stft(n_fft, win_length, hop_length, samples, preemphasis):
    x = torch.randn(3, samples, generator=torch.Generator().manual_seed(1))
    window = torch.hann_window(win_length, periodic=False)
    y = torch.add(x[:, 1:], x[:, :-1], alpha=-preemphasis) if preemphasis else x
    spec = torch.stft(
        y, n_fft, hop_length, win_length, window, center=True, pad_mode="reflect", return_complex=True
    )
    got = stft_power(x, n_fft, hop_length, window, preemphasis)
    assert got.shape == (3, n_fft // 2 + 1, 1 + (y.shape[-1] - n_fft % 2) // hop_length)
    assert torch.equal(got, power_spectrum(spec))


def test_stft_power_passes_gradients_as_torch_stft_does():
    x = torch.randn(2, 4000, generator=torch.Generator().manual_seed(2), requires_grad=True)
    window = torch.hann_window(512, periodic=False)
    stft_power(x, 512, 160, window, preemphasis=0.97).sum().backward()
    ours, x.grad = x.grad, None
    y = torch.add(x[:, 1:], x[:, :-1], alpha=-0.97)
    power_spectrum(torch.stft(y, 512, 160, 512, window, center=True, return_complex=True)).sum().backward()
    torch.testing.assert_close(ours, x.grad)


def test_stft_power_transforms_a_cache_sized_chunk_of_clips_at_a_time(monkeypatch):
    """On a CPU: a student clip is 44 frames of 2048 float32 samples, 360,448 bytes; 5 clips fit
    in the 2 MB chunk (1,802,240 bytes), so a batch of 64 is 12 chunks of 5 clips and one of 4."""
    shapes, rfft = [], torch.fft.rfft
    monkeypatch.setattr(torch.fft, "rfft", lambda frames: shapes.append(tuple(frames.shape)) or rfft(frames))
    x = torch.randn(64, 32000, generator=torch.Generator().manual_seed(3))
    power = stft_power(x, 2048, 737, torch.hann_window(2048, periodic=False), preemphasis=0.97)
    assert shapes == [(5, 44, 2048)] * 12 + [(4, 44, 2048)]
    assert power.shape == (64, 1025, 44)
    # another device (meta: shapes only) transforms the whole batch in one call
    shapes.clear()
    stft_power(x.to("meta"), 2048, 737, torch.ones(2048, device="meta"), preemphasis=0.97)
    assert shapes == [(64, 44, 2048)]


class _StftPower(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stft_power(x, 512, 160, torch.hann_window(512, periodic=False), preemphasis=0.97)


def test_a_trace_or_an_export_transforms_the_whole_batch_so_it_takes_any_batch():
    """A trace would fix the number of chunks it saw (the int8 artifact is traced on 2 clips,
    the ONNX graph exported with a symbolic batch): traced on 2 clips, the front-end gives the
    eager values on 64 (13 chunks eagerly); exported on 7 clips, one rfft, the eager values on 64."""
    frontend = StudentMel(preemphasis=0.97, mel_scale="kaldi", periodic_window=False).eval()
    x = torch.randn(64, 32000, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        traced = torch.jit.trace(frontend, torch.zeros(2, 32000), check_trace=False)
        assert torch.equal(traced(x), frontend(x))
    # torch.export (the ONNX export's tracer) with a symbolic batch: one rfft in the graph
    program = torch.export.export(
        _StftPower(),
        (torch.zeros(7, 4000),),
        dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}},
    )
    ffts = [node for node in program.graph.nodes if "fft" in str(node.target)]
    assert len(ffts) == 1
    with torch.no_grad():
        assert torch.equal(program.module()(x[:, :4000]), _StftPower()(x[:, :4000]))


@pytest.mark.parametrize(
    "chunk_bytes",
    [1, 3 * 13 * 512 * 4, 1 << 30],
    ids=["smaller-than-one-clip", "three-of-seven-clips", "the-whole-batch"],
)
def test_stft_power_values_do_not_depend_on_the_chunks(monkeypatch, chunk_bytes):
    """7 clips of 4000 samples, pre-emphasised to 3999: 13 frames of 512 samples, 26,624 bytes
    a clip; chunks of one clip, of 3, 3 and 1, or the whole batch (one frame at a time for the
    single-clip case below a clip's bytes). Under autograd the whole batch, whatever the chunk."""
    monkeypatch.setattr(frontends, "STFT_CHUNK_BYTES", chunk_bytes)
    x = torch.randn(7, 4000, generator=torch.Generator().manual_seed(4), requires_grad=True)
    window = torch.hann_window(512, periodic=False)
    y = torch.add(x[:, 1:], x[:, :-1], alpha=-0.97)
    spec = torch.stft(y, 512, 320, 512, window, center=True, pad_mode="reflect", return_complex=True)
    expected = power_spectrum(spec)
    with torch.no_grad():
        assert torch.equal(stft_power(x, 512, 320, window, preemphasis=0.97), expected)
        assert torch.equal(stft_power(x[2], 512, 320, window, preemphasis=0.97), expected[2])  # one clip
    got = stft_power(x, 512, 320, window, preemphasis=0.97)
    assert torch.equal(got, expected)
    (got * torch.arange(13.0)).sum().backward()
    ours, x.grad = x.grad, None
    (expected * torch.arange(13.0)).sum().backward()
    torch.testing.assert_close(ours, x.grad)


def test_stft_power_keeps_the_windowed_frames_dtype_and_a_windows_gradient():
    """A float64 window widens float32 clips, as the whole batch's product does; a window that
    takes gradients gets torch.stft's (the whole batch under autograd: out= refuses it)."""
    x = torch.randn(3, 4000, generator=torch.Generator().manual_seed(6))
    window = torch.hann_window(512, periodic=False, dtype=torch.float64)
    with torch.no_grad():
        wide = stft_power(x, 512, 160, window)
        assert wide.dtype == torch.float64
        assert torch.equal(wide, stft_power(x.double(), 512, 160, window))  # float32 widens exactly
    window = torch.hann_window(512, periodic=False).requires_grad_()
    stft_power(x, 512, 160, window).sum().backward()
    ours, window.grad = window.grad, None
    power_spectrum(torch.stft(x, 512, 160, 512, window, center=True, return_complex=True)).sum().backward()
    torch.testing.assert_close(ours, window.grad)


def test_power_spectrum_writes_into_out():
    spec = torch.complex(torch.tensor([3.0, 0.0]), torch.tensor([4.0, -2.0]))
    out = torch.full((2,), -1.0)
    assert power_spectrum(spec, out=out) is out
    assert torch.equal(out, torch.tensor([25.0, 4.0]))


def test_stft_power_refuses_a_clip_shorter_than_half_a_frame_or_a_window_longer_than_the_fft():
    too_short = "a clip of 1024 samples is too short for an STFT of 2048 points: give at least 1025 samples"
    with pytest.raises(ConfigError, match=too_short):
        stft_power(torch.zeros(1, 1024), 2048, 737, torch.ones(2048))
    assert stft_power(torch.zeros(1, 1025), 2048, 737, torch.ones(2048)).shape == (1, 1025, 2)  # the least
    with pytest.raises(ConfigError, match="give at least 1026 samples"):  # pre-emphasis takes one
        stft_power(torch.zeros(1, 1025), 2048, 737, torch.ones(2048), preemphasis=0.97)
    with pytest.raises(ConfigError, match="a window of 600 samples is longer than the FFT's 512 points"):
        stft_power(torch.zeros(1, 4000), 512, 160, torch.ones(600))
