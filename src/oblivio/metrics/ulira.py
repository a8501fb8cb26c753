"""U-LiRA (Hayes et al. 2024): can a likelihood-ratio attack tell an unlearned model from a retrained one?

For each target example, two Gaussians are fitted to its logit-scaled confidence (LiRA's score; see
:func:`oblivio.metrics.logit_scaled_confidence`): one over shadow IN models (unlearned models that had the example
in their forget set) and one over shadow OUT models (models that never trained on it). A held-out target model's
score on the example gets the log-likelihood ratio ``log N(s; μ_in, σ_in) - log N(s; μ_out, σ_out)``; high means
"this model unlearned the example" rather than "this model never saw it". Accuracy is the best balanced accuracy
over thresholds, ``max_t ½(TPR + TNR)``: 0.5 means the unlearned models are indistinguishable from retraining.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> same = ulira(rng.normal(size=(40, 30)), rng.normal(size=(40, 30)), n_target_models=10, seed=0)
    >>> bool(same.accuracy < 0.6)
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._utils import ArrayLike, to_numpy
from .mia import roc_auc, tpr_at_fpr

MIN_STD = 1e-6
"""Floor on fitted standard deviations (a shadow set with one repeated value would give an infinite ratio)."""


@dataclass(frozen=True)
class ULiRAResult:
    """U-LiRA attack on held-out target models.

    Attributes:
        accuracy: ``max over thresholds of ½(TPR + TNR)``; 0.5 = indistinguishable from retraining.
        auc: ROC AUC of the log-likelihood ratio (IN = positive).
        tpr_at_1pct_fpr: TPR at 1 % FPR.
        n_in: scored (target model, example) pairs that were IN (unlearned).
        n_out: scored pairs that were OUT (retrained / never trained on).
    """

    accuracy: float
    auc: float
    tpr_at_1pct_fpr: float
    n_in: int
    n_out: int


def _fit(shadow: np.ndarray, fix_variance: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-example mean and std over shadow models (NaN = that model has no score for that example)."""
    counts = np.sum(~np.isnan(shadow), axis=0)
    if (counts == 0).any():
        raise ValueError("every example needs at least one IN and one OUT shadow score")
    mu = np.nanmean(shadow, axis=0)
    sd = np.sqrt(np.nanmean((shadow - mu) ** 2, axis=0))  # maximum-likelihood fit (ddof = 0)
    if fix_variance:  # LiRA's "global variance": one std for every example, the median of the per-example ones
        sd = np.full_like(sd, np.median(sd))
    return mu, np.maximum(sd, MIN_STD)


def _log_normal_pdf(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * np.log(2.0 * np.pi * sd**2) - 0.5 * ((x - mu) / sd) ** 2


def ulira_log_likelihood_ratio(
    shadow_in: ArrayLike, shadow_out: ArrayLike, target_scores: ArrayLike, *, fix_variance: bool = False
) -> np.ndarray:
    """Log-likelihood ratio IN vs OUT of each target score.

    Args:
        shadow_in: ``[S_in, n_examples]`` scores of the examples under shadow IN (unlearned) models; NaN where a
            shadow model did not have that example in its forget set.
        shadow_out: ``[S_out, n_examples]`` scores under shadow OUT (retrained) models; NaN where missing.
        target_scores: ``[T, n_examples]`` (or ``[n_examples]``) scores under held-out target models.
        fix_variance: use one standard deviation per side for all examples (helps with few shadow models).

    Returns:
        Array shaped like ``target_scores``; larger = more likely IN.

    Example:
        >>> sin = np.array([[1.0], [1.2], [0.8]]); sout = np.array([[-1.0], [-1.2], [-0.8]])
        >>> bool(ulira_log_likelihood_ratio(sin, sout, np.array([[1.0], [-1.0]]))[0, 0] > 0)
        True
    """
    s_in = np.atleast_2d(to_numpy(shadow_in, dtype=np.float64))
    s_out = np.atleast_2d(to_numpy(shadow_out, dtype=np.float64))
    x = to_numpy(target_scores, dtype=np.float64)
    if s_in.shape[1] != s_out.shape[1] or x.shape[-1] != s_in.shape[1]:
        raise ValueError(
            f"shadow_in {s_in.shape}, shadow_out {s_out.shape} and target_scores {x.shape} must share the last "
            "(example) dimension"
        )
    mu_in, sd_in = _fit(s_in, fix_variance)
    mu_out, sd_out = _fit(s_out, fix_variance)
    return _log_normal_pdf(x, mu_in, sd_in) - _log_normal_pdf(x, mu_out, sd_out)


def best_balanced_accuracy(scores: ArrayLike, labels: ArrayLike) -> float:
    """``max over thresholds t of ½(TPR + TNR)`` for "positive if score >= t" (never below 0.5).

    Example:
        >>> best_balanced_accuracy(np.array([3.0, 2.0, 1.0, 0.0]), np.array([1, 0, 1, 0]))
        0.75
    """
    s = to_numpy(scores, dtype=np.float64).reshape(-1)
    y = to_numpy(labels).reshape(-1).astype(bool)
    if s.shape != y.shape or y.all() or not y.any():
        raise ValueError("need as many labels as scores, with both positives and negatives")
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    last_of_group = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tpr = np.cumsum(y_sorted)[last_of_group] / y.sum()
    fpr = np.cumsum(~y_sorted)[last_of_group] / (~y).sum()
    return float(max(0.5, np.max(0.5 * (tpr + 1.0 - fpr))))


def ulira_accuracy(
    shadow_in: ArrayLike,
    shadow_out: ArrayLike,
    target_scores: ArrayLike,
    target_is_in: ArrayLike,
    *,
    fix_variance: bool = False,
) -> ULiRAResult:
    """U-LiRA accuracy on given target scores.

    Args:
        shadow_in: ``[S_in, n_examples]`` shadow IN scores (NaN allowed where missing).
        shadow_out: ``[S_out, n_examples]`` shadow OUT scores.
        target_scores: ``[T, n_examples]`` scores under held-out target models (NaN = not scored).
        target_is_in: ``[T, n_examples]`` (or ``[T]``, one flag per target model) True where the target model is
            an unlearned model that had the example in its forget set.
        fix_variance: see :func:`ulira_log_likelihood_ratio`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> sin, sout = rng.normal(3, 1, (20, 10)), rng.normal(0, 1, (20, 10))
        >>> tgt = np.vstack([rng.normal(3, 1, (5, 10)), rng.normal(0, 1, (5, 10))])
        >>> ulira_accuracy(sin, sout, tgt, np.r_[np.ones(5), np.zeros(5)]).accuracy > 0.9
        True
    """
    x = np.atleast_2d(to_numpy(target_scores, dtype=np.float64))
    flags = to_numpy(target_is_in).astype(bool)
    if flags.ndim == 1 and flags.shape[0] == x.shape[0]:
        flags = np.broadcast_to(flags[:, None], x.shape)
    if flags.shape != x.shape:
        raise ValueError(f"target_is_in must be [T] or [T, n_examples] = {x.shape}; got {flags.shape}")
    llr = ulira_log_likelihood_ratio(shadow_in, shadow_out, x, fix_variance=fix_variance)
    keep = ~np.isnan(llr)
    scores, labels = llr[keep], flags[keep]
    return ULiRAResult(
        accuracy=best_balanced_accuracy(scores, labels),
        auc=roc_auc(scores, labels),
        tpr_at_1pct_fpr=tpr_at_fpr(scores, labels, fpr=0.01),
        n_in=int(labels.sum()),
        n_out=int((~labels).sum()),
    )


def ulira(
    in_scores: ArrayLike,
    out_scores: ArrayLike,
    *,
    n_target_models: int,
    seed: int = 0,
    fix_variance: bool = False,
) -> ULiRAResult:
    """U-LiRA with held-out targets: ``n_target_models`` models of each side are targets, the rest are shadows.

    Args:
        in_scores: ``[M_in, n_examples]`` scores under unlearned models that had each example in their forget set.
        out_scores: ``[M_out, n_examples]`` scores under retrained models that never trained on the examples.
        n_target_models: models held out per side (chosen at random with ``seed``).
        seed: seeds the choice of targets.
        fix_variance: see :func:`ulira_log_likelihood_ratio`.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> ulira(rng.normal(4, 1, (30, 20)), rng.normal(0, 1, (30, 20)), n_target_models=8).accuracy > 0.95
        True
    """
    a_in = np.atleast_2d(to_numpy(in_scores, dtype=np.float64))
    a_out = np.atleast_2d(to_numpy(out_scores, dtype=np.float64))
    k = int(n_target_models)
    if k < 1 or a_in.shape[0] - k < 1 or a_out.shape[0] - k < 1:
        raise ValueError(
            f"need 1 <= n_target_models < models per side; got {k} with {a_in.shape[0]} IN and {a_out.shape[0]} OUT"
        )
    rng = np.random.default_rng(seed)
    perm_in, perm_out = rng.permutation(a_in.shape[0]), rng.permutation(a_out.shape[0])
    targets = np.vstack([a_in[perm_in[:k]], a_out[perm_out[:k]]])
    flags = np.r_[np.ones(k, dtype=bool), np.zeros(k, dtype=bool)]
    return ulira_accuracy(a_in[perm_in[k:]], a_out[perm_out[k:]], targets, flags, fix_variance=fix_variance)


__all__ = ["ULiRAResult", "ulira", "ulira_accuracy", "ulira_log_likelihood_ratio", "best_balanced_accuracy"]
