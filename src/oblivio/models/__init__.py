"""Model registry: ``register_model`` / ``create_model`` / ``list_models``.

Every model takes float images in [0, 1] and exposes ``features(x)`` (penultimate activations) and ``head``.

Example:
    >>> from oblivio.models import create_model
    >>> m = create_model("small-cnn", num_classes=10, in_channels=1, image_size=(28, 28))
    >>> import torch
    >>> m(torch.rand(2, 1, 28, 28)).shape, m.features(torch.rand(2, 1, 28, 28)).shape
    (torch.Size([2, 10]), torch.Size([2, 128]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..registry import Registry
from .base import Classifier, Normalize
from .cnn import SmallCNN

MODELS: Registry = Registry("model")


def register_model(name: str):
    """Decorator registering a :class:`Classifier` subclass (or factory) under ``name``."""
    return MODELS.register(name)


register_model("small-cnn")(SmallCNN)


def create_model(
    name: str,
    /,
    *,
    num_classes: int,
    in_channels: int,
    image_size: Sequence[int],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **kwargs: Any,
) -> Classifier:
    """Build a registered model for images of the given shape."""
    return MODELS.create(
        name,
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=tuple(image_size),
        mean=mean,
        std=std,
        **kwargs,
    )


def list_models() -> list[str]:
    return MODELS.names()


def _register_optional() -> None:
    # Architectures in their own modules register themselves on import.
    import importlib

    for module in ("resnet", "allcnn", "vit", "mlp"):
        try:
            importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as exc:  # module not written yet
            if exc.name != f"{__name__}.{module}":
                raise


_register_optional()

__all__ = ["MODELS", "Classifier", "Normalize", "SmallCNN", "create_model", "list_models", "register_model"]
