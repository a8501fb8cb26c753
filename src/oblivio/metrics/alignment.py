"""Alignment with the gold model: accuracy gap, sample agreement and κ, activation distance, JS divergence, ZRF.

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


def correct_mask(logits: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Boolean ``[n]``: does the model's top-1 prediction equal the label, per sample.

    Example:
        >>> correct_mask(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1])).tolist()
        [True, False]
    """
    z = to_numpy(logits)
    y = to_numpy(labels).reshape(-1)
    if z.ndim != 2 or z.shape[0] != y.shape[0]:
        raise ValueError(f"logits must be [n, C] with n = len(labels); got {z.shape} and {y.shape}")
    return z.argmax(axis=1) == y


def cohen_kappa(a: ArrayLike, b: ArrayLike) -> float:
    """Cohen's κ of two raters' labels on the same samples: ``(p_o − p_e) / (1 − p_e)``.

    ``p_o`` is the observed agreement, ``p_e = Σ_k P_a(k) P_b(k)`` the agreement expected from the two label
    distributions alone. κ = 1 for perfect agreement, 0 for chance-level agreement at the same rates. When
    ``p_e = 1`` (both raters give one and the same label to every sample) κ is undefined: NaN. Written out
    (a few lines of numpy) rather than taken from scikit-learn so that the tests can use
    ``sklearn.metrics.cohen_kappa_score`` as an independent oracle; the formula is the same.

    Args:
        a: ``[n]`` labels of the first rater (booleans, ints or strings).
        b: ``[n]`` labels of the second rater, same samples in the same order.

    Example:
        >>> cohen_kappa([1, 1, 0, 0], [1, 1, 0, 0]), cohen_kappa([1, 0, 1, 0], [1, 1, 0, 0])
        (1.0, 0.0)
    """
    a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"the two label vectors must have the same length; got {a.shape[0]} and {b.shape[0]}")
    if a.size == 0:
        return float("nan")
    cats, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    ia, ib = inv[: a.size], inv[a.size :]
    p_o = float(np.mean(ia == ib))
    p_e = float(np.dot(np.bincount(ia, minlength=cats.size), np.bincount(ib, minlength=cats.size))) / a.size**2
    if p_e >= 1.0:
        return float("nan")
    return (p_o - p_e) / (1.0 - p_e)


def sample_agreement(logits_p: ArrayLike, logits_q: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of samples on which the two models are both right or both wrong (SPEC §6).

    δ only compares the *number* of forget samples each model gets right; sample agreement compares *which*:
    with ``M_u`` and ``M_g`` on ``D_f`` it is 1 only when the unlearned model is right exactly where gold is.

    Args:
        logits_p: ``[n, C]`` logits of one model (the unlearned model on ``D_f``).
        logits_q: ``[n, C]`` logits of the other (the gold model on the same samples, same order).
        labels: ``[n]`` true labels.

    Example:
        >>> u = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> g = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> round(sample_agreement(u, g, np.array([0, 0, 0])), 4)  # both right, u right g wrong, both wrong
        0.6667
    """
    cp, cq = correct_mask(logits_p, labels), correct_mask(logits_q, labels)
    if cp.size == 0:
        return float("nan")
    return float(np.mean(cp == cq))


def sample_kappa(logits_p: ArrayLike, logits_q: ArrayLike, labels: ArrayLike) -> float:
    """Cohen's κ of the two models' right/wrong outcomes per sample: :func:`sample_agreement` beyond chance.

    Chance is the agreement two models with the same accuracies would reach if their errors fell on independent
    samples, so a method that only matches gold's *count* of errors scores κ ≈ 0. NaN when both models are right
    on every sample (or both wrong on every one).

    Example:
        >>> u = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> sample_kappa(u, u, np.array([0, 0]))
        1.0
    """
    return cohen_kappa(correct_mask(logits_p, labels), correct_mask(logits_q, labels))


def random_subset_agreement(predicted: ArrayLike, truth: ArrayLike) -> float:
    """The fair null of a binary predictor: expected accuracy of a random subset of the same size.

    If ``predicted`` marks ``e`` of ``n`` samples positive and ``truth`` has ``g`` positives, choosing the ``e``
    positives uniformly at random gets, in expectation, ``(e·g + (n − e)(n − g)) / n²`` of the labels right. This,
    not "predict every sample positive", is what TMU's generalization-label predictor must beat: it already knows
    the rate (from the twin set) and is judged on which samples it picks.

    Args:
        predicted: ``[n]`` predicted 0/1 labels (TMU: 1 = predicted easy).
        truth: ``[n]`` true 0/1 labels (TMU: 1 = the gold model classifies the sample correctly).

    Example:
        >>> random_subset_agreement([1, 1, 1, 0], [1, 1, 0, 0])  # e = 3, g = 2: (6 + 2) / 16
        0.5
    """
    p, t = np.asarray(predicted).reshape(-1).astype(bool), np.asarray(truth).reshape(-1).astype(bool)
    if p.shape != t.shape:
        raise ValueError(f"predicted and truth must have the same length; got {p.shape[0]} and {t.shape[0]}")
    n = p.size
    if n == 0:
        return float("nan")
    e, g = int(p.sum()), int(t.sum())
    return (e * g + (n - e) * (n - g)) / n**2


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


__all__ = [
    "ActivationNorm",
    "accuracy_from_logits",
    "activation_distance",
    "cohen_kappa",
    "correct_mask",
    "delta",
    "js_divergence",
    "random_subset_agreement",
    "sample_agreement",
    "sample_kappa",
    "zrf_score",
]
