"""Small models that ship with frostline, for trying its commands without a model of your own.

``frostline check frostline.models.examples:misused`` shows the freezing mistakes PyTorch accepts silently.
"""

from __future__ import annotations

import torch
from torch import nn


class SmallResNet(nn.Module):
    """A random-weight CNN in torchvision's ResNet layout: conv1 / bn1 stem, stages layer1..layer3, avgpool, fc."""

    def __init__(self, num_classes: int = 5, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        widths = [width, width, 2 * width, 4 * width]
        for i in range(3):
            stage = nn.Sequential(nn.Conv2d(widths[i], widths[i + 1], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[i + 1]), nn.ReLU())
            setattr(self, f"layer{i + 1}", stage)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x`` (N, 3, H, W)."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def misused() -> nn.Module:
    """A :class:`SmallResNet` with the two classic freezing mistakes: ``module.requires_grad = False`` (a plain
    attribute that freezes nothing) and ``require_grad`` misspelt on a parameter."""
    model = SmallResNet()
    model.layer1.requires_grad = False  # type: ignore[assignment]  # a plain attribute: does nothing
    model.fc.weight.require_grad = False  # type: ignore[attr-defined]  # typo: does nothing
    return model
