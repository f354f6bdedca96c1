"""A tiny real CNN for tests and smoke runs: same input/output contract as the students."""

from __future__ import annotations

import torch
from torch import nn


class DebugCNN(nn.Module):
    """Two conv-BN-ReLU layers and a linear head; trains in seconds on a CPU."""

    input_shape = (1, 1, 256, 44)

    def __init__(self, n_classes: int = 10, in_channels: int = 1, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(2 * width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
