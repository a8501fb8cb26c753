"""The contract every oblivio model follows.

A model takes float images in [0, 1] (``[B, C, H, W]``), normalises them itself, and splits into
``features(x)`` (the penultimate activations, ``[B, D]``) and ``head`` (the final linear layer), so that
``model(x) == model.head(model.features(x))``. TMU's nearest-distance feature and SalUn's saliency rely on this.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ModelError(ValueError):
    """A model cannot be built or used as asked (unknown or impossible options, unusable weights)."""


def check_usable_weights(model: nn.Module, *, source: str) -> None:
    """Refuse a loaded model that cannot give a meaningful answer: NaN or inf in any weight or buffer (a diverged
    training), or a normalisation std with a zero entry (every output inf or NaN).

    Args:
        model: the model, its weights loaded.
        source: where they came from (a file name), for the message.

    Raises:
        CheckpointError: naming the tensors and what to give instead.

    Example:
        >>> m = nn.Sequential(Normalize([0.5], [0.0]), nn.Flatten(), nn.Linear(4, 2))
        >>> check_usable_weights(m, source="m.pt")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        oblivio.utils.CheckpointError: m.pt: the normalisation std (0.std) has zero entries...
    """
    from ..utils import CheckpointError

    bad = [n for n, t in model.state_dict().items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise CheckpointError(
            f"{source} holds non-finite weights (NaN or inf in {len(bad)} tensor(s), e.g. {', '.join(bad[:3])}): "
            "the checkpoint of a diverged training cannot be served or scored; give one of a model that trained "
            "normally"
        )
    for name, module in model.named_modules():
        if isinstance(module, Normalize) and bool((module.std == 0).any()):
            raise CheckpointError(
                f"{source}: the normalisation std ({name}.std) has zero entries, so every output would be inf or "
                "NaN; save the model with the per-channel std of its training images (all > 0)"
            )


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, as the model's first layer (so attacks work in [0, 1] pixel units)."""

    mean: torch.Tensor  # buffers (registered in __init__)
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """Base class: subclasses build ``self.body`` (images -> penultimate features) and ``self.head``.

    Attributes:
        num_classes: number of output logits.
        in_channels: expected image channels.
        image_size: expected ``(H, W)``.
        feature_dim: size of the penultimate features.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        image_size: Sequence[int],
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        mean = list(mean) if mean is not None else [0.5] * in_channels
        std = list(std) if std is not None else [0.25] * in_channels
        if len(mean) != in_channels or len(std) != in_channels:
            raise ValueError(f"mean/std must have {in_channels} entries (one per channel)")
        self.normalize = Normalize(mean, std)
        self.body: nn.Module = nn.Identity()
        self.head: nn.Linear = nn.Linear(1, num_classes)
        self.feature_dim = 1

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations ``[B, feature_dim]`` (the input to ``head``)."""
        return self.body(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def check_input(self, image_shape: Sequence[int], num_classes: int | None = None) -> None:
        """Raise a clear error when a dataset does not fit this model."""
        c, h, w = (int(s) for s in image_shape)
        problems = []
        if c != self.in_channels:
            problems.append(f"the model expects {self.in_channels} channel(s), the data has {c}")
        if (h, w) != self.image_size:
            problems.append(f"the model expects {self.image_size[0]}x{self.image_size[1]} images, the data has {h}x{w}")
        if num_classes is not None and num_classes != self.num_classes:
            problems.append(f"the model has {self.num_classes} outputs, the data has {num_classes} classes")
        if problems:
            raise ValueError("model/dataset mismatch: " + "; ".join(problems))
