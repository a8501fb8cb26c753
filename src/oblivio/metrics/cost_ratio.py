"""Cost of an unlearning run relative to retraining from scratch: the one place the ratios are computed.

A run's cost is a :class:`RunCost` (wall seconds, CPU seconds, forward / backward sample-passes); the reference is
the gold model's training (retraining on ``D_r``). :func:`cost_ratios` gives RTE on wall seconds (``rte``), on CPU
seconds (``rte_cpu``) and the sample-pass ratio (``sample_pass_ratio``, forward-equivalent passes, see
:func:`oblivio.metrics.cost.sample_passes_total`); :func:`cost_fields` adds the raw numbers beside them, under the
keys result rows use (``method_*``, ``gold_train_*``). A ratio is None when either side is unknown or the reference
is zero.

Example:
    >>> method = RunCost(seconds=3.0, cpu_seconds=2.0, forward_samples=100, backward_samples=50)
    >>> gold = RunCost.from_mapping({"train_seconds": 30.0, "train_cpu_seconds": 40.0,
    ...                              "train_forward_samples": 1000, "train_backward_samples": 1000}, prefix="train_")
    >>> cost_ratios(method, gold)
    {'rte': 0.1, 'rte_cpu': 0.05, 'sample_pass_ratio': 0.06666666666666667}
    >>> cost_ratios(method, None)["rte"] is None
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .cost import rte, sample_passes_total

COST_KEYS: tuple[str, ...] = (
    "method_seconds",
    "gold_train_seconds",
    "rte",
    "method_cpu_seconds",
    "gold_train_cpu_seconds",
    "rte_cpu",
    "method_forward_samples",
    "method_backward_samples",
    "gold_train_forward_samples",
    "gold_train_backward_samples",
    "sample_pass_ratio",
)
"""The keys of :func:`cost_fields` (the ``"cost"`` group of :func:`~oblivio.metrics.report.evaluate_unlearning`)."""


@dataclass(frozen=True)
class RunCost:
    """What one run cost: wall seconds, CPU seconds (all threads) and sample-passes; None where not measured.

    Example:
        >>> RunCost.from_mapping({"seconds": 1.5, "cpu_seconds": 1.0})
        RunCost(seconds=1.5, cpu_seconds=1.0, forward_samples=None, backward_samples=None)
    """

    seconds: float | None = None
    cpu_seconds: float | None = None
    forward_samples: float | None = None
    backward_samples: float | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, *, prefix: str = "") -> RunCost:
        """Read ``{prefix}seconds``, ``{prefix}cpu_seconds``, ``{prefix}forward_samples``,
        ``{prefix}backward_samples``: a method's ``info`` (no prefix) or a stored model's training meta
        (``prefix="train_"``)."""
        v = values or {}
        return cls(*(v.get(prefix + k) for k in ("seconds", "cpu_seconds", "forward_samples", "backward_samples")))


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return rte(value, reference)


def cost_ratios(method: RunCost, reference: RunCost | None) -> dict[str, float | None]:
    """``rte`` (wall), ``rte_cpu`` and ``sample_pass_ratio`` of ``method`` against ``reference`` (below 1 = cheaper
    than retraining); each None when a side is unknown or the reference is zero."""
    ref = reference or RunCost()
    passes = None
    if None not in (method.forward_samples, method.backward_samples, ref.forward_samples, ref.backward_samples):
        passes = _ratio(sample_passes_total(asdict(method)), sample_passes_total(asdict(ref)))
    return {
        "rte": _ratio(method.seconds, ref.seconds),
        "rte_cpu": _ratio(method.cpu_seconds, ref.cpu_seconds),
        "sample_pass_ratio": passes,
    }


def cost_fields(method: RunCost, reference: RunCost | None) -> dict[str, float | None]:
    """The :data:`COST_KEYS`: ``method``'s and ``reference``'s (the gold training's) numbers and their ratios."""
    ref = reference or RunCost()
    ratios = cost_ratios(method, ref)
    out = {
        "method_seconds": method.seconds,
        "gold_train_seconds": ref.seconds,
        "rte": ratios["rte"],
        "method_cpu_seconds": method.cpu_seconds,
        "gold_train_cpu_seconds": ref.cpu_seconds,
        "rte_cpu": ratios["rte_cpu"],
        "method_forward_samples": method.forward_samples,
        "method_backward_samples": method.backward_samples,
        "gold_train_forward_samples": ref.forward_samples,
        "gold_train_backward_samples": ref.backward_samples,
        "sample_pass_ratio": ratios["sample_pass_ratio"],
    }
    return out


__all__ = ["COST_KEYS", "RunCost", "cost_fields", "cost_ratios"]
