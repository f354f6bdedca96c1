"""CP-Mobile, CP-JKU's DCASE23 winning student, and the DCASE24 Task 1 baseline built from it.

Written from the DCASE23 technical report and workshop paper (Schmid et al., "Distilling the
Knowledge of Transformers and CNNs with CP-Mobile") and the published default configurations.
Two stride-2 3x3 convs reduce the input 4x and widen it to ``base_channels``; three stages of
inverted-bottleneck blocks follow (1x1 expansion, 3x3 depthwise with the block's stride, 1x1
projection); a 1x1 conv to the classes + BN + global average pooling replaces a dense head.
A block adds its input back when widths match, average-pooled when the block strides.

CP-Mobile ends each block with a Global Response Normalization (GRN); the DCASE24 baseline is
the same network without GRN, narrower (32/56/104 channels, expansion 2.1) and with its stride
on the time axis moved from block 2 to block 3.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.ao.quantization import DeQuantStub, QuantStub

from asc_kd.core.errors import ConfigError
from asc_kd.models.cp_resnet import ResidualAdd, classifier_head

Stride = tuple[int, int]


@dataclass(frozen=True)
class CPMobileConfig:
    """Full architecture; everything that changes the parameter or MAC count lives here.

    ``strides`` has one (frequency, time) stride per block, counted across all stages.
    """

    in_channels: int = 1
    n_classes: int = 10
    base_channels: int = 32
    stage_channels: tuple[int, ...] = (32, 72, 168)
    blocks_per_stage: tuple[int, ...] = (3, 2, 1)
    expansion_rate: float = 3.0
    strides: tuple[Stride, ...] = ((1, 1), (2, 2), (1, 1), (2, 1), (1, 1), (1, 1))
    use_grn: bool = True

    def __post_init__(self) -> None:
        if len(self.stage_channels) != len(self.blocks_per_stage):
            raise ConfigError(
                f"CPMobileConfig.stage_channels {self.stage_channels} and blocks_per_stage "
                f"{self.blocks_per_stage} must have one entry per stage"
            )
        if len(self.strides) != sum(self.blocks_per_stage):
            raise ConfigError(
                f"CPMobileConfig.strides has {len(self.strides)} entries; it needs one per block, "
                f"{sum(self.blocks_per_stage)} for blocks_per_stage={self.blocks_per_stage}"
            )


#: ``cp_mobile``: CP-JKU's DCASE23 defaults (base 32, width multiplier 2.3 -> 32/72/168 after
#: rounding to multiples of 8, expansion 3). ``dcase24_baseline``: multiplier 1.8 -> 32/56/104,
#: expansion 2.1, no GRN.
CP_MOBILE_PRESETS: dict[str, CPMobileConfig] = {
    "cp_mobile": CPMobileConfig(),
    "dcase24_baseline": CPMobileConfig(
        stage_channels=(32, 56, 104),
        expansion_rate=2.1,
        strides=((1, 1), (1, 1), (1, 2), (2, 1), (1, 1), (1, 1)),
        use_grn=False,
    ),
}


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a width to a multiple of ``divisor`` (never below it, never more than 10 % down).

    MobileNet's rule; CP-Mobile's expansion widths and published channel counts follow it.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn(
    c_in: int,
    c_out: int,
    kernel: int,
    stride: int | Stride = 1,
    groups: int = 1,
    activation: bool = True,
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if activation:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt V2's GRN with one scalar gain and bias, as CP-Mobile uses it.

    It rescales each channel by its spatial L2 energy relative to the mean over channels, which
    encourages channels to compete; gain and bias start at zero so the layer starts as identity.
    The two scalars keep the cost at two parameters per block. A norm has no int8 kernel, so in
    an int8 model it dequantizes its input and quantizes its output (the stubs are identities
    in float).
    """

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.zeros(1))
        self.beta = nn.Parameter(torch.zeros(1))
        self.dequant = DeQuantStub()
        self.quant = QuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dequant(x)
        energy = torch.linalg.vector_norm(x, dim=(2, 3), keepdim=True)
        relative = energy / (energy.mean(dim=1, keepdim=True) + self.eps)
        return self.quant(x + self.gamma * (x * relative) + self.beta)


class InvertedBottleneck(nn.Module):
    """MobileNet-style block: expand (1x1), filter (strided depthwise 3x3), project (1x1).

    The input is added back when widths match, then GRN (when ``use_grn``) and ReLU follow.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        expansion_rate: float,
        stride: Stride = (1, 1),
        use_grn: bool = True,
    ) -> None:
        super().__init__()
        c_mid = make_divisible(c_in * expansion_rate)
        self.block = nn.Sequential(
            _conv_bn(c_in, c_mid, 1),
            _conv_bn(c_mid, c_mid, 3, stride, groups=c_mid),
            _conv_bn(c_mid, c_out, 1, activation=False),
        )
        self.shortcut: nn.Module | None = None
        self.add: ResidualAdd | None = None
        if c_in == c_out:
            strided = tuple(stride) != (1, 1)
            self.shortcut = nn.AvgPool2d(3, stride, padding=1) if strided else nn.Identity()
            self.add = ResidualAdd()
        self.norm = GlobalResponseNorm() if use_grn else nn.Identity()
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        if self.shortcut is not None and self.add is not None:
            y = self.add(y, self.shortcut(x))
        return self.activation(self.norm(y))


class CPMobile(nn.Module):
    """CP-Mobile on a (batch, 1, mel bins, frames) log-mel input; returns class logits."""

    #: The shape CP-JKU's published complexity (126,952 params, 28,893,268 MACs) is counted on.
    input_shape = (1, 1, 256, 64)

    def __init__(self, config: CPMobileConfig | None = None) -> None:
        super().__init__()
        config = config or CP_MOBILE_PRESETS["cp_mobile"]
        self.config = config
        self.in_c = nn.Sequential(
            _conv_bn(config.in_channels, config.base_channels // 4, 3, stride=2),
            _conv_bn(config.base_channels // 4, config.base_channels, 3, stride=2),
        )
        strides = iter(config.strides)
        stages = []
        c_in = config.base_channels
        for c_out, n_blocks in zip(config.stage_channels, config.blocks_per_stage, strict=True):
            blocks = []
            for _ in range(n_blocks):
                blocks.append(
                    InvertedBottleneck(c_in, c_out, config.expansion_rate, next(strides), config.use_grn)
                )
                c_in = c_out
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = classifier_head(c_in, config.n_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """CP-JKU's init: He (fan-out) convs, identity BNs; GRNs keep their identity start."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.in_c(x)))


class DCASE24Baseline(CPMobile):
    """The DCASE24 Task 1 baseline: CP-Mobile without GRN in its own, smaller configuration."""

    #: 1 s at 32 kHz with hop 500, centred frames: 32000 / 500 + 1 = 65 frames.
    input_shape = (1, 1, 256, 65)

    def __init__(self, config: CPMobileConfig | None = None) -> None:
        super().__init__(config or CP_MOBILE_PRESETS["dcase24_baseline"])


def cp_mobile(n_classes: int = 10, in_channels: int = 1) -> CPMobile:
    """CP-Mobile in CP-JKU's published default configuration (126,952 params)."""
    return CPMobile(replace(CP_MOBILE_PRESETS["cp_mobile"], n_classes=n_classes, in_channels=in_channels))


def dcase24_baseline(n_classes: int = 10, in_channels: int = 1) -> DCASE24Baseline:
    """The DCASE24 Task 1 baseline network (61,148 params)."""
    return DCASE24Baseline(
        replace(CP_MOBILE_PRESETS["dcase24_baseline"], n_classes=n_classes, in_channels=in_channels)
    )
