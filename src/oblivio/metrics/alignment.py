"""Alignment with the gold model: accuracy gap, activation distance, Jensen-Shannon divergence, ZRF.

"Aligned" means the unlearned model ``M_u`` behaves like the gold model ``M_g`` (retrained without the forget
set), not that it scores 0 % on the forget set. Every function here is pure: logits (torch or numpy) in,
a float out; softmax is taken inside, in float64.

Example:
    >>> import numpy as np
    >>> a = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    >>> accuracy_from_logits(a, np.array([0, 2]))
    0.5
    >>> js_divergence(a, a), zrf_score(a, a)
    (0.0, 1.0)
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ._utils import ArrayLike, softmax, to_numpy

ActivationNorm = Literal["l2", "l1"]
ACTIVATION_NORMS: tuple[str, ...] = ("l2", "l1")


def accuracy_from_logits(logits: ArrayLike, labels: ArrayLike) -> float:
    """Top-1 accuracy in ``[0, 1]`` (NaN for no samples).

    Example:
        >>> accuracy_from_logits(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]))
        0.5
    """
    z = to_numpy(logits)
    y = to_numpy(labels).reshape(-1)
    if z.ndim != 2 or z.shape[0] != y.shape[0]:
        raise ValueError(f"logits must be [n, C] with n = len(labels); got {z.shape} and {y.shape}")
    if y.size == 0:
        return float("nan")
    return float(np.mean(z.argmax(axis=1) == y))


def delta(acc_unlearned_forget: float, acc_gold_forget: float) -> float:
    """TMU's alignment gap ``δ = |ACC_Df(M_u) - ACC_Df(M_g)|``, in the units given (fractions or percent).

    Example:
        >>> round(delta(0.80, 0.87), 6), delta(86.0, 90.0)
        (0.07, 4.0)
    """
    return abs(float(acc_unlearned_forget) - float(acc_gold_forget))


def _check_pair(p: np.ndarray, q: np.ndarray) -> None:
    if p.shape != q.shape:
        raise ValueError(f"the two models' outputs must have the same shape; got {p.shape} and {q.shape}")


def activation_distance(logits_p: ArrayLike, logits_q: ArrayLike, *, norm: ActivationNorm = "l2") -> float:
    """Mean over samples of the distance between the two models' softmax outputs.

    ``norm="l2"`` is the variant of Bad Teacher and TMU (``activation_distance_l2`` in reports);
    ``norm="l1"`` is Golatkar et al.'s original (``activation_distance_l1``).

    Args:
        logits_p: ``[n, C]`` logits of one model (e.g. the unlearned model on ``D_f``).
        logits_q: ``[n, C]`` logits of the other (e.g. the gold model on the same samples, same order).
        norm: ``"l2"`` or ``"l1"``.

    Example:
        >>> big = 50.0
        >>> activation_distance(np.array([[big, 0.0]]), np.array([[0.0, big]]))  # one-hot vs one-hot
        1.4142135623730951
        >>> activation_distance(np.array([[big, 0.0]]), np.array([[0.0, big]]), norm="l1")
        2.0
    """
    if norm not in ACTIVATION_NORMS:
        raise ValueError(f"unknown norm {norm!r}; use one of {', '.join(ACTIVATION_NORMS)}")
    p, q = softmax(logits_p), softmax(logits_q)
    _check_pair(p, q)
    if p.shape[0] == 0:
        return float("nan")
    ord_ = 2 if norm == "l2" else 1
    return float(np.linalg.norm(p - q, ord=ord_, axis=1).mean())


def _xlogx_over(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise ``a log(a / b)`` with ``0 log 0 = 0``."""
    out = np.zeros_like(a)
    mask = a > 0
    out[mask] = a[mask] * (np.log(a[mask]) - np.log(b[mask]))
    return out


def js_divergence(logits_p: ArrayLike, logits_q: ArrayLike) -> float:
    """Mean over samples of the textbook Jensen-Shannon divergence of the two softmax outputs (natural log).

    ``JS(p, q) = ½ KL(p ‖ m) + ½ KL(q ‖ m)`` with ``m = (p + q) / 2``; it lies in ``[0, ln 2]``. This is not the
    "JSDiv" of the public Bad Teacher code (a reverse KL divided by the number of classes).

    Example:
        >>> round(js_divergence(np.array([[50.0, 0.0]]), np.array([[0.0, 50.0]])), 6)  # disjoint: ln 2
        0.693147
    """
    p, q = softmax(logits_p), softmax(logits_q)
    _check_pair(p, q)
    if p.shape[0] == 0:
        return float("nan")
    m = 0.5 * (p + q)
    js = 0.5 * _xlogx_over(p, m).sum(axis=1) + 0.5 * _xlogx_over(q, m).sum(axis=1)
    return float(np.clip(js, 0.0, None).mean())


def zrf_score(logits_model: ArrayLike, logits_random: ArrayLike) -> float:
    """Zero Retrain Forgetting score (Chundawat et al.): ``1 - mean JS(softmax(model), softmax(random model))``.

    Computed on the forget set against a randomly initialised model of the same architecture, with the textbook
    JS divergence of :func:`js_divergence`. 1 = the model answers like the random model on these samples.

    Example:
        >>> zrf_score(np.zeros((3, 4)), np.zeros((3, 4)))
        1.0
    """
    return 1.0 - js_divergence(logits_model, logits_random)


__all__ = ["ActivationNorm", "accuracy_from_logits", "delta", "activation_distance", "js_divergence", "zrf_score"]
