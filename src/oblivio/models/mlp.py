"""A small multilayer perceptron: the cheapest model that still memorises its training set.

Used by the 004 study's tiny preset (``oblivio.studies.study004``), which trains more than a thousand models:
one training of a 196-64 MLP on a few thousand 14x14 images costs a fraction of a CPU second, where even a narrow CNN
costs several. Flatten, ``depth`` hidden layers of ``hidden`` ReLU units (the last one is the penultimate features),
then the linear head.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from . import register_model
from .base import Classifier


@register_model("mlp")
class MLP(Classifier):
    """Flatten -> [Linear(hidden) -> ReLU] x depth -> head.

    Example:
        >>> import torch
        >>> m = MLP(num_classes=10, in_channels=1, image_size=(14, 14), hidden=32)
        >>> m(torch.rand(2, 1, 14, 14)).shape, m.features(torch.rand(2, 1, 14, 14)).shape
        (torch.Size([2, 10]), torch.Size([2, 32]))
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: Sequence[int] = (28, 28),
        hidden: int = 64,
        depth: int = 1,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, image_size=image_size, mean=mean, std=std)
        if depth < 1 or hidden < 1:
            raise ValueError(f"depth and hidden must be >= 1, got {depth} and {hidden}")
        h, w = self.image_size
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * h * w
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(hidden, num_classes)
        self.feature_dim = hidden
