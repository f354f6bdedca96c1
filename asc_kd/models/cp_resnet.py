"""CP-ResNet, the receptive-field-regularised ResNet of CP-JKU's DCASE22 system.

Written from its description (Koutini et al. 2021; Schmid et al., DCASE22 report) and the
Tencent DCASE23 report, section 4: a 5x5 stride-2 input conv, three stages of residual
blocks whose kernel sizes bound the receptive field (rho), max-pooling only in stage 1, and a
1x1 conv to the classes + BN + global average pooling instead of a dense head.

The four presets are the Tencent systems. ``system1`` is CP-JKU's submission network
(rho=8, blocks 2/1/1, stage 2 in two groups, 92 channels in stage 3). Systems 2-4 shrink
kernels to 1x1; see ``CP_RESNET_PRESETS`` for which conv and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import nn
from torch.ao.nn.quantized import FloatFunctional

from asc_kd.core.errors import ConfigError

SystemName = Literal["system1", "system2", "system3", "system4"]


@dataclass(frozen=True)
class StageConfig:
    """One stage: a (k1, k2) kernel pair per block, conv groups and max-pool positions.

    ``maxpool`` positions follow CP-JKU's convention: 0 pools 2x2 before the first block,
    position i > 0 pools 2x1 (frequency only) after block i.
    """

    out_channels: int
    kernels: tuple[tuple[int, int], ...]
    groups: int = 1
    maxpool: tuple[int, ...] = ()


@dataclass(frozen=True)
class CPResNetConfig:
    """Full architecture; everything that changes the parameter count lives here."""

    in_channels: int = 1
    n_classes: int = 10
    base_channels: int = 32
    stages: tuple[StageConfig, ...] = field(default_factory=tuple)


def _system1() -> CPResNetConfig:
    # rho = 8 in CP-JKU's kernel schedule gives these kernel pairs for blocks (2, 1, 1).
    return CPResNetConfig(
        stages=(
            StageConfig(32, kernels=((3, 1), (3, 3)), maxpool=(0, 1, 2)),
            StageConfig(64, kernels=((3, 3),), groups=2),
            StageConfig(92, kernels=((3, 1),)),
        )
    )


def _with_kernels(config: CPResNetConfig, stage: int, kernels: tuple[tuple[int, int], ...]):
    stages = list(config.stages)
    stages[stage] = replace(stages[stage], kernels=kernels)
    return replace(config, stages=tuple(stages))


#: Systems 2 and 3 (identical networks, different training) turn the first 3x3 conv of stage 3
#: into 1x1: 127,684 -> 80,580 params, 79,942 with BatchNorm folded into the convs, which is the
#: report's Table 2 MEM of 79.9K (NeSsi counted after quantization, when BN is folded). The
#: report's text says system 4 also turns "the first conv of stage 2" into 1x1, but that gives
#: 72,388 params (71,750 folded), far above its 63.5K; turning the stage-2 block's *second* 3x3
#: into 1x1 gives 64,196 params, 63,558 folded (the report's 63.5K) and 19.3 M MACs (its
#: 19.5M), so that is what ``system4`` does. System 1's 127.6K is its unfolded 127,684.
CP_RESNET_PRESETS: dict[str, CPResNetConfig] = {
    "system1": _system1(),
    "system2": _with_kernels(_system1(), 2, ((1, 1),)),
    "system3": _with_kernels(_system1(), 2, ((1, 1),)),
    "system4": _with_kernels(_with_kernels(_system1(), 2, ((1, 1),)), 1, ((3, 1),)),
}


def _conv_bn(c_in: int, c_out: int, kernel: int, groups: int = 1) -> nn.Sequential:
    # Padding k // 3 (1 for 3x3, 0 for 1x1) is CP-ResNet's; it keeps 3x3 maps "same".
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 3, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    )


def classifier_head(c_in: int, n_classes: int) -> nn.Sequential:
    """CP-JKU's head: 1x1 conv to the classes, BN, global average pooling (no dense layer)."""
    return nn.Sequential(
        nn.Conv2d(c_in, n_classes, 1, bias=False),
        nn.BatchNorm2d(n_classes),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


class ResidualAdd(nn.Module):
    """``a + b`` through ``FloatFunctional``, so post-training quantization can observe the
    sum's range and replace it by an int8 add (a plain ``+`` cannot take quantized tensors)."""

    def __init__(self) -> None:
        super().__init__()
        self.op = FloatFunctional()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.op.add(a, b)


def _aten_max_pool2d(x: torch.Tensor, kernel: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """ATen's max pooling (stride = kernel) and its indices."""
    return torch.ops.aten.max_pool2d_with_indices(x, kernel, kernel)


def _aten_max_pool2d_backward(
    grad: torch.Tensor, x: torch.Tensor, indices: torch.Tensor, kernel: list[int]
) -> torch.Tensor:
    """ATen's max-pooling backward: each window's gradient to its first maximum."""
    return torch.ops.aten.max_pool2d_with_indices_backward(
        grad, x, kernel, kernel, [0, 0], [1, 1], False, indices
    )


# Opaque to torch.compile; their fake (shape-only) versions are the same ATen calls, which
# work on fake tensors as they are.
_max_pool2d = torch.library.custom_op("asc_kd::max_pool2d", mutates_args=())(_aten_max_pool2d)
_max_pool2d.register_fake(_aten_max_pool2d)
_max_pool2d_backward = torch.library.custom_op("asc_kd::max_pool2d_backward", mutates_args=())(
    _aten_max_pool2d_backward
)
_max_pool2d_backward.register_fake(_aten_max_pool2d_backward)


def _save_pool_inputs(ctx, inputs: tuple, output: tuple) -> None:  # noqa: ANN001
    x, kernel = inputs
    ctx.save_for_backward(x, output[1])
    ctx.kernel = kernel


def _pool_backward(ctx, grad: torch.Tensor, grad_indices: torch.Tensor) -> tuple:  # noqa: ANN001
    x, indices = ctx.saved_tensors
    return _max_pool2d_backward(grad, x, indices, ctx.kernel), None


_max_pool2d.register_autograd(_pool_backward, setup_context=_save_pool_inputs)


class AtenMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` (stride = kernel, no padding) whose training forward and backward run
    ATen's CPU kernels when the model is compiled.

    Inductor lowers max pooling's backward to a gather with per-element index arithmetic that
    it does not vectorise, slower on a CPU than ATen's kernels for the student's channels-last
    bf16 activations after the input conv (64x32x127x21). The custom ops keep ATen's kernels
    and leave the rest of the graph to inductor. They are registered when this module is
    first imported; a training-mode ``torch.export`` would capture them. Values and
    gradients are ATen's, the same as the eager module's; in eval, without gradients, on other
    devices and outside ``torch.compile`` this is ``nn.MaxPool2d`` (int8 quantization and the
    complexity count see that module).
    """

    def __init__(self, kernel_size: int | tuple[int, int]) -> None:
        super().__init__(kernel_size, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.requires_grad and x.device.type == "cpu" and torch.compiler.is_compiling():
            size = self.kernel_size
            kernel = [size, size] if isinstance(size, int) else list(size)
            return _max_pool2d(x, kernel)[0]
        return super().forward(x)


class BasicBlock(nn.Module):
    """conv-BN-ReLU, conv-BN, plus a (1x1 conv-BN when widths differ) shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, k1: int, k2: int, groups: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv_bn(c_in, c_out, k1, groups)
        self.relu1 = nn.ReLU()
        self.conv2 = _conv_bn(c_out, c_out, k2, groups)
        self.shortcut = _conv_bn(c_in, c_out, 1, groups) if c_in != c_out else nn.Identity()
        self.add = ResidualAdd()
        self.relu2 = nn.ReLU()

    def fusion_groups(self) -> list[list[str]]:
        """The conv-BN-ReLU run int8 quantization fuses that is not one Sequential."""
        return [["conv1.0", "conv1.1", "relu1"]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.relu1(self.conv1(x)))
        return self.relu2(self.add(y, self.shortcut(x)))


class CPResNet(nn.Module):
    """CP-ResNet on a (batch, 1, mel bins, frames) log-mel input; returns class logits."""

    #: Input the model is designed for: 256 mel bins x 44 frames (1 s at hop 737, 32 kHz).
    input_shape = (1, 1, 256, 44)

    def __init__(self, config: CPResNetConfig) -> None:
        super().__init__()
        self.config = config
        self.in_c = nn.Sequential(
            nn.Conv2d(config.in_channels, config.base_channels, 5, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(config.base_channels),
            nn.ReLU(),
        )
        stages = []
        c_in = config.base_channels
        for stage in config.stages:
            layers: list[nn.Module] = []
            if 0 in stage.maxpool:
                layers.append(AtenMaxPool2d(2))
            for index, (k1, k2) in enumerate(stage.kernels, start=1):
                layers.append(BasicBlock(c_in, stage.out_channels, k1, k2, stage.groups))
                c_in = stage.out_channels
                if index in stage.maxpool:
                    layers.append(AtenMaxPool2d((2, 1)))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.head = classifier_head(c_in, config.n_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He init for convs, identity BNs, and a zero classifier so training starts at uniform."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.head[0].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.in_c(x)))


def cp_resnet(system: SystemName | str = "system1", n_classes: int = 10) -> CPResNet:
    """Build one of the Tencent systems by name (``system1`` ... ``system4``)."""
    if system not in CP_RESNET_PRESETS:
        raise ConfigError(f"unknown CP-ResNet preset {system!r}; choose one of {sorted(CP_RESNET_PRESETS)}")
    return CPResNet(replace(CP_RESNET_PRESETS[system], n_classes=n_classes))
