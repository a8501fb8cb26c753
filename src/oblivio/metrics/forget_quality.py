"""NeurIPS 2023 machine-unlearning challenge forget quality, as pure functions on score arrays.

The metric compares, for every forget example, two empirical distributions of the example's logit-scaled
confidence: one over ``N`` unlearned models (``u``) and one over ``N`` retrained / gold models (``r``). A family
of simple membership attacks (single thresholds and intervals) is run on the ``2N`` values; each attack's false
positive and false negative rates give a differential-privacy style ``ε``; the example's ``ε`` is the largest
one found. ``ε`` is bucketed into a score ``H = 2^-k`` and ``F`` is the mean ``H`` over the forget set.

The exact rules (grids, tie-breaks, caps) are those of ``SPEC.md`` §8 and are written out in ``docs/metrics.md``.
An attack's ``ε`` is read from a table indexed by its integer counts ``(tp, fp)``. The fast path sorts each
example's two sets once and searches the ~160,000 attacks of an example for the largest ``ε`` without counting most
of them (:mod:`._attack_search`: a branch and bound whose bound is exact), so the ``ε`` is bit for bit that of
counting every attack by binary search (:func:`_epsilon_reference`, the path before; tested). The tests also
compare it with a literal oracle written from SPEC §8 alone (every threshold compared with every model, no code
shared with this module); ``benchmarks/forget_quality_speed.py`` times them.

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

from ._attack_search import bound_table, count_below, left_ends_never_decrease, ragged_linspace, search_rows
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

    Fast path: the branch-and-bound search of :func:`forget_quality` (:func:`_epsilons_of_sorted`) when both sets
    have the same size; with different sizes, :func:`_epsilon_reference` (every attack counted by binary search).

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
    u_s, r_s = np.sort(u), np.sort(r)
    if u_s.size != r_s.size:
        return _epsilon_reference(u_s, r_s, delta)
    return float(_epsilons_of_sorted(u_s[None, :], r_s[None, :], delta)[0])


def _epsilon_reference(u_s: np.ndarray, r_s: np.ndarray, delta: float) -> float:
    """ε of one example (sorted sets, not deterministic) with every attack counted by binary search.

    The fast path before issue 22's speed-up, written attack by attack: kept as the reference the search of
    :func:`_epsilons_of_sorted` is tested against bit for bit, for sets of different sizes, and for the inputs of
    huge magnitude where that search's monotonicity guard fails. Medians and ranges are read from the sorted arrays
    (the same values ``np.median`` and ``max - min`` give), so the splits are those of :func:`_single_threshold_sets`
    and :func:`_interval_sets`.
    """
    best = 0.0
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
    best = max(best, _interval_epsilon_searchsorted(pos_s, neg_s, delta))
    return float(min(best, EPSILON_CAP))


def _interval_epsilon_searchsorted(pos_s: np.ndarray, neg_s: np.ndarray, delta: float) -> float:
    """The best interval attack, every left end counted by binary search (part of :func:`_epsilon_reference`)."""
    rights, lefts = _interval_grids(pos_s)
    tp = np.searchsorted(pos_s, rights, side="right")[:, None] - np.searchsorted(pos_s, lefts, side="left")
    fp = np.searchsorted(neg_s, rights, side="right")[:, None] - np.searchsorted(neg_s, lefts, side="left")
    np.maximum(tp, 0, out=tp)  # l > r: an empty interval flags nothing
    np.maximum(fp, 0, out=fp)
    return float(_epsilon_table(pos_s.size, neg_s.size, delta)[tp, fp].max())


# ----------------------------------------------------------------------------------------------- fast ε: search
# Issue 22's speed item: 1,000 examples at N = 512 in well under a second on one core (1.4 CPU s with the earlier
# lookup table, 6.4 with a binary search per attack). Each example's rows of attacks (the single thresholds, then
# one row per interval right end) go to _attack_search.search_rows, which returns the maximum ε of all of them.
CHUNK_EXAMPLES = 64
"""Examples searched together by :func:`forget_quality` (bounds the temporary arrays; the result does not depend
on it)."""


@lru_cache(maxsize=64)
def _epsilon_bound_table_flat(n_pos: int, n_neg: int, delta: float) -> np.ndarray:
    """:func:`._attack_search.bound_table` of :func:`_epsilon_table` (raveled, read-only)."""
    flat = bound_table(_epsilon_table(n_pos, n_neg, delta))
    flat.setflags(write=False)
    return flat


def _n_grid_points_array(span: np.ndarray) -> np.ndarray:
    """:func:`_n_grid_points` of every span (the same float arithmetic: ``ceil(100 · span)``, at least 1)."""
    return np.maximum(1, np.ceil(POINTS_PER_UNIT * span)).astype(np.intp)


def _epsilons_of_sorted(
    u_s: np.ndarray, r_s: np.ndarray, delta: float, *, prune: bool = True, stats: dict[str, int] | None = None
) -> np.ndarray:
    """ε of a batch of examples (SPEC §8 steps 2-3), bit for bit :func:`_epsilon_reference`'s.

    Args:
        u_s, r_s: ``[n_examples, N]`` sorted scores of each example (same N both sides), none deterministic.
        delta: the δ of (ε, δ).
        prune: ``False`` counts every attack once (no bound): for the tests.
        stats: passed to :func:`search_rows`; also gets ``guarded`` (examples left to the reference).

    Returns:
        ``[n_examples]`` ε in ``[0, 50]``.
    """
    n_ex, n = u_s.shape
    width = n + 1
    table = _epsilon_table(n, n, delta).reshape(-1)
    bound = _epsilon_bound_table_flat(n, n, delta) if prune else None
    best = np.zeros(n_ex)
    unsafe = np.zeros(n_ex, dtype=bool)

    def search(pos, neg, owner, right, start, stop, num):
        last = num - 1
        step = (stop - start) / np.maximum(last, 1)
        unsafe[owner[~left_ends_never_decrease(start, step, stop, last)]] = True
        search_rows(
            best, pos=pos, neg=neg, owner=owner, right=right, start=start, step=step, stop=stop, last=last,
            table=table, bound=bound, stats=stats,
        )  # fmt: skip

    # Single thresholds "positive if c >= t": positive = the larger median (ties: u); t on the grid of all 2N values.
    u_first = (_sorted_medians(u_s) >= _sorted_medians(r_s))[:, None]
    pos, neg = np.where(u_first, u_s, r_s), np.where(u_first, r_s, u_s)
    lo, hi = np.minimum(u_s[:, 0], r_s[:, 0]), np.maximum(u_s[:, -1], r_s[:, -1])
    every = np.full(n_ex, n * width + n)  # the right end of a single threshold counts every model
    search(pos, neg, np.arange(n_ex), every, lo, hi, _n_grid_points_array(hi - lo))

    # Intervals "positive if l <= c <= r": swap when range(positive) >= range(negative) (_interval_sets).
    swap = ((pos[:, -1] - pos[:, 0]) >= (neg[:, -1] - neg[:, 0]))[:, None]
    pos, neg = np.where(swap, neg, pos), np.where(swap, pos, neg)
    lo_p, hi_p = pos[:, 0], pos[:, -1]
    w = hi_p - lo_p
    r_start, r_stop = lo_p + w - INTERVAL_MARGIN, hi_p + INTERVAL_MARGIN  # as _interval_grids
    rights, owner = ragged_linspace(r_start, r_stop, _n_grid_points_array(r_stop - r_start))
    right = count_below(pos, rights, owner, "right") * width + count_below(neg, rights, owner, "right")
    centre = rights - w[owner]
    num = np.full(rights.size, INTERVAL_LEFT_POINTS)
    search(pos, neg, owner, right, centre - INTERVAL_MARGIN, centre + INTERVAL_MARGIN, num)

    eps = np.minimum(best, EPSILON_CAP)
    if unsafe.any():
        for e in np.flatnonzero(unsafe):
            eps[e] = _epsilon_reference(u_s[e], r_s[e], delta)
        if stats is not None:
            stats["guarded"] = stats.get("guarded", 0) + int(unsafe.sum())
    return eps


def _sorted_medians(x_sorted: np.ndarray) -> np.ndarray:
    """:func:`_sorted_median` of every row of ``[n_rows, n]`` sorted rows (the same arithmetic)."""
    n = x_sorted.shape[1]
    mid = n // 2
    return x_sorted[:, mid] if n % 2 else (x_sorted[:, mid - 1] + x_sorted[:, mid]) / 2.0


def _epsilons(u: np.ndarray, r: np.ndarray, delta: float) -> np.ndarray:
    """Per-example ε of ``[N, n_examples]`` score matrices: deterministic columns 50, the others searched in chunks."""
    u_s = np.sort(np.ascontiguousarray(u.T), axis=1)
    r_s = np.sort(np.ascontiguousarray(r.T), axis=1)
    range_u, range_r = u_s[:, -1] - u_s[:, 0], r_s[:, -1] - r_s[:, 0]
    hi = np.maximum(range_u, range_r)
    with np.errstate(divide="ignore", invalid="ignore"):
        deterministic = (hi == 0.0) | (np.minimum(range_u, range_r) / hi < DETERMINISTIC_RATIO)  # _is_deterministic
    eps = np.full(u_s.shape[0], EPSILON_CAP)
    todo = np.flatnonzero(~deterministic)
    for i in range(0, todo.size, CHUNK_EXAMPLES):
        idx = todo[i : i + CHUNK_EXAMPLES]
        eps[idx] = _epsilons_of_sorted(u_s[idx], r_s[idx], delta)
    return eps


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
            "u_scores and r_scores must both be [N_models, n_examples] with the same shape; "
            f"got {u.shape} and {r.shape}"
        )
    if not (np.isfinite(u).all() and np.isfinite(r).all()):
        raise ValueError("scores must be finite (use logit_scaled_confidence, which never returns inf)")
    n_models = u.shape[0]
    bins = n_bins(n_models)
    eps = _epsilons(u, r, delta)
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
