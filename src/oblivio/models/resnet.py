"""CIFAR-style residual networks (He et al. 2016), configurable in width and depth.

The CIFAR variant of ResNet-18 that the TMU paper (``000``) trains on CIFAR-10/100 differs from the ImageNet one in
its stem: a single 3x3 convolution with stride 1 and no max-pool, so that 32x32 images are not shrunk to 8x8 before
the first residual stage. The stages use BasicBlocks (two 3x3 convolutions with BatchNorm and an identity or 1x1
projection shortcut); every stage after the first halves the resolution and doubles the width. The penultimate
features are the globally average-pooled output of the last stage (``AdaptiveAvgPool2d``, so any input size from
8x8 upwards works).

Registered names (``width`` / ``blocks`` / ``feature_dim``):

- ``resnet18``: 64 / (2, 2, 2, 2) / 512, the CIFAR ResNet-18 of TMU's experiments;
- ``resnet18-narrow``: 16 / (2, 2, 2, 2) / 128;
- ``resnet10``: 64 / (1, 1, 1, 1) / 512;
- ``resnet8-narrow``: 16 / (1, 1, 1) / 64.

Every factory accepts the :class:`ResNet` knobs as extra keywords to override its defaults.

Example:
    >>> import torch
    >>> from oblivio.models import create_model
    >>> m = create_model("resnet8-narrow", num_classes=10, in_channels=1, image_size=(28, 28))
    >>> m(torch.rand(2, 1, 28, 28)).shape, m.feature_dim
    (torch.Size([2, 10]), 64)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from . import register_model
from .base import Classifier


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    Args:
        in_channels: channels of the block's input.
        out_channels: channels of the block's output.
        stride: stride of the first convolution (2 to halve the resolution).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or in_channels != out_channels:
            # Projection shortcut ("option B" of He et al.) whenever the shape changes.
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(Classifier):
    """CIFAR-style ResNet: 3x3 stem, BasicBlock stages, global average pooling, linear head.

    Stage ``i`` has ``width * 2**i`` channels and ``blocks[i]`` BasicBlocks; stages after the first start with a
    stride-2 block. ``feature_dim`` is ``width * 2**(len(blocks) - 1)``.

    Args:
        num_classes: number of output logits.
        in_channels: image channels (1 for MNIST-like data, 3 for CIFAR).
        image_size: expected ``(H, W)``; any size works thanks to adaptive pooling, it is used by ``check_input``.
        width: channels of the stem and of the first stage (64 for ResNet-18).
        blocks: number of BasicBlocks per stage (``(2, 2, 2, 2)`` for ResNet-18).
        zero_init_residual: start each block's last BatchNorm at zero, so every block begins as the identity
            (Goyal et al. 2017); off by default, as in He et al. 2016.
        mean: per-channel normalisation mean (default 0.5 per channel).
        std: per-channel normalisation std (default 0.25 per channel).

    Example:
        >>> import torch
        >>> m = ResNet(num_classes=3, in_channels=3, image_size=(8, 8), width=4, blocks=(1, 1))
        >>> m(torch.rand(2, 3, 8, 8)).shape, m.features(torch.rand(2, 3, 8, 8)).shape
        (torch.Size([2, 3]), torch.Size([2, 8]))
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: Sequence[int] = (32, 32),
        width: int = 64,
        blocks: Sequence[int] = (2, 2, 2, 2),
        zero_init_residual: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, image_size=image_size, mean=mean, std=std)
        blocks = tuple(int(b) for b in blocks)
        if width < 1:
            raise ValueError(f"width must be a positive number of channels, got {width}")
        if not blocks or any(b < 1 for b in blocks):
            raise ValueError(f"blocks must be a non-empty sequence of positive block counts per stage, got {blocks}")
        self.width = int(width)
        self.blocks = blocks

        layers: list[nn.Module] = [_conv3x3(in_channels, width), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        channels = width
        for stage, count in enumerate(blocks):
            out_channels = width * 2**stage
            for i in range(count):
                stride = 2 if (stage > 0 and i == 0) else 1
                layers.append(BasicBlock(channels, out_channels, stride))
                channels = out_channels
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)
        self.feature_dim = channels
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # The linear head keeps PyTorch's default (uniform, fan-in scaled) initialisation.
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    nn.init.zeros_(module.bn2.weight)


def _build(
    defaults: dict[str, Any],
    *,
    num_classes: int,
    in_channels: int,
    image_size: Sequence[int],
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    knobs: dict[str, Any],
) -> ResNet:
    return ResNet(
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        mean=mean,
        std=std,
        **{**defaults, **knobs},
    )


@register_model("resnet18")
def resnet18(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: Sequence[int] = (32, 32),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **knobs: Any,
) -> ResNet:
    """CIFAR ResNet-18 (He et al. 2016): width 64, blocks ``(2, 2, 2, 2)``, 512-d features; TMU's main model.

    Extra keyword arguments (``width``, ``blocks``, ``zero_init_residual``) override the defaults of :class:`ResNet`.
    """
    return _build(
        dict(width=64, blocks=(2, 2, 2, 2)),
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        mean=mean,
        std=std,
        knobs=knobs,
    )


@register_model("resnet18-narrow")
def resnet18_narrow(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: Sequence[int] = (32, 32),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **knobs: Any,
) -> ResNet:
    """ResNet-18 depth at a quarter of the width (16-32-64-128 channels, 128-d features); trainable on a CPU."""
    return _build(
        dict(width=16, blocks=(2, 2, 2, 2)),
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        mean=mean,
        std=std,
        knobs=knobs,
    )


@register_model("resnet10")
def resnet10(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: Sequence[int] = (32, 32),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **knobs: Any,
) -> ResNet:
    """ResNet-18 with one BasicBlock per stage (width 64, 512-d features)."""
    return _build(
        dict(width=64, blocks=(1, 1, 1, 1)),
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        mean=mean,
        std=std,
        knobs=knobs,
    )


@register_model("resnet8-narrow")
def resnet8_narrow(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: Sequence[int] = (32, 32),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **knobs: Any,
) -> ResNet:
    """Three stages of one BasicBlock each, 16-32-64 channels (64-d features): the smallest ResNet here."""
    return _build(
        dict(width=16, blocks=(1, 1, 1)),
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        mean=mean,
        std=std,
        knobs=knobs,
    )
