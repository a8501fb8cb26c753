"""Paired comparisons on the metric's grid (issue 23): δ and sample agreement are counts of forget images, so equal
counts must be ties (zero differences, dropped by the Wilcoxon test), not ±1e-6 "wins" from float32 accuracies.

Oracles: scipy's ``wilcoxon`` on the integer count differences (written here from the rows, not through
:mod:`oblivio.experiments.stats`), and an exhaustive sign-flip enumeration of the signed-rank statistic with zeros
dropped and tied ranks averaged (Wilcoxon's definition; what scipy computes for up to 13 tied pairs).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from oblivio.experiments.stats import (
    ALIGNMENT_MEASURES,
    ORIGINAL_METHOD,
    compare,
    on_grid,
    original_rows,
    paired_difference,
)


def _exact_signed_rank_p(d):
    """Two-sided p of the signed-rank statistic by enumerating every sign pattern: zeros dropped, ties averaged."""
    d = np.asarray([x for x in d if x != 0], dtype=float)
    ranks = sps.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    centre = ranks.sum() / 2
    hits = total = 0
    for signs in itertools.product((0, 1), repeat=d.size):
        w = sum(r for r, s in zip(ranks, signs, strict=True) if s)
        total += 1
        hits += abs(w - centre) >= abs(observed - centre) - 1e-9
    return hits / total


def test_on_grid_reads_float32_accuracies_as_counts_and_rejects_off_grid_values():
    assert on_grid(np.float32(0.94), 100) == 94
    assert on_grid(float(np.float32(0.07)), 100) == 7
    assert on_grid(0.9435, 2000) == 1887
    assert on_grid(None, 100) is None and on_grid(0.5, None) is None
    with pytest.raises(ValueError, match="not a multiple of 1/100"):
        on_grid(0.1234, 100)


def test_float32_noise_is_a_tie_on_the_grid_and_not_a_win():
    # δ of 12 units: tmu vs the original; 7 units tie exactly in counts, but the original's δ carries float32 noise
    tmu = [3, 5, 2, 7, 4, 1, 6, 2, 8, 3, 5, 4]
    orig = [3, 5, 2, 7, 4, 3, 9, 4, 8, 6, 5, 9]
    a = [k / 100 for k in tmu]
    b = [abs(float(np.float32(0.9 + k / 100)) - 0.9) for k in orig]  # |ACC_Df(M_o) − ACC_Df(M_g)| from float32
    assert sum(x != y for x, y in zip(a, b, strict=True)) > sum(x != y for x, y in zip(tmu, orig, strict=True))
    grid = paired_difference(a, b, grid=[100] * 12)
    d = np.asarray(tmu) - np.asarray(orig)
    assert grid.on_grid and grid.zeros == int(np.sum(d == 0)) == 7
    assert grid.mean_diff == pytest.approx(d.mean() / 100)
    assert grid.p_value == pytest.approx(sps.wilcoxon(d, zero_method="wilcox").pvalue)
    assert grid.p_value == pytest.approx(_exact_signed_rank_p(d))  # 5 non-zero pairs, tied ranks: exact
    floats = paired_difference(a, b)  # the pre-issue-23 computation: the ties became tiny differences
    assert floats.zeros < grid.zeros and floats.p_value != pytest.approx(grid.p_value)


@pytest.mark.parametrize("seed", range(3))
def test_tied_count_differences_match_scipy_and_the_enumeration(seed):
    rng = np.random.default_rng(seed)
    ka, kb = rng.integers(85, 100, 11), rng.integers(85, 100, 11)  # many tied |differences| and some zeros
    kb[:3] = ka[:3]
    res = paired_difference(ka / 100, kb / 100, grid=[100] * 11)
    d = ka - kb
    assert res.zeros == int(np.sum(d == 0)) >= 3
    assert res.p_value == pytest.approx(sps.wilcoxon(d, zero_method="wilcox").pvalue)
    assert res.p_value == pytest.approx(_exact_signed_rank_p(d))


def test_units_of_different_sizes_compare_shares_of_their_own_forget_set():
    # one unit of 100 images, one of 2000: a difference of 1 image is 1 point in one and 0.05 in the other
    res = paired_difference([0.95, 0.9405, 0.90], [0.94, 0.9400, 0.90], grid=[100, 2000, 100])
    assert res.zeros == 1 and res.mean_diff == pytest.approx((0.01 + 0.0005 + 0.0) / 3)


def _rows():
    """Twelve units of 100 images: tmu and finetune rows, with the runner's n_forget and float32 originals."""
    rows = []
    tmu_right = [90, 88, 95, 91, 86, 93, 97, 89, 92, 90, 94, 87]
    ft_right = [90, 89, 95, 93, 86, 92, 97, 91, 92, 88, 94, 90]
    gold_right = [89, 86, 96, 90, 88, 93, 96, 87, 93, 90, 94, 86]
    orig_right = [99, 100, 100, 98, 97, 99, 100, 99, 100, 98, 99, 97]
    for i, (t, f, g, o) in enumerate(zip(tmu_right, ft_right, gold_right, orig_right, strict=True)):
        base = {"scenario": f"class-subset:{i % 10}:100", "n_forget": 100, "seeds": {"train": i // 10, "gold": i}}
        for method, right in (("tmu", t), ("finetune", f)):
            m = {
                "acc_forget": right / 100,
                "gold_acc_forget": g / 100,
                "delta_forget": abs(right - g) / 100,
                "sample_agreement": (100 - abs(right - g) - 2 * (i % 2)) / 100,
                "original_acc_forget": float(np.float32(o / 100)),
                "original_sample_agreement": float(np.float32((100 - abs(o - g)) / 100)),
            }
            rows.append({**base, "method": method, "status": "ok", "metrics": m})
    return rows, tmu_right, ft_right, gold_right, orig_right


def test_compare_pairs_delta_and_agreement_on_the_grid_against_scipy_on_counts():
    rows, t, f, g, o = _rows()
    by = {(c.other, c.measure.key): c.result for c in compare(rows, "tmu", measures=ALIGNMENT_MEASURES[:2])}
    d_delta = np.abs(np.subtract(t, g)) - np.abs(np.subtract(f, g))
    res = by[("finetune", "delta")]
    assert res.on_grid and res.zeros == int(np.sum(d_delta == 0))
    assert res.p_value == pytest.approx(sps.wilcoxon(d_delta, zero_method="wilcox").pvalue)
    # against doing nothing (the original's pseudo-rows carry n_forget and their float32 δ lands on the grid)
    orig = original_rows(rows)
    assert all(r["n_forget"] == 100 for r in orig)
    by = {(c.other, c.measure.key): c.result for c in compare(rows + orig, "tmu", measures=ALIGNMENT_MEASURES[:1])}
    d_orig = np.abs(np.subtract(t, g)) - np.abs(np.subtract(o, g))
    res = by[(ORIGINAL_METHOD, "delta")]
    assert res.on_grid and res.mean_diff == pytest.approx(d_orig.mean() / 100)
    assert res.p_value == pytest.approx(sps.wilcoxon(d_orig, zero_method="wilcox").pvalue)


def test_rows_without_a_forget_size_fall_back_to_floats():
    rows, *_ = _rows()
    for r in rows:
        del r["n_forget"]
    c = compare(rows, "tmu", measures=ALIGNMENT_MEASURES[:1])[0]
    assert not c.result.on_grid
