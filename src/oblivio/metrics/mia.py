"""Membership-inference metrics, each named by its variant (never a bare "MIA").

* :func:`loss_mia_lr` - the NeurIPS 2023 starting kit's attack: a logistic regression on the per-example
  cross-entropy loss, forget set (members) vs test set (non-members), cross-validated.
* :func:`salun_mia_efficacy` - SalUn's "MIA-efficacy": an RBF SVC on the true-class confidence, trained retain
  (members) vs test (non-members), applied to the forget set; efficacy = fraction predicted non-member.
* :func:`modified_entropy` - Song & Mittal's modified prediction entropy (a feature, per row).
* :func:`roc_auc` and :func:`tpr_at_fpr` - rank-based ROC summaries of any attack score.

For every variant the gold model's value is the target: an aligned method matches it, it does not go below it.

Example:
    >>> import numpy as np
    >>> roc_auc(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 1, 0, 0]))
    1.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from ._utils import ArrayLike, softmax, to_numpy

PROB_FLOOR = 1e-30
"""Probabilities are clamped to at least this inside logarithms (modified entropy, cross-entropy)."""


# ----------------------------------------------------------------------------------------------- features
def per_example_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Per-example cross-entropy loss ``-log softmax(z)_y`` (float64, via log-sum-exp).

    Example:
        >>> per_example_cross_entropy(np.array([[0.0, 0.0]]), np.array([1])).round(6)
        array([0.693147])
    """
    z = to_numpy(logits, dtype=np.float64)
    y = to_numpy(labels).astype(np.int64).reshape(-1)
    if z.ndim != 2 or z.shape[0] != y.shape[0]:
        raise ValueError(f"logits must be [n, C] with n = len(labels); got {z.shape} and {y.shape}")
    zmax = z.max(axis=1, keepdims=True)
    lse = (zmax + np.log(np.exp(z - zmax).sum(axis=1, keepdims=True)))[:, 0]
    return lse - z[np.arange(z.shape[0]), y]


def true_class_confidence(logits: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Softmax probability of the true class, per example (SalUn's MIA feature).

    Example:
        >>> true_class_confidence(np.array([[0.0, 0.0], [0.0, 50.0]]), np.array([0, 1])).round(6)
        array([0.5, 1. ])
    """
    p = softmax(logits)
    y = to_numpy(labels).astype(np.int64).reshape(-1)
    if p.shape[0] != y.shape[0]:
        raise ValueError(f"{p.shape[0]} rows of logits but {y.shape[0]} labels")
    return p[np.arange(p.shape[0]), y]


def modified_entropy(probs: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Song & Mittal's modified entropy, per row: ``-(1 - p_y) log p_y - Σ_{i≠y} p_i log(1 - p_i)``.

    Low for confident correct predictions (training members), high for confident wrong ones. Probabilities are
    clamped to ``[1e-30, 1]`` inside the logarithms so a one-hot row stays finite.

    Args:
        probs: ``[n, C]`` probabilities (softmax outputs, not logits).
        labels: ``[n]`` true labels.

    Example:
        >>> modified_entropy(np.array([[0.5, 0.5], [1.0, 0.0]]), np.array([0, 0])).round(6)
        array([0.693147, 0.      ])
    """
    p = to_numpy(probs, dtype=np.float64)
    y = to_numpy(labels).astype(np.int64).reshape(-1)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"probs must be [n, C] with n = len(labels); got {p.shape} and {y.shape}")
    rows = np.arange(p.shape[0])
    p_true = p[rows, y]
    log = lambda a: np.log(np.clip(a, PROB_FLOOR, 1.0))  # noqa: E731
    true_term = -(1.0 - p_true) * log(p_true)
    others = -p * log(1.0 - p)
    others[rows, y] = 0.0
    return true_term + others.sum(axis=1)


# ----------------------------------------------------------------------------------------------- ROC helpers
def _scores_labels(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = to_numpy(scores, dtype=np.float64).reshape(-1)
    y = to_numpy(labels).reshape(-1).astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    if y.all() or not y.any():
        raise ValueError("ROC summaries need both positives (label 1, members) and negatives (label 0)")
    return s, y


def roc_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve; higher score = more likely positive (member). Ties count one half.

    Computed from ranks (Mann-Whitney U), not by integrating a curve.

    Example:
        >>> roc_auc(np.array([0.5, 0.5, 0.2]), np.array([1, 0, 0]))
        0.75
    """
    s, y = _scores_labels(scores, labels)
    ranks = rankdata(s)  # average ranks for ties
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def tpr_at_fpr(scores: ArrayLike, labels: ArrayLike, *, fpr: float = 0.01) -> float:
    """Largest true-positive rate among thresholds "positive if score >= t" whose false-positive rate is <= ``fpr``.

    Example:
        >>> tpr_at_fpr(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0]), fpr=0.0)
        0.5
    """
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must be in [0, 1], got {fpr}")
    s, y = _scores_labels(scores, labels)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(~y_sorted)
    last_of_group = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # a threshold flags a whole group of ties
    tprs = np.r_[0.0, tp[last_of_group] / y.sum()]
    fprs = np.r_[0.0, fp[last_of_group] / (~y).sum()]
    return float(tprs[fprs <= fpr + 1e-12].max())


# ----------------------------------------------------------------------------------------------- attacks
@dataclass(frozen=True)
class LossLRMIAResult:
    """NeurIPS starting-kit membership inference: logistic regression on per-example loss, forget vs test.

    Attributes:
        accuracy: mean held-out accuracy over the stratified shuffle splits (the kit's number; gold ≈ 0.5).
        accuracy_std: its standard deviation over the splits.
        auc: ROC AUC of out-of-fold member probabilities (each sample scored once by a model not fit on it).
        tpr_at_1pct_fpr: TPR at 1 % FPR of the same out-of-fold scores.
        n_per_side: members and non-members used (the larger side is subsampled to the smaller).
    """

    accuracy: float
    accuracy_std: float
    auc: float
    tpr_at_1pct_fpr: float
    n_per_side: int


def _balanced_subsample(a: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return a if a.size == n else a[np.sort(rng.choice(a.size, size=n, replace=False))]


def loss_mia_lr(
    forget_losses: ArrayLike, test_losses: ArrayLike, *, n_splits: int = 10, seed: int = 0
) -> LossLRMIAResult:
    """Starting-kit loss MIA: can a logistic regression on the loss tell forget (member) from test samples?

    The kit subsamples the forget set to the size of the test set; here whichever side is larger is subsampled
    (seeded) so that both sides have ``min(|forget|, |test|)`` samples and chance is 0.5. Accuracy is
    ``LogisticRegression()`` (scikit-learn defaults) scored on ``StratifiedShuffleSplit(n_splits, test_size=0.1)``
    and averaged. AUC and TPR at 1 % FPR come from out-of-fold probabilities of a stratified ``n_splits``-fold
    cross-validation, so every sample is scored exactly once.

    Args:
        forget_losses: per-example cross-entropy losses on the forget set (members).
        test_losses: the same on the test set (non-members).
        n_splits: number of splits (10 in the kit).
        seed: seeds the subsampling and the splits.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> res = loss_mia_lr(rng.exponential(0.1, 200), rng.exponential(1.0, 200))
        >>> res.accuracy > 0.7, res.n_per_side
        (True, 200)
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit, cross_val_predict

    f = to_numpy(forget_losses, dtype=np.float64).reshape(-1)
    t = to_numpy(test_losses, dtype=np.float64).reshape(-1)
    n = min(f.size, t.size)
    if n < max(5, n_splits):
        raise ValueError(
            f"loss_mia_lr needs at least max(5, n_splits) samples per side; got {f.size} forget and {t.size} test"
        )
    rng = np.random.default_rng(seed)
    f, t = _balanced_subsample(f, n, rng), _balanced_subsample(t, n, rng)
    x = np.concatenate([f, t])[:, None]
    y = np.r_[np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)]
    splitter = StratifiedShuffleSplit(n_splits=n_splits, test_size=0.1, random_state=seed)
    accs = [LogisticRegression().fit(x[tr], y[tr]).score(x[te], y[te]) for tr, te in splitter.split(x, y)]
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    member_prob = cross_val_predict(LogisticRegression(), x, y, cv=folds, method="predict_proba")[:, 1]
    return LossLRMIAResult(
        accuracy=float(np.mean(accs)),
        accuracy_std=float(np.std(accs)),
        auc=roc_auc(member_prob, y),
        tpr_at_1pct_fpr=tpr_at_fpr(member_prob, y, fpr=0.01),
        n_per_side=n,
    )


@dataclass(frozen=True)
class SalunMIAResult:
    """SalUn's "MIA-efficacy": SVC on true-class confidence, trained retain vs test, applied to the forget set.

    Attributes:
        efficacy: fraction of forget samples predicted non-member (the gold model's value is the target).
        forget_member_rate: ``1 - efficacy``.
        n_train_per_side: retain (members) and test (non-members) samples the SVC was fit on, each.
        n_forget: forget samples scored.
    """

    efficacy: float
    forget_member_rate: float
    n_train_per_side: int
    n_forget: int


def salun_mia_efficacy(retain_conf: ArrayLike, test_conf: ArrayLike, forget_conf: ArrayLike) -> SalunMIAResult:
    """SalUn's MIA-efficacy from true-class confidences.

    An ``SVC(C=3, gamma="auto", kernel="rbf")`` is fit on the first ``|D_test|`` retain confidences (label 1,
    member) and the test confidences (label 0); efficacy is the fraction of forget samples it labels 0. When the
    retain set is smaller than the test set, the first ``|D_r|`` test samples are used instead (equal sides).

    Args:
        retain_conf: true-class softmax confidence on the retain set (its order decides which are "first").
        test_conf: the same on the test set.
        forget_conf: the same on the forget set.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> retain, test = rng.uniform(0.95, 1.0, 300), rng.uniform(0.0, 0.6, 200)
        >>> salun_mia_efficacy(retain, test, rng.uniform(0.0, 0.5, 50)).efficacy
        1.0
    """
    from sklearn.svm import SVC

    r = to_numpy(retain_conf, dtype=np.float64).reshape(-1)
    t = to_numpy(test_conf, dtype=np.float64).reshape(-1)
    f = to_numpy(forget_conf, dtype=np.float64).reshape(-1)
    n = min(r.size, t.size)
    if n == 0 or f.size == 0:
        raise ValueError(f"salun_mia_efficacy needs retain, test and forget samples; got {r.size}, {t.size}, {f.size}")
    x = np.concatenate([r[:n], t[:n]])[:, None]
    y = np.r_[np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)]
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)
    efficacy = float(np.mean(clf.predict(f[:, None]) == 0))
    return SalunMIAResult(
        efficacy=efficacy, forget_member_rate=1.0 - efficacy, n_train_per_side=n, n_forget=int(f.size)
    )


__all__ = [
    "LossLRMIAResult",
    "SalunMIAResult",
    "loss_mia_lr",
    "salun_mia_efficacy",
    "modified_entropy",
    "roc_auc",
    "tpr_at_fpr",
    "per_example_cross_entropy",
    "true_class_confidence",
]
