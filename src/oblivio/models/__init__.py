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
from .base import Classifier, ModelError, Normalize
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
    """Build a registered model for images of the given shape.

    Raises:
        ModelError: an unknown option (``wdith``), or options the model cannot be built with (``width: -1``,
            ``width: 0``, a string where a number goes), named with the model's valid options.
    """
    given = dict(kwargs)
    missing, unknown, valid = MODELS.option_problems(
        name, {**given, "num_classes": 0, "in_channels": 0, "image_size": 0, "mean": 0, "std": 0}
    )
    options = ", ".join(v for v in valid if v not in ("num_classes", "in_channels", "image_size", "mean", "std"))
    if unknown or missing:
        what = f"has no option(s) {', '.join(unknown)}" if unknown else f"needs the option(s) {', '.join(missing)}"
        raise ModelError(f"model {name!r} {what} (--model-options); its options: {options or '(none)'}")
    try:
        model = MODELS.create(
            name,
            num_classes=num_classes,
            in_channels=in_channels,
            image_size=tuple(image_size),
            mean=mean,
            std=std,
            **given,
        )
    except (RuntimeError, ValueError, TypeError, ZeroDivisionError) as exc:
        # torch's own words ("negative dimension -1") with what the user set; -v shows the traceback
        raise ModelError(
            f"model {name!r} cannot be built with --model-options {given}: {type(exc).__name__}: "
            f"{(str(exc).splitlines() or [repr(exc)])[0]}; its options: {options or '(none)'}"
        ) from exc
    empty = [n for n, p in model.named_parameters() if p.numel() == 0]
    if empty:
        raise ModelError(
            f"model {name!r} with --model-options {given} has empty layers ({', '.join(empty[:3])}): widths and "
            f"sizes must be >= 1; its options: {options or '(none)'}"
        )
    return model


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

__all__ = [
    "MODELS",
    "Classifier",
    "ModelError",
    "Normalize",
    "SmallCNN",
    "create_model",
    "list_models",
    "register_model",
]
