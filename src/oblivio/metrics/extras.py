"""Pluggable metric groups ("extras") for :func:`oblivio.metrics.report.evaluate_unlearning`.

In the manner of torchmetrics' ``MetricCollection``: :func:`~oblivio.metrics.report.evaluate_unlearning` assembles
one flat dict from keyed groups. The built-in groups follow its arguments (``"accuracy"`` always, ``"mia"`` with
``mia=True``, ``"gold-comparison"`` with ``gold``, ``"zrf"`` with ``random_model``); an *extra* is one more group,
named in ``extras=[...]``: a registered name (:func:`list_extras`) or an :class:`Extra` object, which is how a
higher layer plugs in a group that needs its own imports (the runner's ``label-accuracy``, the ledger's
``twin-estimate``).

An extra is a function ``fn(ctx) -> {key: value}`` of an :class:`EvalContext`: the models and splits, the method's
``info`` and cost, and the logits already computed (shared, so that an extra never repeats a forward pass).

Registered here:

* ``"original"`` (needs ``original``, the model before unlearning): ``original_acc_forget``,
  ``original_acc_retain``, ``original_acc_test`` and, with ``gold``, ``original_sample_agreement`` and
  ``original_activation_distance_l2`` (the "do nothing" references of ``sample_agreement`` and
  ``activation_distance_l2``).
* ``"tta"``: test-time-augmentation accuracy on the forget set, ``tta_<view>`` (and ``gold_tta_<view>`` with
  ``gold``), and ``chance`` (1 / number of classes).
* ``"cost"``: the method's cost (``cost=``) beside the gold training's (``reference_cost=``) and their ratios, the
  :data:`~oblivio.metrics.cost_ratio.COST_KEYS` (:func:`~oblivio.metrics.cost_ratio.cost_fields`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.base import ImageDataset
from ..registry import Registry
from ..training.evaluate import predict_logits
from .alignment import activation_distance, sample_agreement
from .cost_ratio import RunCost, cost_fields

BUILTIN_GROUPS: tuple[str, ...] = ("accuracy", "mia", "gold-comparison", "zrf")
"""Groups :func:`~oblivio.metrics.report.evaluate_unlearning` computes from its own arguments."""
ROLES: tuple[str, ...] = ("model", "gold", "original", "random_model")


@dataclass
class EvalContext:
    """What an extra may read: the models, the splits, the method's ``info`` and cost, the metrics so far.

    Attributes:
        model: the unlearned model. gold / original / random_model: the gold model, the model before unlearning
            and a random initialisation (None when not given).
        splits: ``{"forget", "retain", "test"}`` datasets.
        info: the method's ``info`` (``{}`` when not given).
        cost: the method's :class:`RunCost`; reference_cost: the gold training's (None when unknown).
        seed, batch_size: as passed to ``evaluate_unlearning``.
        metrics: the keys assembled so far (read them, do not write: return new keys instead).
    """

    model: nn.Module
    splits: dict[str, ImageDataset]
    gold: nn.Module | None = None
    original: nn.Module | None = None
    random_model: nn.Module | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    cost: RunCost | None = None
    reference_cost: RunCost | None = None
    seed: int = 0
    batch_size: int = 512
    metrics: dict[str, Any] = field(default_factory=dict)
    _logits: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def forget(self) -> ImageDataset:
        return self.splits["forget"]

    def logits(self, role: str, split: str) -> np.ndarray:
        """float64 logits of ``role`` (``"model"``, ``"gold"``, ``"original"``, ``"random_model"``) on ``split``,
        computed once per evaluation."""
        key = (role, split)
        if key not in self._logits:
            net = getattr(self, role) if role in ROLES else None
            if net is None:
                raise ValueError(f"no {role!r} model in this evaluation (roles: {', '.join(ROLES)})")
            self._logits[key] = predict_logits(net, self.splits[split], batch_size=self.batch_size).double().numpy()
        return self._logits[key]


@dataclass(frozen=True)
class Extra:
    """A named metric group: ``fn(ctx) -> {key: value}``; ``needs`` names the :class:`EvalContext` fields that must
    be set (``"gold"``, ``"original"``, ``"random_model"``, ``"cost"``, ``"reference_cost"``)."""

    name: str
    fn: Callable[[EvalContext], dict[str, Any]]
    needs: tuple[str, ...] = ()

    def __call__(self, ctx: EvalContext) -> dict[str, Any]:
        missing = [n for n in self.needs if getattr(ctx, n) is None]
        if missing:
            raise ValueError(
                f"metric extra {self.name!r} needs {', '.join(f'{n}=...' for n in missing)} passed to "
                "evaluate_unlearning"
            )
        return self.fn(ctx)


EXTRAS: Registry[Extra] = Registry("metric extra")


def register_extra(name: str, *, needs: Iterable[str] = ()) -> Callable[[Callable[[EvalContext], dict]], Extra]:
    """Decorator: register ``fn(ctx) -> dict`` as the extra ``name``; returns the :class:`Extra`."""

    def decorator(fn: Callable[[EvalContext], dict]) -> Extra:
        return EXTRAS.register(name)(Extra(name, fn, tuple(needs)))

    return decorator


def list_extras() -> list[str]:
    """Registered extra names, and the built-in group names that ``extras=`` also accepts."""
    return sorted({*EXTRAS.names(), *BUILTIN_GROUPS})


def resolve_extra(extra: str | Extra) -> Extra:
    """An :class:`Extra` as is, or the one registered under a name (the error names the valid ones)."""
    if isinstance(extra, Extra):
        return extra
    try:
        return EXTRAS.get(str(extra))
    except KeyError:
        raise KeyError(f"unknown metric extra {extra!r}; valid: {', '.join(list_extras())}") from None


def _accuracy_f32(logits: np.ndarray, labels: torch.Tensor) -> float:
    """Top-1 accuracy as :func:`oblivio.training.accuracy` computes it (a float32 mean), NaN when empty: the value
    result rows have always recorded for ``original_acc_*``."""
    if len(labels) == 0:
        return float("nan")
    return float((torch.from_numpy(logits).argmax(1) == labels).float().mean())


@register_extra("original", needs=("original",))
def original_reference(ctx: EvalContext) -> dict[str, Any]:
    """The model before unlearning: its accuracies and, with a gold model, its sample agreement with it and the
    activation distance (L2) of its outputs to gold's on ``D_f``."""
    out: dict[str, Any] = {
        f"original_acc_{name}": _accuracy_f32(ctx.logits("original", name), ds.labels)
        for name, ds in ctx.splits.items()
    }
    if ctx.gold is not None and len(ctx.forget):
        out["original_sample_agreement"] = sample_agreement(
            ctx.logits("original", "forget"), ctx.logits("gold", "forget"), ctx.forget.labels.numpy()
        )
        out["original_activation_distance_l2"] = activation_distance(
            ctx.logits("original", "forget"), ctx.logits("gold", "forget"), norm="l2"
        )
    return out


@register_extra("tta")
def tta(ctx: EvalContext) -> dict[str, Any]:
    """Test-time-augmentation accuracy on the forget set (and the gold model's), and chance level."""
    from .tta import tta_accuracy

    out: dict[str, Any] = {f"tta_{k}": v for k, v in tta_accuracy(ctx.model, ctx.forget).items()}
    if ctx.gold is not None:
        out.update({f"gold_tta_{k}": v for k, v in tta_accuracy(ctx.gold, ctx.forget).items()})
    out["chance"] = 1.0 / ctx.forget.num_classes
    return out


@register_extra("cost")
def cost(ctx: EvalContext) -> dict[str, Any]:
    """The method's cost beside the gold training's, and RTE (wall, CPU) and the sample-pass ratio."""
    return cost_fields(ctx.cost or RunCost(), ctx.reference_cost)


__all__ = ["BUILTIN_GROUPS", "EXTRAS", "EvalContext", "Extra", "list_extras", "register_extra", "resolve_extra"]
