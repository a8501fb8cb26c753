"""Statistics over result rows: per-method means with 95% bootstrap CIs and paired comparisons between methods.

A benchmark's runs are *paired*: every method of a grid runs on the same forget request with the same original,
gold, unlearning and evaluation seeds (one pairing unit = one scenario × one replicate). So a comparison of two
methods looks at the per-unit differences ``d_i = metric(A)_i − metric(B)_i``: their mean, a 95% percentile
bootstrap confidence interval of that mean (``scipy.stats.bootstrap``, units resampled with replacement) and the
two-sided Wilcoxon signed-rank p-value (``scipy.stats.wilcoxon`` with ``zero_method="wilcox"``: zero differences
are dropped, as Wilcoxon defined the test; ``method="auto"``: the exact null for up to 50 pairs without ties, with
ties or zeros an exhaustive permutation for up to 13 pairs and the tie-corrected normal approximation above). A
difference is called significant only when ``p < alpha`` (default 0.05); otherwise the reports say "not
significant", whatever the sign of the mean.

**Ties are ties (issue 23).** δ and sample agreement are counts of forget images divided by ``|D_f|``: their
paired differences are computed on that grid (:func:`on_grid`: ``round(value · |D_f|)``, checked to be an integer),
so that two methods that get the same number of images right differ by exactly zero, not by the float noise of a
float32 accuracy (which made ties into ±1e-6 "wins" before issue 23). Continuous measures (activation distance, MIA
gaps) are compared as floats.

Metrics are compared in the direction that means "more like gold": δ and activation distance lower, sample
agreement and κ higher, and for a membership-inference figure the *gap to the gold model's value*
(``|MIA(M_u) − MIA(M_g)|``), lower, since aligned means equal to gold, not lower.

Example:
    >>> ci = mean_ci([1.0, 2.0, 3.0, 4.0], seed=0)
    >>> ci.mean, ci.low < 2.5 < ci.high
    (2.5, True)
    >>> c = paired_difference([3.0, 4.0, 5.0, 6.0, 7.0, 8.0], [1.0] * 6)
    >>> c.mean_diff, round(c.p_value, 4), c.significant
    (4.5, 0.0312, True)
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Direction = Literal["lower", "higher"]

ZERO_METHOD = "wilcox"
"""How the Wilcoxon signed-rank test treats zero differences: dropped (Wilcoxon 1945; ``scipy.stats.wilcoxon``'s
default). Stated in every report that prints a p-value."""
GRID_TOLERANCE = 1e-3
"""How far ``value · n`` may sit from an integer and still be read as a count (float32 accuracies: ~1e-5 at n = 100)."""


def on_grid(value: Any, n: Any, *, tol: float = GRID_TOLERANCE) -> int | None:
    """The integer count ``k`` with ``value == k / n`` (a δ or an agreement of ``n`` forget images), or None when
    either is missing.

    Raises:
        ValueError: ``value · n`` is not within ``tol`` of an integer (the value is not a share of ``n`` images).

    Example:
        >>> on_grid(0.030000001192092896, 100), on_grid(0.9399999976158142, 100), on_grid(None, 100)
        (3, 94, None)
    """
    v, m = _finite_array([value]), _finite_array([n])
    if not v.size or not m.size or m[0] <= 0:
        return None
    x = float(v[0]) * float(m[0])
    k = round(x)
    if abs(x - k) > tol:
        raise ValueError(f"{value} is not a multiple of 1/{int(m[0])} (value·n = {x}); not a count of images")
    return int(k)


@dataclass(frozen=True)
class MeanCI:
    """Mean of ``n`` finite values with a bootstrap confidence interval ``[low, high]`` (NaN when ``n < 2``)."""

    mean: float
    low: float
    high: float
    n: int

    def format(self, *, scale: float = 1.0, digits: int = 1) -> str:
        """``"mean [low, high]"`` (``"mean"`` for one value, ``"n/a"`` for none).

        Example:
            >>> MeanCI(0.5, 0.4, 0.6, 10).format(scale=100)
            '50.0 [40.0, 60.0]'
        """
        if self.n == 0:
            return "n/a"
        if self.n == 1 or not math.isfinite(self.low):
            return f"{self.mean * scale:.{digits}f}"
        return f"{self.mean * scale:.{digits}f} [{self.low * scale:.{digits}f}, {self.high * scale:.{digits}f}]"


@dataclass(frozen=True)
class PairedComparison:
    """``A − B`` over paired units: mean difference, its bootstrap CI, Wilcoxon signed-rank p.

    Attributes:
        n: pairs with a finite value on both sides.
        mean_diff: mean of ``a_i − b_i``.
        low, high: bootstrap CI of the mean difference (NaN for fewer than 2 pairs).
        p_value: two-sided Wilcoxon signed-rank p (1.0 when every difference is zero, NaN for no pairs).
        alpha: significance level of :attr:`significant`.
        zeros: pairs whose difference is exactly zero (dropped by the test, ``zero_method="wilcox"``).
        on_grid: the differences were computed from integer counts (:func:`on_grid`), not floats.
    """

    n: int
    mean_diff: float
    low: float
    high: float
    p_value: float
    alpha: float = 0.05
    zeros: int = 0
    on_grid: bool = False

    @property
    def significant(self) -> bool:
        return math.isfinite(self.p_value) and self.p_value < self.alpha

    def verdict(self, direction: Direction) -> str:
        """``"A better"`` / ``"A worse"`` when significant, else ``"not significant"``.

        Example:
            >>> PairedComparison(10, -0.02, -0.03, -0.01, 0.004).verdict("lower")
            'better'
            >>> PairedComparison(10, -0.02, -0.05, 0.01, 0.2).verdict("lower")
            'not significant'
        """
        if not self.significant:
            return "not significant"
        better = self.mean_diff < 0 if direction == "lower" else self.mean_diff > 0
        return "better" if better else "worse"


def finite_values(values: Iterable[Any]) -> list[float]:
    """The values that are finite numbers, as floats (None, booleans, text and NaN/inf are left out).

    Example:
        >>> finite_values([1, None, True, "x", float("nan"), 2.5])
        [1.0, 2.5]
    """
    out = []
    for v in values:
        if v is None or isinstance(v, bool):
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def _finite_array(values: Iterable[Any]) -> np.ndarray:
    return np.asarray(finite_values(values), dtype=np.float64)


def _bootstrap_ci(x: np.ndarray, *, confidence: float, n_resamples: int, seed: int) -> tuple[float, float]:
    if x.size < 2:
        return math.nan, math.nan
    if np.ptp(x) == 0:  # every value equal: the bootstrap distribution is a point
        return float(x[0]), float(x[0])
    from scipy.stats import bootstrap

    res = bootstrap(
        (x,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def mean_ci(values: Iterable[Any], *, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0) -> MeanCI:
    """Mean of the finite values and its percentile bootstrap confidence interval (``scipy.stats.bootstrap``).

    Args:
        values: numbers (None, NaN and non-numbers are dropped).
        confidence: the interval's confidence level.
        n_resamples: bootstrap resamples.
        seed: the resampling seed (same seed, same interval).

    Example:
        >>> mean_ci([0.5, 0.5, 0.5])
        MeanCI(mean=0.5, low=0.5, high=0.5, n=3)
        >>> mean_ci([]).n, mean_ci([1.0]).format()
        (0, '1.0')
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x = _finite_array(values)
    if x.size == 0:
        return MeanCI(math.nan, math.nan, math.nan, 0)
    low, high = _bootstrap_ci(x, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return MeanCI(float(x.mean()), low, high, int(x.size))


def paired_difference(
    a: Sequence[Any],
    b: Sequence[Any],
    *,
    grid: Sequence[Any] | None = None,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> PairedComparison:
    """Compare paired samples: mean of ``a_i − b_i``, its bootstrap CI and the Wilcoxon signed-rank p-value.

    Pairs where either side is missing or not finite are dropped.

    Args:
        a, b: the two methods' values on the same units, same order.
        grid: per pair, the denominator ``n_i`` of a count measure (``|D_f|`` of the unit for δ and sample
            agreement): ``a_i`` and ``b_i`` are then read as ``k / n_i`` (:func:`on_grid`) and the difference is
            ``(k_a − k_b) / n_i``, exactly zero for equal counts. None: float differences (continuous measures).
        confidence, n_resamples, seed: of the bootstrap interval.
        alpha: significance level.

    Example:
        >>> paired_difference([1.0, 2.0], [1.0, 2.0]).p_value
        1.0
        >>> paired_difference([0.03, 0.05], [0.030000001192092896, 0.04], grid=[100, 100]).zeros
        1
    """
    if len(a) != len(b) or (grid is not None and len(grid) != len(a)):
        raise ValueError(f"paired samples must have the same length; got {len(a)} and {len(b)}")
    d_list = []
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if not (_finite_array([x]).size and _finite_array([y]).size):
            continue
        if grid is None:
            d_list.append(float(x) - float(y))
            continue
        kx, ky = on_grid(x, grid[i]), on_grid(y, grid[i])
        if kx is None or ky is None:
            raise ValueError(f"pair {i}: no denominator for a grid measure (n = {grid[i]!r})")
        d_list.append((kx - ky) / float(grid[i]))
    if not d_list:
        return PairedComparison(0, math.nan, math.nan, math.nan, math.nan, alpha, on_grid=grid is not None)
    d = np.asarray(d_list, dtype=np.float64)
    low, high = _bootstrap_ci(d, confidence=confidence, n_resamples=n_resamples, seed=seed)
    zeros = int(np.sum(d == 0))
    if zeros == d.size:
        p = 1.0
    else:
        from scipy.stats import wilcoxon

        p = float(wilcoxon(d, zero_method=ZERO_METHOD, alternative="two-sided").pvalue)
    return PairedComparison(int(d.size), float(d.mean()), low, high, p, alpha, zeros, grid is not None)


# ---------------------------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Measure:
    """A per-row quantity compared across methods.

    Attributes:
        key: short id (``"delta"``).
        label: display name (``"δ"``).
        value: ``value(row) -> float | None``.
        direction: ``"lower"`` or ``"higher"`` is more like gold.
        scale: display multiplier (100 for fractions shown in percent or points).
        digits: display decimals.
        grid: the value is a count over a known denominator, so paired differences are taken on that grid
            (:func:`paired_difference` with ``grid``): ``True`` for a count of forget images over ``|D_f|`` (δ,
            sample agreement; :func:`row_n`), or a function ``row -> denominator`` (``|D_f| · G`` for the
            gold-distribution measures, :func:`gold_grid_n`).
    """

    key: str
    label: str
    value: Callable[[dict], Any]
    direction: Direction
    scale: float = 1.0
    digits: int = 1
    grid: bool | Callable[[dict], Any] = False

    def grid_n(self, row: dict) -> int | None:
        """The denominator of this measure's grid in ``row`` (None: not a grid measure, or unknown)."""
        if self.grid is True:
            return row_n(row)
        return self.grid(row) if callable(self.grid) else None


def row_n(row: dict) -> int | None:
    """``|D_f|`` of a row: ``n_forget`` (runner rows) or ``count`` (the issue-15 scripts' rows); None if absent.

    Example:
        >>> row_n({"n_forget": 100}), row_n({"count": 30}), row_n({})
        (100, 30, None)
    """
    for k in ("n_forget", "count"):
        v = _finite_array([row.get(k)])
        if v.size:
            return int(v[0])
    return None


def _metric(key: str) -> Callable[[dict], Any]:
    return lambda row: (row.get("metrics") or {}).get(key)


def gold_grid_n(row: dict) -> int | None:
    """``|D_f| · G``: the grid of expected agreement and of δ to the mean gold accuracy with G gold models (each image
    contributes a multiple of 1 / G).

    Example:
        >>> gold_grid_n({"n_forget": 100, "metrics": {"gold_models": 4}})
        400
    """
    n, g = row_n(row), _finite_array([(row.get("metrics") or {}).get("gold_models")])
    return n * int(g[0]) if n is not None and g.size and g[0] > 0 else None


def _gap_to_gold(key: str) -> Callable[[dict], Any]:
    def value(row: dict) -> Any:
        m = row.get("metrics") or {}
        a, g = _finite_array([m.get(key)]), _finite_array([m.get(f"gold_{key}")])
        return abs(float(a[0]) - float(g[0])) if a.size and g.size else None

    return value


ALIGNMENT_MEASURES: tuple[Measure, ...] = (
    Measure("delta", "δ (points)", _metric("delta_forget"), "lower", 100.0, 1, grid=True),
    Measure("sample_agreement", "sample agreement (%)", _metric("sample_agreement"), "higher", 100.0, 1, grid=True),
    Measure("sample_kappa", "κ", _metric("sample_kappa"), "higher", 1.0, 3),
    Measure("activation_distance", "act. distance L2", _metric("activation_distance_l2"), "lower", 1.0, 3),
    Measure("mia_loss_lr_gap", "|MIA loss-LR acc − gold| (points)", _gap_to_gold("mia_loss_lr_acc"), "lower", 100.0, 1),
    Measure(
        "mia_salun_gap", "|SalUn MIA-efficacy − gold| (points)", _gap_to_gold("mia_salun_efficacy"), "lower", 100.0, 1
    ),
    Measure(
        "expected_agreement",
        "expected agreement E with G golds (%)",
        _metric("expected_agreement"),
        "higher",
        100.0,
        1,
        grid=gold_grid_n,
    ),
    Measure(
        "delta_mean_gold", "δ to mean gold (points)", _metric("delta_mean_gold"), "lower", 100.0, 1, grid=gold_grid_n
    ),
    Measure(
        "activation_distance_mean_gold",
        "act. distance to mean gold L2",
        _metric("activation_distance_mean_gold_l2"),
        "lower",
        1.0,
        3,
    ),
)
"""The measures of the paired comparisons (issue 11): δ, sample agreement, κ, activation distance, both MIAs; δ and
sample agreement compared on the count grid; with G gold models (issue 23) expected agreement E and δ to the mean gold
accuracy (on the ``|D_f| · G`` grid) and the activation distance to the gold models' mean output. A measure no row
has is left out of the tables."""


def pairing_unit(row: dict) -> tuple:
    """The pairing unit of a row: its scenario and every seed (the methods of one grid replicate share them all,
    the ``gold`` pseudo-method included, whose second gold model uses the replicate's ``unlearn`` seed).

    Rows that differ in any seed are never paired: in the forget-quality benchmark, for instance, the N runs of a
    method differ in their unlearning seed and are N units, not one.

    Example:
        >>> pairing_unit({"scenario": "class-subset:3:100", "seeds": {"train": 1, "gold": 1}})
        ('class-subset:3:100', (('gold', 1), ('train', 1)))
    """
    seeds = row.get("seeds") or {}
    return row.get("scenario"), tuple(sorted(seeds.items()))


def paired_values(
    rows: Sequence[dict],
    a: str,
    b: str,
    value: Callable[[dict], Any],
    *,
    with_n: bool | Callable[[dict], Any] = False,
) -> tuple[list, ...]:
    """Values of methods ``a`` and ``b`` on the units both ran (:func:`pairing_unit`), aligned:
    ``(units, values_a, values_b)``, and with ``with_n`` a fourth list: each unit's grid denominator
    (``True``: ``|D_f|``, :func:`row_n`; a function: its value on the unit's first row that has one)."""
    n_fn = row_n if with_n is True else with_n if callable(with_n) else None
    by_method: dict[Any, dict[tuple, Any]] = defaultdict(dict)
    n_of: dict[tuple, Any] = {}
    for r in rows:
        if r.get("status", "ok") != "ok":
            continue
        u = pairing_unit(r)
        by_method[r.get("method")][u] = value(r)
        if n_fn is not None and n_of.get(u) is None:
            n_of[u] = n_fn(r)
    units = [u for u in by_method.get(a, {}) if u in by_method.get(b, {})]
    out = (units, [by_method[a][u] for u in units], [by_method[b][u] for u in units])
    return (*out, [n_of.get(u) for u in units]) if n_fn is not None else out


ORIGINAL_METHOD = "original (no unlearning)"
"""Label of the pseudo-method made by :func:`original_rows`."""


def original_rows(rows: Sequence[dict]) -> list[dict]:
    """Pseudo-rows for the untouched original model ``M_o`` ("do nothing"), one per pairing unit.

    Built from the ``original_*`` metrics the runner writes beside every method's: δ
    (``|original_acc_forget − gold_acc_forget|``), sample agreement, activation distance (rows since issue 15; the
    first row of the unit that has it), ``ACC_test`` and ``ACC_Dr``; so a method can be compared, paired, with doing
    nothing.

    Example:
        >>> r = {"scenario": "s", "seeds": {"train": 0}, "method": "tmu", "metrics": {"original_acc_forget": 0.9,
        ...      "gold_acc_forget": 0.85, "original_sample_agreement": 0.95}}
        >>> [(o["method"], round(o["metrics"]["delta_forget"], 2)) for o in original_rows([r])]
        [('original (no unlearning)', 0.05)]
    """
    out: dict[tuple, dict] = {}
    for r in rows:
        m = r.get("metrics") or {}
        if r.get("status", "ok") != "ok" or m.get("original_sample_agreement") is None:
            continue
        fa, ga = _finite_array([m.get("original_acc_forget")]), _finite_array([m.get("gold_acc_forget")])
        unit = out.setdefault(
            pairing_unit(r),
            {
                "scenario": r.get("scenario"),
                "seeds": r.get("seeds"),
                "forget_class": r.get("forget_class"),
                "n_forget": row_n(r),
                "status": "ok",
                "method": ORIGINAL_METHOD,
                "metrics": {
                    "delta_forget": abs(float(fa[0]) - float(ga[0])) if fa.size and ga.size else None,
                    "sample_agreement": m.get("original_sample_agreement"),
                    "activation_distance_l2": None,
                    "acc_test": m.get("original_acc_test"),
                    "acc_retain": m.get("original_acc_retain"),
                    # issue 23: with G gold models (rows with options.gold_models)
                    "gold_models": m.get("gold_models"),
                    "expected_agreement": m.get("original_expected_agreement"),
                    "expected_agreement_best": m.get("expected_agreement_best"),
                    "delta_mean_gold": m.get("original_delta_mean_gold"),
                    "activation_distance_mean_gold_l2": m.get("original_activation_distance_mean_gold_l2"),
                },
            },
        )
        if unit["metrics"]["activation_distance_l2"] is None:  # older rows of the unit may lack it
            unit["metrics"]["activation_distance_l2"] = m.get("original_activation_distance_l2")
    return list(out.values())


@dataclass(frozen=True)
class ComparisonRow:
    """One line of a paired-comparison table: ``method`` vs ``other`` on one measure."""

    method: str
    other: str
    measure: Measure
    result: PairedComparison

    @property
    def verdict(self) -> str:
        return self.result.verdict(self.measure.direction)


def compare(
    rows: Sequence[dict],
    method: str,
    *,
    others: Sequence[str] | None = None,
    measures: Sequence[Measure] = ALIGNMENT_MEASURES,
    seed: int = 0,
    alpha: float = 0.05,
    n_resamples: int = 10_000,
) -> list[ComparisonRow]:
    """Paired comparisons of ``method`` against each other method (default: every other method in ``rows``).

    Args:
        rows: result rows of one benchmark (``status == "ok"``).
        method: the method under test (its display label, e.g. ``"tmu"``).
        others: the methods to compare with, in order (default: all others, first-seen order).
        measures: what to compare (default :data:`ALIGNMENT_MEASURES`).
        seed: bootstrap seed. alpha: significance level. n_resamples: bootstrap resamples.

    Example:
        >>> rows = [{"method": m, "scenario": "s", "seeds": {"train": i}, "metrics": {"delta_forget": d}}
        ...         for i in range(8) for m, d in (("tmu", 0.01), ("ft", 0.05))]
        >>> c = compare(rows, "tmu", measures=ALIGNMENT_MEASURES[:1])[0]
        >>> c.other, round(c.result.mean_diff, 2), c.verdict
        ('ft', -0.04, 'better')
    """
    names: list[Any] = list(dict.fromkeys(r.get("method") for r in rows if r.get("status", "ok") == "ok"))
    if method not in names:
        raise ValueError(f"no rows of method {method!r}; methods present: {', '.join(map(str, names))}")
    others = [o for o in (others if others is not None else names) if o != method]
    out = []
    for o in others:
        for ms in measures:
            _, va, vb, ns = paired_values(rows, method, o, ms.value, with_n=ms.grid_n)
            # on the count grid when every unit knows its denominator (rows before issue 9 may not: floats then)
            grid = ns if ms.grid and va and all(n is not None for n in ns) else None
            res = paired_difference(va, vb, grid=grid, seed=seed, alpha=alpha, n_resamples=n_resamples)
            if res.n:
                out.append(ComparisonRow(method, o, ms, res))
    return out


def wins_ties_losses(comparisons: Sequence[ComparisonRow]) -> dict[str, list[str]]:
    """``{"better": [...], "not significant": [...], "worse": [...]}`` of ``"other: measure"`` strings.

    Example:
        >>> m = ALIGNMENT_MEASURES[0]
        >>> wins_ties_losses([ComparisonRow("tmu", "ft", m, PairedComparison(9, -0.02, -0.03, -0.01, 0.01))])
        {'better': ['ft: δ (points)'], 'not significant': [], 'worse': []}
    """
    out: dict[str, list[str]] = {"better": [], "not significant": [], "worse": []}
    for c in comparisons:
        out[c.verdict].append(f"{c.other}: {c.measure.label}")
    return out


__all__ = [
    "ALIGNMENT_MEASURES",
    "ORIGINAL_METHOD",
    "ComparisonRow",
    "Measure",
    "MeanCI",
    "PairedComparison",
    "compare",
    "ZERO_METHOD",
    "finite_values",
    "gold_grid_n",
    "mean_ci",
    "on_grid",
    "original_rows",
    "paired_difference",
    "paired_values",
    "pairing_unit",
    "row_n",
    "wins_ties_losses",
]
