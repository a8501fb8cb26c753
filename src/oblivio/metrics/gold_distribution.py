"""Alignment against the gold *distribution* (SPEC §6, issue 23): G gold models instead of one gold draw.

One gold model is one sample of "a model retrained without ``D_f``": on 100 forget images two gold seeds disagree on a
few images, about as much as doing nothing disagrees with either. With G gold models (different seeds) each forget
image ``i`` gets ``p_i``, the share of gold models that classify it correctly, and a model ``M_u`` is scored by

* **expected agreement** ``E = mean_i [p_i if M_u is right on i else 1 − p_i]``: the probability that ``M_u`` agrees
  (both right or both wrong) with a gold model drawn at random, per image;
* its best possible value ``E* = mean_i max(p_i, 1 − p_i)`` (the Bayes decision: right exactly where most gold
  models are), which lies above what a further gold draw reaches (its ``E``, the floor of a retrained model);
* ``δ`` against the **mean** gold accuracy ``mean_g ACC_Df(M_g)`` (not one draw's);
* the **activation distance to the gold models' mean output**:
  ``mean_i ‖softmax(M_u)(x_i) − mean_g softmax(M_g)(x_i)‖``.

``E`` is a count statistic like sample agreement: ``E · n · G`` is an integer (each image contributes a multiple of
``1 / G``), so paired comparisons of ``E`` run on that grid (:func:`expected_agreement_count`). Every function is
pure: arrays in, numbers out (logits are turned into probabilities in float64 inside).

Example:
    >>> import numpy as np
    >>> gold = np.array([[1, 1, 0, 1], [1, 0, 0, 1], [1, 1, 0, 0]], dtype=bool)  # G = 3 gold models, n = 4 images
    >>> p = gold_probabilities(gold)
    >>> p.tolist()
    [1.0, 0.6666666666666666, 0.0, 0.6666666666666666]
    >>> expected_agreement(np.array([1, 1, 1, 1], dtype=bool), p)  # right everywhere: mean p
    0.5833333333333333
    >>> round(best_expected_agreement(p), 6)  # right on images 0, 1, 3, wrong on 2
    0.833333
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._utils import ArrayLike, softmax, to_numpy
from .alignment import ActivationNorm, correct_mask


def _bool_matrix(correct: ArrayLike) -> np.ndarray:
    c = np.asarray(to_numpy(correct))
    if c.ndim != 2 or c.shape[0] == 0:
        raise ValueError(f"gold correctness must be [G, n] with G >= 1, got shape {c.shape}")
    return c.astype(bool)


def gold_right_counts(correct: ArrayLike) -> np.ndarray:
    """``[n]`` integers: how many of the G gold models classify each image correctly (``correct`` is ``[G, n]``)."""
    return _bool_matrix(correct).sum(axis=0).astype(np.int64)


def gold_probabilities(correct: ArrayLike) -> np.ndarray:
    """``p_i``: the share of the G gold models right on image ``i`` (``correct`` is ``[G, n]`` booleans)."""
    c = _bool_matrix(correct)
    return c.sum(axis=0) / c.shape[0]


def _check(correct_u: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    u = np.asarray(to_numpy(correct_u)).reshape(-1).astype(bool)
    q = np.asarray(to_numpy(p), dtype=np.float64).reshape(-1)
    if u.shape != q.shape:
        raise ValueError(f"one correctness value per image: got {u.size} for {q.size} images")
    if q.size and (q.min() < 0 or q.max() > 1):
        raise ValueError("p must lie in [0, 1]")
    return u, q


def expected_agreement(correct_u: ArrayLike, p: ArrayLike) -> float:
    """``E = mean_i [p_i if M_u right on i else 1 − p_i]`` (NaN for no images).

    Args:
        correct_u: ``[n]`` booleans, whether ``M_u`` classifies image ``i`` correctly.
        p: ``[n]`` shares of gold models right on image ``i`` (:func:`gold_probabilities`).

    Example:
        >>> expected_agreement([True, False], [0.75, 0.25])
        0.75
    """
    u, q = _check(correct_u, p)
    if q.size == 0:
        return float("nan")
    return float(np.where(u, q, 1.0 - q).mean())


def expected_agreement_count(correct_u: ArrayLike, right_counts: ArrayLike, n_gold: int) -> int:
    """``E · n · G`` as an exact integer: ``Σ_i [k_i if M_u right on i else G − k_i]`` with ``k_i`` gold models right.

    Example:
        >>> expected_agreement_count([True, False], [3, 1], 4)  # (3 + 3) = E · 2 · 4 with E = 0.75
        6
    """
    u = np.asarray(to_numpy(correct_u)).reshape(-1).astype(bool)
    k = np.asarray(to_numpy(right_counts)).reshape(-1).astype(np.int64)
    if u.shape != k.shape:
        raise ValueError(f"one correctness value per image: got {u.size} for {k.size} images")
    if k.size and (k.min() < 0 or k.max() > n_gold):
        raise ValueError(f"right counts must lie in [0, {n_gold}]")
    return int(np.where(u, k, n_gold - k).sum())


def best_expected_agreement(p: ArrayLike) -> float:
    """``E* = mean_i max(p_i, 1 − p_i)``: the expected agreement of the Bayes decision (NaN for no images).

    Example:
        >>> best_expected_agreement([0.75, 0.25, 0.5])
        0.6666666666666666
    """
    q = np.asarray(to_numpy(p), dtype=np.float64).reshape(-1)
    if q.size == 0:
        return float("nan")
    return float(np.maximum(q, 1.0 - q).mean())


def delta_to_mean_gold(acc_unlearned_forget: float, gold_accuracies: Sequence[float]) -> float:
    """``|ACC_Df(M_u) − mean_g ACC_Df(M_g)|``: δ against the gold distribution's mean, not one draw.

    Example:
        >>> round(delta_to_mean_gold(0.80, [0.84, 0.86, 0.88, 0.82]), 6)
        0.05
    """
    g = np.asarray(gold_accuracies, dtype=np.float64).reshape(-1)
    if g.size == 0:
        raise ValueError("need at least one gold accuracy")
    return abs(float(acc_unlearned_forget) - float(g.mean()))


def mean_gold_output_distance(
    logits_u: ArrayLike, gold_logits: Sequence[ArrayLike], *, norm: ActivationNorm = "l2"
) -> float:
    """Mean over images of ``‖softmax(M_u)(x_i) − mean_g softmax(M_g)(x_i)‖`` (L2 by default, L1 with ``norm="l1"``).

    Args:
        logits_u: ``[n, C]`` logits of the model on ``D_f``.
        gold_logits: G arrays ``[n, C]``: each gold model's logits on the same images, same order.
        norm: ``"l2"`` (Bad Teacher / TMU's activation distance) or ``"l1"``.

    Example:
        >>> z = np.array([[50.0, 0.0]])
        >>> mean_gold_output_distance(z, [np.array([[50.0, 0.0]]), np.array([[0.0, 50.0]])], norm="l1")
        1.0
    """
    if not gold_logits:
        raise ValueError("need at least one gold model's logits")
    pu = softmax(logits_u)
    mean = np.mean([softmax(z) for z in gold_logits], axis=0)
    if pu.shape != mean.shape:
        raise ValueError(f"the outputs must have one shape; got {pu.shape} and {mean.shape}")
    if pu.shape[0] == 0:
        return float("nan")
    return float(np.linalg.norm(pu - mean, ord=2 if norm == "l2" else 1, axis=1).mean())


def gold_distribution_metrics(
    logits_u: ArrayLike, gold_logits: Sequence[ArrayLike], labels: ArrayLike, *, prefix: str = ""
) -> dict[str, float | int]:
    """Everything of this module for one model on ``D_f``, as a flat dict (the runner's ``gold-distribution``
    extra): ``expected_agreement``, ``expected_agreement_count`` (its integer on the ``n · G`` grid),
    ``delta_mean_gold``, ``activation_distance_mean_gold_l2``, each key prefixed by ``prefix``.

    Example:
        >>> z = np.array([[2.0, 0.0], [0.0, 2.0]])
        >>> m = gold_distribution_metrics(z, [z, z[::-1]], np.array([0, 0]))
        >>> m["expected_agreement"], m["expected_agreement_count"], m["delta_mean_gold"]
        (0.5, 2, 0.0)
    """
    y = np.asarray(to_numpy(labels)).reshape(-1)
    correct_g = np.stack([correct_mask(z, y) for z in gold_logits])
    k = gold_right_counts(correct_g)
    u = correct_mask(logits_u, y)
    return {
        f"{prefix}expected_agreement": expected_agreement(u, k / len(gold_logits)),
        f"{prefix}expected_agreement_count": expected_agreement_count(u, k, len(gold_logits)),
        f"{prefix}delta_mean_gold": delta_to_mean_gold(float(u.mean()) if u.size else float("nan"), correct_g.mean(1)),
        f"{prefix}activation_distance_mean_gold_l2": mean_gold_output_distance(logits_u, gold_logits),
    }


__all__ = [
    "best_expected_agreement",
    "delta_to_mean_gold",
    "expected_agreement",
    "expected_agreement_count",
    "gold_distribution_metrics",
    "gold_probabilities",
    "gold_right_counts",
    "mean_gold_output_distance",
]
