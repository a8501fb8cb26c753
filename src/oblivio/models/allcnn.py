"""All-CNN-C (Springenberg et al. 2014, "Striving for Simplicity: The All Convolutional Net").

A network of convolutions only: max-pooling is replaced by 3x3 convolutions with stride 2. The paper's layers
(with ``c1 = 96`` and ``c2 = 192`` channels, each convolution followed by ReLU) are::

    3x3 conv c1, 3x3 conv c1, 3x3 conv c1 stride 2,
    3x3 conv c2, 3x3 conv c2, 3x3 conv c2 stride 2,
    3x3 conv c2, 1x1 conv c2, 1x1 conv num_classes, global average pool, softmax.

The TMU paper (``000``) reports AllCNN results in its supplementary material. Ours follows the variant common in
the unlearning literature (BatchNorm, a linear classifier on pooled features) and differs from the paper in four
documented ways:

- **linear head**: the last 1x1 convolution to ``num_classes`` channels followed by average pooling is replaced by
  global average pooling of the ``c2``-channel map (192-d by default) followed by an ``nn.Linear`` head. Both are
  linear maps of the pooled features (a 1x1 convolution commutes with averaging), so the function class is the same,
  but this way the pooled 192-d vector is the penultimate ``features(x)`` and ``head`` exists, as the
  :class:`~oblivio.models.base.Classifier` contract requires;
- **BatchNorm** after every convolution (on by default, ``batch_norm=False`` gives the paper's plain network with
  convolution biases);
- **padding**: every 3x3 convolution is padded by 1, including the one the paper leaves unpadded in the third
  stage, so 8x8 inputs still leave a 2x2 map (the paper's 32x32 -> 6x6 becomes 32x32 -> 8x8);
- **dropout** is optional (``dropout``, default 0), applied after each stride-2 convolution, where the paper puts
  its 50% dropout; the paper's 20% input dropout is left out.

Example:
    >>> import torch
    >>> from oblivio.models import create_model
    >>> m = create_model("allcnn", num_classes=10, in_channels=3, image_size=(32, 32), width=8)
    >>> m(torch.rand(2, 3, 32, 32)).shape, m.feature_dim
    (torch.Size([2, 10]), 16)
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from . import register_model
from .base import Classifier


@register_model("allcnn")
class AllCNN(Classifier):
    """All-CNN-C with BatchNorm, padding-preserving convolutions and a linear head on globally pooled features.

    Args:
        num_classes: number of output logits.
        in_channels: image channels.
        image_size: expected ``(H, W)``; any size works (global pooling), it is used by ``check_input``.
        width: channels of the first stage (the paper's 96); the second and third stages have ``2 * width``
            channels (the paper's 192), which is also ``feature_dim``.
        batch_norm: BatchNorm after every convolution (convolutions then have no bias).
        dropout: dropout probability after each stride-2 convolution (0 disables it; the paper uses 0.5).
        mean: per-channel normalisation mean (default 0.5 per channel).
        std: per-channel normalisation std (default 0.25 per channel).

    Example:
        >>> import torch
        >>> m = AllCNN(num_classes=5, in_channels=1, image_size=(28, 28), width=4, batch_norm=False)
        >>> m.features(torch.rand(3, 1, 28, 28)).shape
        torch.Size([3, 8])
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: Sequence[int] = (32, 32),
        width: int = 96,
        batch_norm: bool = True,
        dropout: float = 0.0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, image_size=image_size, mean=mean, std=std)
        if width < 1:
            raise ValueError(f"width must be a positive number of channels, got {width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout}")
        self.width = int(width)
        self.batch_norm = bool(batch_norm)
        self.dropout = float(dropout)
        c1, c2 = self.width, 2 * self.width

        def conv(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> list[nn.Module]:
            layers: list[nn.Module] = [
                nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=not batch_norm)
            ]
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU(inplace=True))
            return layers

        def drop() -> list[nn.Module]:
            return [nn.Dropout(dropout)] if dropout > 0 else []

        self.body = nn.Sequential(
            *conv(in_channels, c1),
            *conv(c1, c1),
            *conv(c1, c1, stride=2),
            *drop(),
            *conv(c1, c2),
            *conv(c2, c2),
            *conv(c2, c2, stride=2),
            *drop(),
            *conv(c2, c2),
            *conv(c2, c2, kernel=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(c2, num_classes)
        self.feature_dim = c2
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
