"""The model registry and the CP-ResNet presets: sizes, shapes and the zero-logit start."""

from __future__ import annotations

import pytest
import torch

from asc_kd.complexity import count_complexity
from asc_kd.models import CPResNet, get_model, list_models
from asc_kd.models.cp_resnet import PRESETS

#: Measured with torchinfo on 1x1x256x44 (NeSsi's way); see the PRESETS comment for system 4.
MEASURED = {
    "system1": (127_684, 28_840_396),
    "system2": (80_580, 21_774_796),
    "system3": (80_580, 21_774_796),
    "system4": (64_196, 19_317_196),
}
#: Parameter counts quoted in the text of the Tencent DCASE23 report.
REPORTED_PARAMS = {"system2": 80_600, "system3": 80_600, "system4": 64_200}


@pytest.mark.parametrize(("name", "params", "macs"), [(n, *v) for n, v in MEASURED.items()])
def test_cp_resnet_complexity(name: str, params: int, macs: int) -> None:
    complexity = count_complexity(get_model(name), (1, 1, 256, 44))
    assert (complexity.params, complexity.macs) == (params, macs)


@pytest.mark.parametrize("name", sorted(REPORTED_PARAMS))
def test_cp_resnet_params_match_report_text(name: str) -> None:
    params, _ = MEASURED[name]
    assert abs(params - REPORTED_PARAMS[name]) / REPORTED_PARAMS[name] < 0.02


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
    assert PRESETS["system2"] == PRESETS["system3"]
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
    with pytest.raises(KeyError) as excinfo:
        get_model("system9")
    message = str(excinfo.value)
    assert "system9" in message
    for name in list_models():
        assert name in message


def test_registry_passes_keyword_overrides() -> None:
    model = get_model("system1", n_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 256, 44)).shape == (2, 7)


@pytest.mark.parametrize("name", sorted(PRESETS))
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
