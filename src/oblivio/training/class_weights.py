"""Class weights for the cross-entropy of a recipe (SPEC §9: the 004 study trains "with class weights").

A recipe's ``class_weights`` is a *spec*, resolved against the data each training runs on:

- ``"none"``: plain cross-entropy (the default; every existing recipe).
- ``"balanced"``: ``w_c = n / (C · n_c)``, scikit-learn's ``compute_class_weight("balanced")``, computed on the
  labels of the set being trained on (``D`` for the original model, ``D_r`` for the gold model and for a method
  that fine-tunes on ``D_r``), over all ``C`` classes of the dataset. A class with no sample there has no
  balanced weight (``n / 0``): that is an error, not a silent zero.
- an explicit list of ``C`` non-negative numbers, one per class.

The weighted loss is PyTorch's ``F.cross_entropy(..., weight=w)``: with the default ``reduction="mean"`` it is
``Σ_i w_{y_i} · ℓ_i / Σ_i w_{y_i}`` over the batch (a weighted mean, so the loss scale does not depend on the
weights' scale).

Example:
    >>> import torch
    >>> resolve_class_weights("balanced", torch.tensor([0, 0, 0, 1]), 2).tolist()
    [0.6666666865348877, 2.0]
    >>> resolve_class_weights("none", torch.tensor([0, 1]), 2) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ClassWeightsSpec = str | tuple[float, ...]
"""``"none"``, ``"balanced"`` or one weight per class."""

CLASS_WEIGHT_MODES = ("none", "balanced")


def normalise_class_weights(spec: Any) -> ClassWeightsSpec:
    """Validate a class-weights spec and return its canonical form (a string or a tuple of floats).

    Raises:
        ValueError: an unknown mode, an empty list, or a weight that is negative, not finite or not a number, or
            all weights zero.

    Example:
        >>> normalise_class_weights([1, 2.5])
        (1.0, 2.5)
        >>> normalise_class_weights("Balanced")
        'balanced'
    """
    if spec is None:
        return "none"
    if isinstance(spec, str):
        mode = spec.strip().lower()
        if mode in CLASS_WEIGHT_MODES:
            return mode
        if "," in mode:  # the CLI / YAML form "1,2,0.5"
            return normalise_class_weights([p for p in mode.split(",") if p.strip()])
        raise ValueError(
            f"class_weights must be 'none', 'balanced' or one weight per class (e.g. [1, 2.5, ...]), got {spec!r}"
        )
    try:
        values = tuple(float(v) for v in spec)
    except (TypeError, ValueError):
        raise ValueError(
            f"class_weights must be 'none', 'balanced' or a list of numbers, one per class; got {spec!r}"
        ) from None
    if not values:
        raise ValueError("class_weights is an empty list; give one weight per class, or 'none' / 'balanced'")
    bad = [v for v in values if not math.isfinite(v) or v < 0]
    if bad:
        raise ValueError(f"class weights must be finite numbers >= 0, got {bad[:5]}")
    if not any(v > 0 for v in values):
        raise ValueError("class weights are all zero: every sample would weigh nothing")
    return values


def balanced_class_weights(labels: torch.Tensor | Sequence[int], num_classes: int) -> torch.Tensor:
    """``w_c = n / (C · n_c)`` (scikit-learn's ``compute_class_weight("balanced")``) as a float32 tensor.

    Raises:
        ValueError: a class has no sample (its balanced weight is undefined).
    """
    y = torch.as_tensor(labels, dtype=torch.long).reshape(-1).cpu()
    counts = torch.bincount(y, minlength=num_classes).double()
    if counts.numel() > num_classes:
        raise ValueError(f"labels go up to {int(y.max())} but there are only {num_classes} classes")
    empty = torch.nonzero(counts == 0).flatten().tolist()
    if empty:
        raise ValueError(
            f"class(es) {empty[:10]} have no sample in the training set, so 'balanced' class weights "
            "(n / (C · n_c)) are undefined; give an explicit list of weights or class_weights='none'"
        )
    return (y.numel() / (num_classes * counts)).float()


def resolve_class_weights(
    spec: ClassWeightsSpec | None, labels: torch.Tensor | Sequence[int], num_classes: int
) -> torch.Tensor | None:
    """The weight tensor a spec gives on a training set with these ``labels`` (None for ``"none"``).

    Raises:
        ValueError: an explicit list whose length is not ``num_classes``, or ``"balanced"`` with an empty class.
    """
    spec = normalise_class_weights(spec)
    if spec == "none":
        return None
    if spec == "balanced":
        return balanced_class_weights(labels, num_classes)
    if len(spec) != num_classes:
        raise ValueError(
            f"class_weights has {len(spec)} entries but the data has {num_classes} classes; give one weight per class"
        )
    return torch.tensor(spec, dtype=torch.float32)


def weighted_cross_entropy(weights: torch.Tensor | None):
    """A ``loss_fn(model, batch)`` for :func:`~oblivio.training.loop.fit`: cross-entropy with class ``weights``
    (plain cross-entropy when None). The weights move to the logits' device on first use."""
    if weights is None:
        from .loop import cross_entropy_loss

        return cross_entropy_loss
    cache: dict[torch.device, torch.Tensor] = {}

    def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        logits = model(batch.x)
        w = cache.get(logits.device)
        if w is None:
            w = cache[logits.device] = weights.to(logits.device, dtype=logits.dtype)
        return F.cross_entropy(logits, batch.y, weight=w)

    return loss_fn


def ce(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None, **kwargs: Any) -> torch.Tensor:
    """``F.cross_entropy`` with optional class ``weights`` (moved to the logits' device and dtype)."""
    if weights is not None:
        kwargs["weight"] = weights.to(logits.device, dtype=logits.dtype)
    return F.cross_entropy(logits, targets, **kwargs)


__all__ = [
    "CLASS_WEIGHT_MODES",
    "ClassWeightsSpec",
    "balanced_class_weights",
    "ce",
    "normalise_class_weights",
    "resolve_class_weights",
    "weighted_cross_entropy",
]
