"""Small CNN: two convolution blocks and one fully connected layer.

The two-stage retraining paper (``002``, Table 1) uses "2 conv layers followed by 1 FC layer" for MNIST,
Fashion-MNIST and CIFAR-10. Our version: conv(32) - ReLU - maxpool, conv(64) - ReLU - maxpool, then a hidden
FC layer of 128 units (the penultimate features) and the linear head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import Classifier


class SmallCNN(Classifier):
    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: Sequence[int] = (28, 28),
        width: int = 32,
        hidden: int = 128,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, image_size=image_size, mean=mean, std=std)
        h, w = self.image_size
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * (h // 4) * (w // 4), hidden),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(hidden, num_classes)
        self.feature_dim = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.head(self.features(x))
