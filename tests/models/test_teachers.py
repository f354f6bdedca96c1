"""Teachers: shapes, local-only checkpoint loading and its adaptations, and no network use."""

from __future__ import annotations

import re
import socket
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import huggingface_hub
import pytest
import safetensors.torch
import timm
import torch
from torch import nn

import asc_kd.models
from asc_kd.models.audio_spectrogram_transformer import ast
from asc_kd.models.frontends import ASTFbank, PasstMel
from asc_kd.models.passt import passt
from asc_kd.models.pretrained import WeightsError, fit_grid, load_pretrained
from asc_kd.models.timm_teachers import convnext, efficientnet_b2, swin, timm_model
from asc_kd.tasks.classification import ClassificationTask

SMALL_VIT = {"embed_dim": 64, "depth": 2, "num_heads": 2}

#: name -> (builder, small keyword arguments, input shape)
TEACHERS: dict[str, tuple[Callable[..., nn.Module], dict, tuple[int, ...]]] = {
    "passt": (passt, SMALL_VIT, (2, 1, 128, 100)),
    "ast": (ast, SMALL_VIT, (2, 1, 128, 98)),
    "efficientnet_b2": (efficientnet_b2, {}, (2, 1, 64, 64)),
    "convnext": (convnext, {}, (2, 1, 64, 64)),
    "swin": (swin, {}, (2, 1, 64, 64)),
}


def _refuse_network(*args, **kwargs):
    raise AssertionError("a teacher tried to reach the network")


@pytest.fixture(scope="module", autouse=True)
def no_network() -> Iterator[None]:
    """Every test here, and the module's fixtures, run with all download paths blocked."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _refuse_network)
        patch.setattr(socket.socket, "connect_ex", _refuse_network)
        patch.setattr(socket, "create_connection", _refuse_network)
        patch.setattr(urllib.request, "urlopen", _refuse_network)
        patch.setattr(huggingface_hub, "hf_hub_download", _refuse_network)
        patch.setattr(torch.hub, "load_state_dict_from_url", _refuse_network)
        patch.setattr(torch.hub, "download_url_to_file", _refuse_network)
        yield


def build(name: str, **overrides) -> nn.Module:
    builder, kwargs, _ = TEACHERS[name]
    if overrides.get("checkpoint") is not None:
        return builder(**{**kwargs, **overrides}).eval()
    with pytest.warns(UserWarning, match="random weights"):
        return builder(**{**kwargs, **overrides}).eval()


@pytest.fixture(scope="module")
def teachers() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: build(name) for name in TEACHERS}


def example(name: str) -> torch.Tensor:
    return torch.randn(TEACHERS[name][2], generator=torch.Generator().manual_seed(1))


def test_network_guard_is_active() -> None:
    with pytest.raises(AssertionError, match="network"):
        urllib.request.urlopen("https://github.com")


@pytest.mark.parametrize("name", list(TEACHERS))
def test_teacher_maps_spectrogram_to_logits(
    name: str, teachers: dict[str, nn.Module], capfd: pytest.CaptureFixture
) -> None:
    model = teachers[name]
    x = example(name)
    with torch.no_grad():
        logits = model.eval()(x)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    with torch.no_grad():
        assert model.train()(x).shape == (2, 10)  # patchout and dropout paths
    model.eval()
    assert capfd.readouterr().out == ""  # hear21passt's first-forward prints are silenced


@pytest.mark.parametrize(("builder", "frontend"), [(passt, PasstMel), (ast, ASTFbank)], ids=["passt", "ast"])
def test_full_size_defaults_fit_their_frontend(builder: Callable[..., nn.Module], frontend: type) -> None:
    """The default input length is 1 s of the teacher's own front-end."""
    with pytest.warns(UserWarning, match="random weights"):
        model = builder().eval()
    assert 80e6 < sum(p.numel() for p in model.parameters()) < 90e6
    with torch.no_grad():
        logits = model(frontend().eval()(torch.randn(1, 32000)))
    assert logits.shape == (1, 10)


@pytest.mark.parametrize(
    ("name", "suffix"),
    [("passt", ".pt"), ("ast", ".pth"), ("efficientnet_b2", ".safetensors"), ("swin", ".pt")],
)
def test_checkpoint_round_trip(
    name: str, suffix: str, teachers: dict[str, nn.Module], tmp_path: Path
) -> None:
    model = teachers[name].eval()
    path = tmp_path / f"{name}{suffix}"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if suffix == ".safetensors":
        safetensors.torch.save_file(state, path)
    else:
        torch.save(state, path)
    loaded = build(name, checkpoint=str(path))
    x = example(name)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: {"state_dict": {f"model.{k}": v for k, v in s.items()}, "epoch": 3},  # our Lightning
        lambda s: {f"module.{k}": v for k, v in s.items()},  # DataParallel, as AST's checkpoints
        lambda s: {"model": s},  # DeiT
    ],
    ids=["lightning", "dataparallel", "model"],
)
def test_checkpoint_containers_are_unwrapped(wrap: Callable[[dict], dict], tmp_path: Path) -> None:
    source = build("ast")
    torch.save(wrap(source.state_dict()), tmp_path / "ast.ckpt")
    loaded = build("ast", checkpoint=tmp_path / "ast.ckpt")
    x = example("ast")
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)


def test_tensors_the_model_lacks_are_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """AST's published checkpoints carry DeiT's unused ImageNet heads, ``v.head`` and ``v.head_dist``."""
    state = {**build("ast").state_dict(), "v.head.weight": torch.zeros(1000, 64)}
    torch.save(state, tmp_path / "ast.pth")
    build("ast", checkpoint=tmp_path / "ast.pth")
    assert "ignored 1 tensors" in caplog.text and "v.head.weight" in caplog.text


def test_rgb_stem_is_summed_and_imagenet_head_dropped(tmp_path: Path) -> None:
    imagenet = timm.create_model("efficientnet_b2", pretrained=False, in_chans=3, num_classes=1000)
    state = imagenet.state_dict()
    torch.save(state, tmp_path / "efficientnet_b2.pth")
    model = efficientnet_b2(checkpoint=tmp_path / "efficientnet_b2.pth")
    loaded = model.state_dict()
    torch.testing.assert_close(loaded["conv_stem.weight"], state["conv_stem.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(loaded["blocks.3.0.conv_pw.weight"], state["blocks.3.0.conv_pw.weight"])
    assert loaded["classifier.weight"].shape == (10, 1408)


def test_audioset_classifier_is_replaced(tmp_path: Path) -> None:
    audioset = build("passt", n_classes=527)
    state = audioset.state_dict()
    torch.save(state, tmp_path / "passt.pt")
    loaded = build("passt", checkpoint=tmp_path / "passt.pt").state_dict()
    assert loaded["head.1.weight"].shape == (10, 64) and loaded["head_dist.weight"].shape == (10, 64)
    torch.testing.assert_close(loaded["head.0.weight"], state["head.0.weight"])  # its LayerNorm stays
    torch.testing.assert_close(loaded["blocks.1.mlp.fc2.weight"], state["blocks.1.mlp.fc2.weight"])


def test_ast_positional_embeddings_follow_the_input_length(tmp_path: Path) -> None:
    long = build("ast", input_tdim=98)  # 12 x 9 patches
    torch.save(long.state_dict(), tmp_path / "ast98.pt")
    short = build("ast", input_tdim=50, checkpoint=tmp_path / "ast98.pt")  # 12 x 4 patches
    old, new = long.v.pos_embed.detach(), short.v.pos_embed.detach()
    torch.testing.assert_close(new[:, :2], old[:, :2])  # class and distillation tokens
    middle = old[:, 2:].reshape(1, 12, 9, -1)[:, :, 2:6]  # AST crops the middle columns
    torch.testing.assert_close(new[:, 2:], middle.reshape(1, 48, -1))
    assert short(torch.randn(1, 1, 128, 50)).shape == (1, 10)

    torch.save(short.state_dict(), tmp_path / "ast50.pt")
    grown = build("ast", input_tdim=98, checkpoint=tmp_path / "ast50.pt")  # interpolated
    assert grown(torch.randn(1, 1, 128, 98)).shape == (1, 10)


@pytest.mark.parametrize(
    ("source_grid", "rows", "cols"),
    [((12, 101), slice(0, 12), slice(46, 55)), ((16, 16), slice(2, 14), slice(4, 13))],
    ids=["audioset-1024-frames", "imagenet-square"],
)
def test_ast_crops_published_grids_as_ast_does(
    source_grid: tuple[int, int], rows: slice, cols: slice, tmp_path: Path
) -> None:
    """AudioSet AST (12 x 101 patches) and square ImageNet grids are cropped around the middle."""
    state = build("ast").state_dict()
    grid = torch.randn(1, *source_grid, 64)
    state["v.pos_embed"] = torch.cat([state["v.pos_embed"][:, :2], grid.flatten(1, 2)], dim=1)
    torch.save(state, tmp_path / "ast.pt")
    loaded = build("ast", checkpoint=tmp_path / "ast.pt").v.pos_embed.detach()
    torch.testing.assert_close(loaded[:, 2:], grid[:, rows, cols].reshape(1, 108, 64))


@pytest.mark.filterwarnings("ignore:Input image size")
def test_passt_time_embeddings_are_cropped_like_its_forward(tmp_path: Path) -> None:
    """A PaSST built for 2 s and run on 1 s uses its first time embeddings; loading matches that."""
    long = build("passt", input_tdim=200)
    torch.save(long.state_dict(), tmp_path / "passt.pt")
    short = build("passt", input_tdim=100, checkpoint=tmp_path / "passt.pt")
    assert short.time_new_pos_embed.shape[-1] == 10
    x = example("passt")
    with torch.no_grad():
        torch.testing.assert_close(short(x), long(x), rtol=0, atol=0)


def test_fit_grid_crops_or_interpolates_each_axis() -> None:
    grid = torch.arange(12.0).reshape(1, 1, 3, 4)
    assert fit_grid(grid, (3, 2), "start").flatten().tolist() == [0, 1, 4, 5, 8, 9]
    assert fit_grid(grid, (1, 2), "center").flatten().tolist() == [5, 6]
    grown = fit_grid(grid, (3, 8), "start")
    assert grown.shape == (1, 1, 3, 8) and grown[0, 0, 1, 0] == 4 and grown[0, 0, 1, -1] == 7


def test_wrong_shape_names_parameter_and_shapes(tmp_path: Path) -> None:
    state = build("ast").state_dict()
    state["v.blocks.0.mlp.fc1.weight"] = torch.zeros(5, 5)
    torch.save(state, tmp_path / "ast.pt")
    with pytest.raises(ValueError, match=re.escape("'v.blocks.0.mlp.fc1.weight'")) as error:
        build("ast", checkpoint=tmp_path / "ast.pt")
    assert "(5, 5)" in str(error.value) and "(256, 64)" in str(error.value)


def test_checkpoint_of_another_architecture_is_refused(tmp_path: Path) -> None:
    torch.save(build("passt").state_dict(), tmp_path / "passt.pt")
    with pytest.raises(ValueError, match="lacks"):
        load_pretrained(build("ast"), tmp_path / "passt.pt")


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("passt", "https://github.com/kkoutini/PaSST/releases"),
        ("ast", "https://github.com/YuanGongND/ast"),
        ("efficientnet_b2", "https://huggingface.co/timm/efficientnet_b2"),
        ("convnext", "https://huggingface.co/timm/convnext_tiny"),
        ("swin", "https://huggingface.co/timm/swin_tiny_patch4_window7_224"),
    ],
)
def test_missing_checkpoint_says_where_it_is_published(name: str, url: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pt"
    with pytest.raises(WeightsError, match=re.escape(url)) as error:
        TEACHERS[name][0](checkpoint=str(missing))
    message = str(error.value)
    assert str(missing) in message and "\n" not in message  # one line
    assert "--model.init_args.model_kwargs.checkpoint null" in message  # how to go without
    if name == "ast":
        assert "audioset_10_10_0.4593.pth" in message


@pytest.mark.parametrize("value", [None, "null", "None", ""])
def test_no_weights_means_random_weights_with_a_warning(value) -> None:
    with pytest.warns(UserWarning, match="random weights"):
        passt(**SMALL_VIT, checkpoint=value)


def test_load_pretrained_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="missing.pt"):
        load_pretrained(nn.Linear(2, 2), tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match="is a directory"):
        load_pretrained(nn.Linear(2, 2), tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("bad.pth", b"not a torch file", "is not a readable PyTorch weights file"),
        (
            "bad.safetensors",
            b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}",
            "is not a readable safetensors weights file",
        ),
    ],
)
def test_an_unreadable_weights_file_is_named(tmp_path: Path, name: str, content: bytes, problem: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=problem) as error:
        load_pretrained(nn.Linear(2, 2), path)
    assert str(path) in str(error.value)


def test_weights_with_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "objects.pt"
    torch.save({"weight": torch.zeros(2, 2), "extra": nn.Linear(2, 2)}, path)
    with pytest.raises(WeightsError, match="pickled objects or code") as error:
        load_pretrained(nn.Linear(2, 2), path)
    assert "weights_only=False" not in str(error.value)


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="passt_s_swa_p16_128_ap476"):
        passt("passt_imaginary")
    with pytest.raises(RuntimeError, match="Unknown model"):
        timm_model("no_such_timm_model")


def test_classification_task_runs_ast_teacher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(asc_kd.models.MODELS, "ast", ast)
    with pytest.warns(UserWarning, match="random weights"):
        task = ClassificationTask(model="ast", model_kwargs=SMALL_VIT, frontend="ast_fbank").eval()
    with torch.no_grad():
        assert task(torch.randn(2, 32000)).shape == (2, 10)


@pytest.mark.parametrize("training", [False, True])
def test_fused_attention_matches_hear21passt(training: bool) -> None:
    """``attention="fused"`` (SDPA) and hear21passt's own attention share parameters and agree."""
    torch.manual_seed(0)
    fused = passt(**SMALL_VIT, n_classes=10, attention="fused")
    manual = passt(**SMALL_VIT, n_classes=10, attention="manual")
    manual.load_state_dict(fused.state_dict())
    assert type(fused.blocks[0].attn).__name__ == "FusedAttention"
    assert type(manual.blocks[0].attn).__name__ == "Attention"
    x = torch.randn(3, 1, 128, 100)
    fused.train(training), manual.train(training)
    torch.manual_seed(1)  # patchout draws the same patches in both
    a = fused(x)
    torch.manual_seed(1)
    b = manual(x)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    if training:  # gradients agree too
        a.square().sum().backward()
        b.square().sum().backward()
        for (name, p), q in zip(fused.named_parameters(), manual.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, atol=1e-4, rtol=1e-3, msg=name)


def _passt_pair(fused_cpu_bf16: bool) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    fused = passt(**SMALL_VIT, n_classes=10, attention="fused")
    manual = passt(**SMALL_VIT, n_classes=10, attention="manual")
    manual.load_state_dict(fused.state_dict())
    for block in fused.blocks:
        block.attn.fused_cpu_bf16 = fused_cpu_bf16
    return fused.train(), manual.train()


def _sdpa_calls(monkeypatch: pytest.MonkeyPatch) -> list[torch.dtype]:
    import asc_kd.models.passt as passt_module

    calls: list[torch.dtype] = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def counted(q: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        calls.append(q.dtype)
        return sdpa(q, *args, **kwargs)

    monkeypatch.setattr(passt_module.F, "scaled_dot_product_attention", counted)
    return calls


def test_passt_attention_in_bf16_on_a_cpu_without_amx_is_hear21passts_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # There the fused CPU kernel is the slower one (bench attention): the matmul path must give
    # hear21passt's values and gradients bit for bit, and never call the fused kernel.
    calls = _sdpa_calls(monkeypatch)
    fused, manual = _passt_pair(fused_cpu_bf16=False)
    x = torch.randn(3, 1, 128, 100)
    outputs = []
    for model in (fused, manual):
        torch.manual_seed(1)  # the same patchout
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs.append(model(x))
        outputs[-1].float().square().sum().backward()
    assert calls == []
    assert outputs[0].dtype == torch.bfloat16 and torch.equal(outputs[0], outputs[1])
    assert fused.blocks[0].attn.qkv.weight.grad is not None
    for (name, p), q in zip(fused.named_parameters(), manual.parameters(), strict=True):
        assert (p.grad is None and q.grad is None) or torch.equal(p.grad, q.grad), name


@pytest.mark.parametrize(("fused_cpu_bf16", "bf16"), [(True, True), (False, False), (True, False)])
def test_passt_attention_takes_the_fused_kernel_with_amx_or_in_fp32(
    monkeypatch: pytest.MonkeyPatch, fused_cpu_bf16: bool, bf16: bool
) -> None:
    calls = _sdpa_calls(monkeypatch)
    fused, _ = _passt_pair(fused_cpu_bf16)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        fused(torch.randn(2, 1, 128, 100))
    assert calls == [torch.bfloat16 if bf16 else torch.float32] * SMALL_VIT["depth"]


@pytest.mark.parametrize("amx", [True, False])
def test_passt_attention_takes_the_fused_bf16_kernel_where_the_cpu_has_amx(
    monkeypatch: pytest.MonkeyPatch, amx: bool
) -> None:
    # Both hosts' branches, on any host: the answer is read when the model is built.
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    model = passt(**SMALL_VIT, n_classes=10, attention="fused")
    assert [block.attn.fused_cpu_bf16 for block in model.blocks] == [amx] * SMALL_VIT["depth"]
