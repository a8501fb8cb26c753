"""NeurIPS 2023 machine-unlearning challenge forget quality, as pure functions on score arrays.

The metric compares, for every forget example, two empirical distributions of the example's logit-scaled
confidence: one over ``N`` unlearned models (``u``) and one over ``N`` retrained / gold models (``r``). A family
of simple membership attacks (single thresholds and intervals) is run on the ``2N`` values; each attack's false
positive and false negative rates give a differential-privacy style ``ε``; the example's ``ε`` is the largest
one found. ``ε`` is bucketed into a score ``H = 2^-k`` and ``F`` is the mean ``H`` over the forget set.

The exact rules (grids, tie-breaks, caps) are those of ``SPEC.md`` §8 and are written out in ``docs/metrics.md``.
The fast path sorts each example's two sets once and counts with :func:`numpy.searchsorted`, so all thresholds
of one example cost a few binary searches; ``ε`` is read from a table indexed by the integer counts.
The tests compare it with a literal oracle written from SPEC §8 alone (every threshold compared with every model,
no code shared with this module); ``benchmarks/forget_quality_speed.py`` times the two.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> u = rng.normal(size=(64, 20))          # 64 unlearned models, 20 forget examples
    >>> r = rng.normal(size=(64, 20))          # 64 retrained models, same distribution
    >>> res = forget_quality(u, r)
    >>> res.n_bins, res.epsilons.shape
    (10, (20,))
    >>> 0.0 <= res.forget_quality <= 1.0
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ._utils import ArrayLike, to_numpy

EPSILON_CAP = 50.0
"""ε of a perfectly separable (or deterministic) example, and the upper clip of every ε."""
DEFAULT_DELTA = 1e-5
"""The δ of (ε, δ) used by the challenge."""
POINTS_PER_UNIT = 100
"""Grid density of single thresholds and interval right ends (points per unit of logit-scaled confidence)."""
INTERVAL_MARGIN = 2.0
"""Interval right ends span ``[min_P + w - 2, max_P + 2]``; left ends ``[r - w - 2, r - w + 2]``."""
INTERVAL_LEFT_POINTS = 400
"""Number of left ends tried for each right end of an interval attack."""
BIN_WIDTH = 0.5
"""Width of an ε bucket: ``k = floor(ε / 0.5)``."""
DETERMINISTIC_RATIO = 0.01
"""``min(range_u, range_r) / max(range_u, range_r)`` below this means a deterministic method: ε = 50."""
LOG_FLOOR = 1e-45
"""Added inside the logarithms of the logit-scaled confidence."""


# ----------------------------------------------------------------------------------------------- scores
def logit_scaled_confidence(logits: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Per-example logit-scaled confidence ``log p_y - log Σ_{j≠y} p_j`` (float64).

    Computed as the challenge does: float64, logits shifted by their row maximum, softmax, and ``1e-45`` added
    inside both logarithms (so a saturated softmax gives a large finite value, not ``inf``).

    Args:
        logits: ``[n, C]`` logits (torch or numpy).
        labels: ``[n]`` integer true labels.

    Returns:
        ``[n]`` float64 array.

    Example:
        >>> logit_scaled_confidence(np.array([[2.0, 0.0], [0.0, 3.0]]), np.array([0, 0])).round(6)
        array([ 2., -3.])
    """
    z = to_numpy(logits, dtype=np.float64)
    y = to_numpy(labels).astype(np.int64).reshape(-1)
    if z.ndim != 2 or z.shape[0] != y.shape[0]:
        raise ValueError(f"logits must be [n, C] with n = len(labels); got {z.shape} and {y.shape}")
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    rows = np.arange(z.shape[0])
    p_true = p[rows, y]
    others = p.copy()
    others[rows, y] = 0.0
    p_rest = others.sum(axis=1)  # summed, not 1 - p_y: no cancellation when p_y is close to 1
    return np.log(p_true + LOG_FLOOR) - np.log(p_rest + LOG_FLOOR)


# ----------------------------------------------------------------------------------------------- ε
def _n_grid_points(span: float) -> int:
    """Points of a grid covering ``span`` units at ``POINTS_PER_UNIT`` per unit: exactly ``ceil(100 · span)``.

    The organisers' scorer rounds up (``ceil``), not to nearest: the two differ on real data (SPEC §8). ``span`` is
    positive here (a zero range is caught as deterministic first), so the grid has at least one point.
    """
    return max(1, math.ceil(POINTS_PER_UNIT * span))


def _epsilon_from_rates(fpr: np.ndarray, fnr: np.ndarray, delta: float) -> np.ndarray:
    """ε of each attack from its rates; ``+inf`` when both are 0, ``-inf`` (dropped) when exactly one is 0."""
    fpr = np.asarray(fpr, dtype=np.float64)
    fnr = np.asarray(fnr, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(1.0 - delta - fpr) - np.log(fnr)
        b = np.log(1.0 - delta - fnr) - np.log(fpr)
    a = np.where(np.isnan(a), -np.inf, a)  # log of a negative number: that side says nothing
    b = np.where(np.isnan(b), -np.inf, b)
    eps = np.maximum(0.0, np.maximum(a, b))
    both = (fpr == 0) & (fnr == 0)
    one = (fpr == 0) ^ (fnr == 0)
    eps = np.where(one, -np.inf, eps)
    return np.where(both, np.inf, eps)


@lru_cache(maxsize=64)
def _epsilon_table(n_pos: int, n_neg: int, delta: float) -> np.ndarray:
    """``table[tp, fp]``: ε of an attack that flags ``tp`` of ``n_pos`` positives and ``fp`` of ``n_neg`` negatives."""
    tp = np.arange(n_pos + 1, dtype=np.float64)[:, None]
    fp = np.arange(n_neg + 1, dtype=np.float64)[None, :]
    fnr = (n_pos - tp) / n_pos
    fpr = fp / n_neg
    table = _epsilon_from_rates(
        np.broadcast_to(fpr, (n_pos + 1, n_neg + 1)), np.broadcast_to(fnr, (n_pos + 1, n_neg + 1)), delta
    )
    table.setflags(write=False)
    return table


def _is_deterministic(u: np.ndarray, r: np.ndarray) -> bool:
    ranges = (float(u.max() - u.min()), float(r.max() - r.min()))
    hi = max(ranges)
    return hi == 0.0 or min(ranges) / hi < DETERMINISTIC_RATIO


def _interval_grids(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Right ends ``[R]`` and left ends ``[R, 400]`` of the interval attacks around the positive set ``pos``."""
    lo_p, hi_p = float(pos.min()), float(pos.max())
    w = hi_p - lo_p
    r_start, r_stop = lo_p + w - INTERVAL_MARGIN, hi_p + INTERVAL_MARGIN
    rights = np.linspace(r_start, r_stop, _n_grid_points(r_stop - r_start))
    lefts = np.linspace(rights - w - INTERVAL_MARGIN, rights - w + INTERVAL_MARGIN, INTERVAL_LEFT_POINTS, axis=-1)
    return rights, lefts


def _sorted_median(x_sorted: np.ndarray) -> float:
    """``np.median`` of a sorted array: the middle value, or the mean ``(a + b) / 2`` of the two middle ones."""
    n = x_sorted.size
    mid = n // 2
    return float(x_sorted[mid]) if n % 2 else float((x_sorted[mid - 1] + x_sorted[mid]) / 2.0)


def _single_threshold_sets(u: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) for single thresholds: the set with the larger median is positive (ties: ``u``)."""
    return (u, r) if np.median(u) >= np.median(r) else (r, u)


def _interval_sets(u: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) for intervals, the organisers' rule: start from the median split of the single
    thresholds and swap the two when ``range(positive) >= range(negative)``. So the narrower set is positive and,
    on equal ranges, the set with the smaller median is (ties of the medians too: ``r``)."""
    pos, neg = _single_threshold_sets(u, r)
    return (neg, pos) if (pos.max() - pos.min()) >= (neg.max() - neg.min()) else (pos, neg)


def per_example_epsilon(u: ArrayLike, r: ArrayLike, *, delta: float = DEFAULT_DELTA) -> float:
    """ε of one forget example from its scores under the unlearned (``u``) and retrained (``r``) models.

    Fast path: each set is sorted once; single thresholds are counted by :func:`numpy.searchsorted`, intervals
    through a lookup table (:func:`_interval_epsilon`).

    Args:
        u: ``[N_u]`` logit-scaled confidences of the example under the unlearned models.
        r: ``[N_r]`` the same under the retrained (gold) models.
        delta: the δ of (ε, δ).

    Returns:
        ε in ``[0, 50]``; 50 for a deterministic method or a perfectly separating attack.

    Example:
        >>> per_example_epsilon(np.zeros(8), np.linspace(0, 1, 8))   # zero range: deterministic
        50.0
        >>> per_example_epsilon(np.arange(8.0), np.arange(8.0) + 100)  # separated by a threshold
        50.0
    """
    u = to_numpy(u, dtype=np.float64).reshape(-1)
    r = to_numpy(r, dtype=np.float64).reshape(-1)
    if u.size == 0 or r.size == 0:
        raise ValueError("per_example_epsilon needs at least one score in each set")
    if not (np.isfinite(u).all() and np.isfinite(r).all()):
        raise ValueError("scores must be finite (use logit_scaled_confidence, which never returns inf)")
    if _is_deterministic(u, r):
        return EPSILON_CAP
    best = 0.0
    # Each set sorted once; medians and ranges read from the sorted arrays (the same values np.median and
    # max - min give), so the positive / negative splits below are those of _single_threshold_sets and
    # _interval_sets.
    u_s, r_s = np.sort(u), np.sort(r)

    # Single thresholds "positive if c >= t".
    pos_s, neg_s = (u_s, r_s) if _sorted_median(u_s) >= _sorted_median(r_s) else (r_s, u_s)
    lo, hi = min(pos_s[0], neg_s[0]), max(pos_s[-1], neg_s[-1])
    t = np.linspace(lo, hi, _n_grid_points(hi - lo))
    tp = pos_s.size - np.searchsorted(pos_s, t, side="left")
    fp = neg_s.size - np.searchsorted(neg_s, t, side="left")
    best = max(best, float(_epsilon_table(pos_s.size, neg_s.size, delta)[tp, fp].max()))

    # Intervals "positive if l <= c <= r" around the narrower set.
    if (pos_s[-1] - pos_s[0]) >= (neg_s[-1] - neg_s[0]):
        pos_s, neg_s = neg_s, pos_s
    best = max(best, _interval_epsilon(pos_s, neg_s, delta))
    return float(min(best, EPSILON_CAP))


def _interval_epsilon_searchsorted(pos_s: np.ndarray, neg_s: np.ndarray, delta: float) -> float:
    """The best interval attack, every left end counted by binary search (the reference of the fast path)."""
    rights, lefts = _interval_grids(pos_s)
    tp = np.searchsorted(pos_s, rights, side="right")[:, None] - np.searchsorted(pos_s, lefts, side="left")
    fp = np.searchsorted(neg_s, rights, side="right")[:, None] - np.searchsorted(neg_s, lefts, side="left")
    np.maximum(tp, 0, out=tp)  # l > r: an empty interval flags nothing
    np.maximum(fp, 0, out=fp)
    return float(_epsilon_table(pos_s.size, neg_s.size, delta)[tp, fp].max())


LUT_BUCKETS_PER_UNIT = 8192
"""Resolution of the count lookup table of :func:`_interval_epsilon` (buckets per unit of confidence)."""
_DIRTY_MARGIN = 1e-6
"""A bucket within this many bucket widths of a score is "dirty": its entries are counted exactly."""
_DIRTY = -(1 << 30)


@lru_cache(maxsize=64)
def _epsilon_table_flat(n_pos: int, n_neg: int, delta: float) -> np.ndarray:
    """:func:`_epsilon_table` raveled, with one ``-inf`` appended (the slot out-of-range indices are clipped to)."""
    flat = np.append(_epsilon_table(n_pos, n_neg, delta).ravel(), -np.inf)
    flat.setflags(write=False)
    return flat


def _interval_epsilon(pos_s: np.ndarray, neg_s: np.ndarray, delta: float) -> float:
    """The best interval attack (SPEC §8 step 3) without a binary search per left end.

    There are about 400 right ends × 400 left ends per example; counting each left end by binary search costs
    ~10 ms per example at N = 512. Here every left end is mapped to a bucket of a lookup table holding the counts
    (an attack's ``(tp, fp)`` as one flat index ``tp · (n_neg + 1) + fp`` into the ε table), so each of the 160,000
    attacks costs a few vectorised passes. The bucket of a left end is computed from an approximation of its value;
    that is exact wherever no score lies within a millionth of a bucket of the bucket's edges. The other ("dirty")
    buckets' left ends are recomputed exactly as :func:`numpy.linspace` computes them (``j · step + start``, the
    last one ``stop``) and counted by binary search, so the ε is the reference's bit for bit (tested against it and
    against the SPEC §8 oracle on tied and continuous scores). Hand-written because no library counts this grid.
    """
    n_pos, n_neg = pos_s.size, neg_s.size
    lo_p, hi_p = float(pos_s[0]), float(pos_s[-1])
    w = hi_p - lo_p
    r_start, r_stop = lo_p + w - INTERVAL_MARGIN, hi_p + INTERVAL_MARGIN
    rights = np.linspace(r_start, r_stop, _n_grid_points(r_stop - r_start))
    start, stop = rights - w - INTERVAL_MARGIN, rights - w + INTERVAL_MARGIN  # as _interval_grids: exact
    step = (stop - start) / (INTERVAL_LEFT_POINTS - 1)
    x0 = float(start.min())
    span = float(stop.max()) - x0
    q = float(LUT_BUCKETS_PER_UNIT)
    nb = int(math.ceil(span * q)) + 2
    if not (math.isfinite(span) and nb < 50_000_000):
        return _interval_epsilon_searchsorted(pos_s, neg_s, delta)

    # counts before each bucket edge as one flat index (a score of the positive set weighs n_neg + 1, a negative
    # one 1: the cumulative sum is tp · (n_neg + 1) + fp), and the dirty buckets (a score within the margin)
    scores = np.concatenate([pos_s, neg_s])
    t = (scores - x0) * q
    idx = np.clip(np.floor(t) + 1, 0, nb + 1).astype(np.intp)
    weight = np.where(np.arange(scores.size) < n_pos, float(n_neg + 1), 1.0)
    lut = np.cumsum(np.bincount(idx, weights=weight, minlength=nb + 2)[: nb + 1]).astype(np.int32)
    for shift in (-_DIRTY_MARGIN, 0.0, _DIRTY_MARGIN):
        d = np.floor(t + shift)
        lut[d[(d >= 0) & (d <= nb)].astype(np.intp)] = _DIRTY

    # every attack's bucket from its approximate left end: (start_i - x0)·q + j·(4/399)·q
    n_left = INTERVAL_LEFT_POINTS
    col = np.arange(n_left, dtype=np.float64) * (2 * INTERVAL_MARGIN / (n_left - 1) * q)
    row = (start - x0) * q
    b = np.empty((rights.size, n_left), dtype=np.int32)
    # truncation = floor: row >= 0 (x0 is the smallest start) and row + col < span·q < nb, so no clipping
    np.add(row[:, None], col[None, :], out=b, casting="unsafe")
    left = lut.take(b)
    tp_r, fp_r = np.searchsorted(pos_s, rights, side="right"), np.searchsorted(neg_s, rights, side="right")
    flat = np.subtract((tp_r * (n_neg + 1) + fp_r).astype(np.int32)[:, None], left, out=left)
    # l > r (an empty interval) gives a negative index: clipped to 0, the dropped attack (tp, fp) = (0, 0); a dirty
    # left end gives an index past the table: clipped to the appended -inf, and counted exactly below
    table = _epsilon_table_flat(n_pos, n_neg, delta)
    best = float(table.take(flat, mode="clip").max())
    where = np.flatnonzero(flat > table.size - 2)
    if where.size:
        rows_d, cols_d = np.divmod(where, n_left)
        lefts = np.where(cols_d == n_left - 1, stop[rows_d], cols_d * step[rows_d] + start[rows_d])
        tp = tp_r[rows_d] - np.searchsorted(pos_s, lefts, side="left")
        fp = fp_r[rows_d] - np.searchsorted(neg_s, lefts, side="left")
        np.maximum(tp, 0, out=tp)
        np.maximum(fp, 0, out=fp)
        best = max(best, float(_epsilon_table(n_pos, n_neg, delta)[tp, fp].max()))
    return best


def n_bins(n_models: int) -> int:
    """Number of ε buckets that score above zero: ``2 · ceil(ln(N - 1))`` (14 at N = 512).

    Example:
        >>> n_bins(512), n_bins(64)
        (14, 10)
    """
    if n_models < 3:
        raise ValueError(f"forget quality needs at least 3 models per side, got {n_models}")
    return 2 * math.ceil(math.log(n_models - 1))


def epsilon_to_score(epsilons: ArrayLike, n_models: int) -> np.ndarray:
    """Per-example score ``H = 2^-k`` with ``k = floor(ε / 0.5)``; 0 once ``k >= n_bins(N)``.

    Example:
        >>> epsilon_to_score(np.array([0.0, 0.49, 0.5, 1.2, 50.0]), 512)
        array([1.  , 1.  , 0.5 , 0.25, 0.  ])
    """
    eps = to_numpy(epsilons, dtype=np.float64)
    k = np.floor(eps / BIN_WIDTH)
    return np.where(k >= n_bins(n_models), 0.0, np.exp2(-k))


@dataclass(frozen=True)
class ForgetQualityResult:
    """NeurIPS 2023 forget quality of one method.

    Attributes:
        forget_quality: ``F = mean H`` over the forget examples, in ``[0, 1]``.
        epsilons: ``[n_examples]`` per-example ε.
        scores: ``[n_examples]`` per-example ``H``.
        n_models: N, models per side.
        n_bins: buckets that score above zero, ``2 · ceil(ln(N - 1))``.
    """

    forget_quality: float
    epsilons: np.ndarray
    scores: np.ndarray
    n_models: int
    n_bins: int


def forget_quality(u_scores: ArrayLike, r_scores: ArrayLike, *, delta: float = DEFAULT_DELTA) -> ForgetQualityResult:
    """NeurIPS 2023 forget quality ``F`` from score matrices (SPEC §8, steps 2-4).

    Args:
        u_scores: ``[N, n_examples]`` logit-scaled confidences of the forget examples under N unlearned models
            (row = model, column = example, same example order as ``r_scores``).
        r_scores: ``[N, n_examples]`` the same under N retrained (gold) models.
        delta: the δ of (ε, δ).

    Returns:
        :class:`ForgetQualityResult` with ``F``, the per-example ε and ``H``.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> res = forget_quality(rng.normal(size=(64, 5)), rng.normal(size=(64, 5)) + 10)
        >>> res.forget_quality, res.epsilons.tolist()
        (0.0, [50.0, 50.0, 50.0, 50.0, 50.0])
    """
    u = to_numpy(u_scores, dtype=np.float64)
    r = to_numpy(r_scores, dtype=np.float64)
    if u.ndim == 1:
        u = u[:, None]
    if r.ndim == 1:
        r = r[:, None]
    if u.ndim != 2 or r.ndim != 2 or u.shape != r.shape:
        raise ValueError(
            f"u_scores and r_scores must both be [N_models, n_examples] with the same shape; got {u.shape} and {r.shape}"
        )
    n_models = u.shape[0]
    bins = n_bins(n_models)
    eps = np.array([per_example_epsilon(u[:, j], r[:, j], delta=delta) for j in range(u.shape[1])], dtype=np.float64)
    scores = epsilon_to_score(eps, n_models)
    fq = float(scores.mean()) if scores.size else float("nan")
    return ForgetQualityResult(forget_quality=fq, epsilons=eps, scores=scores, n_models=n_models, n_bins=bins)


def _mean_accuracy(acc: ArrayLike) -> float:
    a = to_numpy(acc, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError("need at least one accuracy value")
    return float(a.mean())


def final_score(forget_quality: float, ra_u: ArrayLike, ra_r: ArrayLike, ta_u: ArrayLike, ta_r: ArrayLike) -> float:
    """Challenge score ``F × (RA_U / RA_R) × (TA_U / TA_R)`` (SPEC §8 step 5).

    Each accuracy may be a number or the per-model values (averaged here): retain (RA) and test (TA) accuracy of
    the unlearned (U) and retrained (R) models. Units cancel (fractions or percent, as long as they match).

    Example:
        >>> round(final_score(0.2, [0.9, 0.8], 0.85, 0.75, [0.8, 0.7]), 12)   # both ratios are 1
        0.2
        >>> round(final_score(0.2, 0.80, 0.85, 0.75, 0.75), 4)   # lost retain accuracy costs score
        0.1882
    """
    ra_r_m, ta_r_m = _mean_accuracy(ra_r), _mean_accuracy(ta_r)
    if ra_r_m <= 0 or ta_r_m <= 0:
        raise ValueError("the retrained models' retain and test accuracies must be positive")
    return float(forget_quality) * (_mean_accuracy(ra_u) / ra_r_m) * (_mean_accuracy(ta_u) / ta_r_m)


__all__ = [
    "ForgetQualityResult",
    "logit_scaled_confidence",
    "per_example_epsilon",
    "forget_quality",
    "final_score",
    "epsilon_to_score",
    "n_bins",
    "EPSILON_CAP",
    "DEFAULT_DELTA",
]
