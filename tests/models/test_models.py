"""The model registry (names, import paths, registration) and the CP-ResNet presets: sizes,
shapes and the zero-logit start."""

from __future__ import annotations

import pytest
import torch

import asc_kd.models
from asc_kd.core.imports import ImportPathError
from asc_kd.deployment.complexity import count_complexity
from asc_kd.models import CPResNet, get_model, list_models, model_path, register_model, resolve_model
from asc_kd.models.cp_resnet import CP_RESNET_PRESETS

#: Measured with torchinfo on 1x1x256x44 (NeSsi's way); see the CP_RESNET_PRESETS comment for system 4.
MEASURED = {
    "system1": (127_684, 28_840_396),
    "system2": (80_580, 21_774_796),
    "system3": (80_580, 21_774_796),
    "system4": (64_196, 19_317_196),
}
#: BatchNorm folded into the convs: what NeSsi counted after quantization for the report's
#: Table 2 MEM of systems 2-4 (79.9K, 63.5K); system 1's 127.6K is the unfolded count.
FUSED = {"system1": 127_046, "system2": 79_942, "system3": 79_942, "system4": 63_558}


@pytest.mark.parametrize(("name", "params", "macs"), [(n, *v) for n, v in MEASURED.items()])
def test_cp_resnet_complexity(name: str, params: int, macs: int) -> None:
    complexity = count_complexity(get_model(name), (1, 1, 256, 44))
    assert (complexity.params, complexity.macs) == (params, macs)


@pytest.mark.parametrize("name", sorted(FUSED))
def test_fused_parameter_counts(name: str) -> None:
    complexity = count_complexity(get_model(name), (1, 1, 256, 44))
    assert complexity.params_fused == FUSED[name]
    assert complexity.summary()["params_fused"] == FUSED[name]
    # Hand count: every BN (2 x C parameters) follows a bias-free conv that gains C biases.
    channels = sum(m.num_features for m in get_model(name).modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert complexity.params - complexity.params_fused == channels


def test_models_are_students_or_teachers() -> None:
    assert set(list_models("students")) >= {"system1", "system2", "system3", "system4", "cp_mobile", "debug"}
    assert set(list_models("teachers")) == {"passt", "ast", "efficientnet_b2", "convnext", "swin", "timm"}
    assert sorted(list_models("students") + list_models("teachers")) == list_models()


@pytest.mark.parametrize("name", list_models("students"))
def test_every_registered_student_gives_logits(name: str) -> None:
    torch.manual_seed(0)
    model = get_model(name).eval()
    shape = getattr(model, "input_shape", (1, 1, 256, 44))
    with torch.no_grad():
        logits = model(torch.randn(3, *shape[1:]))
    assert logits.shape == (3, 10)
    assert torch.isfinite(logits).all()


def test_system2_and_system3_are_one_architecture() -> None:
    assert CP_RESNET_PRESETS["system2"] == CP_RESNET_PRESETS["system3"]
    system2, system3 = get_model("system2"), get_model("system3")
    assert repr(system2) == repr(system3)
    shapes2 = {k: v.shape for k, v in system2.state_dict().items()}
    shapes3 = {k: v.shape for k, v in system3.state_dict().items()}
    assert shapes2 == shapes3


def test_system1_stage3_feature_map() -> None:
    model = get_model("system1").eval()
    captured: list[torch.Size] = []
    handle = model.stages.register_forward_hook(lambda module, args, out: captured.append(out.shape))
    with torch.no_grad():
        model(torch.randn(1, 1, 256, 44))
    handle.remove()
    assert captured == [torch.Size([1, 92, 15, 10])]


def test_unknown_model_lists_registered_names() -> None:
    with pytest.raises(ValueError) as excinfo:
        get_model("system9")
    message = str(excinfo.value)
    assert "system9" in message
    for name in list_models():
        assert name in message


def test_registry_passes_keyword_overrides() -> None:
    model = get_model("system1", n_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 256, 44)).shape == (2, 7)


@pytest.mark.parametrize("name", sorted(CP_RESNET_PRESETS))
def test_cp_resnet_starts_at_uniform_prediction(name: str) -> None:
    torch.manual_seed(0)
    model = get_model(name)
    assert isinstance(model, CPResNet)
    assert torch.count_nonzero(model.head[0].weight) == 0
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(4, 1, 256, 44))
    assert torch.count_nonzero(logits) == 0
    torch.testing.assert_close(logits.softmax(-1), torch.full((4, 10), 0.1))


def test_reset_parameters_zeroes_a_trained_head() -> None:
    model = get_model("system1")
    torch.nn.init.normal_(model.head[0].weight)
    model.reset_parameters()
    assert torch.count_nonzero(model.head[0].weight) == 0


# -- your own model -----------------------------------------------------------------------------


def test_a_model_by_import_path(tmp_path, monkeypatch) -> None:
    (tmp_path / "mycnn.py").write_text(
        "import torch\n"
        "class TinyCNN(torch.nn.Module):\n"
        "    def __init__(self, n_classes=10, width=4):\n"
        "        super().__init__()\n"
        "        self.conv = torch.nn.Conv2d(1, width, 3)\n"
        "        self.head = torch.nn.Linear(width, n_classes)\n"
        "    def forward(self, x):\n"
        "        return self.head(self.conv(x).mean((2, 3)))\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("mycnn:TinyCNN", "mycnn.TinyCNN"):
        model = get_model(name, n_classes=13, width=2)
        assert type(model).__name__ == "TinyCNN" and model.head.out_features == 13
    assert resolve_model("mycnn:TinyCNN") is resolve_model("mycnn.TinyCNN")
    with pytest.raises(ImportPathError, match="cannot import module 'nomodule'"):
        get_model("nomodule.TinyCNN")
    with pytest.raises(ImportPathError, match="has no 'Missing'"):
        get_model("mycnn:Missing")


def test_register_model_gives_a_short_name(monkeypatch) -> None:
    monkeypatch.setattr(asc_kd.models, "MODELS", dict(asc_kd.models.MODELS))

    @register_model("two_layer")
    def two_layer(n_classes: int = 10) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(n_classes))

    assert "two_layer" in list_models("students")
    assert get_model("two_layer", n_classes=3)(torch.zeros(1, 1, 4, 4)).shape == (1, 3)
    assert model_path("two_layer") == f"{__name__}:test_register_model_gives_a_short_name.<locals>.two_layer"
    assert model_path("system1") is None
    # An import path is recorded in the same canonical form as a registered name.
    assert (
        model_path("torch.nn.Identity")
        == model_path("torch.nn:Identity")
        == "torch.nn.modules.linear:Identity"
    )
    with pytest.raises(ValueError, match="already registered"):
        register_model("system1")(two_layer)


def test_builders_without_n_classes_get_none() -> None:
    assert isinstance(get_model("debug", n_classes=4), torch.nn.Module)
    calls = []

    def fixed(width: int = 2) -> torch.nn.Module:
        calls.append(width)
        return torch.nn.Identity()

    asc_kd.models.MODELS["_fixed"] = fixed
    try:
        get_model("_fixed", n_classes=4, width=3)
    finally:
        del asc_kd.models.MODELS["_fixed"]
    assert calls == [3]


def _graph_calls(module: torch.nn.Module, x: torch.Tensor) -> str:
    """The code of the graph torch.compile traces for ``module(x)`` (no C++ compile)."""
    codes: list[str] = []

    def backend(graph_module: torch.fx.GraphModule, inputs: list) -> object:
        codes.append(graph_module.code)
        return graph_module.forward

    torch._dynamo.reset()
    torch.compile(module, backend=backend)(x)
    return "\n".join(codes)


@pytest.mark.parametrize(("shape", "kernel"), [((3, 8, 127, 21), 2), ((3, 8, 31, 10), (2, 1))])
def test_max_pool_compiled_for_training_is_aten_values_and_gradients(shape, kernel) -> None:
    """CP-ResNet's pool, compiled in training, gives eager ``nn.MaxPool2d``'s outputs and its
    gradients bit for bit, ties included (each window's gradient to its first maximum): bf16,
    channels-last, odd sizes whose last row and column no window covers."""
    from torch._dynamo.backends.registry import lookup_backend

    from asc_kd.models.cp_resnet import AtenMaxPool2d

    torch.manual_seed(0)
    x = torch.relu(torch.randn(shape)).mul(4).round().div(4)  # many ties, zeros among them
    x = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    eager_input, compiled_input = x.clone().requires_grad_(), x.clone().requires_grad_()
    expected = torch.nn.MaxPool2d(kernel, kernel)(eager_input)
    codes: list[str] = []

    def backend(graph_module: torch.fx.GraphModule, inputs: list) -> object:
        codes.append(graph_module.code)  # then autograd through AOTAutograd, as inductor's path
        return lookup_backend("aot_eager")(graph_module, inputs)

    torch._dynamo.reset()
    got = torch.compile(AtenMaxPool2d(kernel), backend=backend)(compiled_input)
    assert "torch.ops.asc_kd.max_pool2d.default" in "\n".join(codes)
    grad = torch.randn_like(expected)
    expected.backward(grad)
    got.backward(grad)
    assert torch.equal(got, expected)
    assert torch.equal(compiled_input.grad, eager_input.grad)
    assert compiled_input.grad[:, :, -1].abs().sum() == 0  # the uncovered last row
    assert (compiled_input.grad != 0).sum() == expected.numel()  # one gradient per window


def test_cp_resnet_compiled_for_training_pools_with_aten_kernels() -> None:
    """Compiled in training, system 1's three pools are the ``asc_kd::max_pool2d`` op (ATen's
    kernels, not inductor's lowering); in eval, without gradients, and uncompiled they are the
    plain pool, which int8 quantization and the complexity count see."""
    model = get_model("system1").train()
    x = torch.randn(2, 1, 256, 44)
    assert _graph_calls(model, x).count("torch.ops.asc_kd.max_pool2d.default") == 3
    with torch.no_grad():
        assert "asc_kd.max_pool2d" not in _graph_calls(model, x)
    assert "asc_kd.max_pool2d" not in _graph_calls(model.eval(), x)
    pools = [m for m in model.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert [p.kernel_size for p in pools] == [2, (2, 1), (2, 1)]
    assert all(p.stride == p.kernel_size for p in pools)
