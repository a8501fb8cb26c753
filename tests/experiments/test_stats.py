"""Per-method bootstrap CIs and paired comparisons (oblivio.experiments.stats) on synthetic rows with known answers.

Oracles: the exact two-sided Wilcoxon signed-rank p by enumerating every sign pattern (written from the textbook
definition), the t-interval of the mean for large samples, and hand-built rows whose verdicts are known.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from oblivio.experiments.report import (
    alignment_ci_table,
    label_accuracy_table,
    paired_comparison_table,
    predictor_null_table,
)
from oblivio.experiments.stats import ALIGNMENT_MEASURES, compare, mean_ci, paired_difference, paired_values


def _exact_wilcoxon_two_sided(d):
    """P(|W+ − n(n+1)/4| >= observed) over all 2^n sign flips of the ranks (no ties, no zeros)."""
    d = np.asarray(d, dtype=float)
    ranks = sps.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    centre = ranks.sum() / 2
    count = total = 0
    for signs in itertools.product((0, 1), repeat=len(d)):
        w = sum(r for r, s in zip(ranks, signs, strict=True) if s)
        total += 1
        count += abs(w - centre) >= abs(observed - centre) - 1e-12
    return count / total


@pytest.mark.parametrize("seed", range(4))
def test_wilcoxon_p_matches_the_exact_enumeration(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(0.3, 1.0, 9)
    b = rng.normal(0.0, 1.0, 9)
    res = paired_difference(a, b)
    assert res.n == 9
    assert res.mean_diff == pytest.approx(float(np.mean(a - b)))
    assert res.p_value == pytest.approx(_exact_wilcoxon_two_sided(a - b))


def test_all_positive_differences_known_p_and_verdicts():
    res = paired_difference(np.arange(10) + 1.0, np.zeros(10))
    assert res.p_value == pytest.approx(2 / 2**10)
    assert res.significant and res.verdict("higher") == "better" and res.verdict("lower") == "worse"
    assert res.low > 0 and res.high <= 10


def test_identical_methods_are_not_significant():
    x = [0.1, 0.5, 0.2, 0.9]
    res = paired_difference(x, x)
    assert (res.n, res.mean_diff, res.low, res.high, res.p_value) == (4, 0.0, 0.0, 0.0, 1.0)
    assert res.verdict("lower") == "not significant"
    # a small sample with mixed signs: never significant, whatever the mean says
    mixed = paired_difference([1.0, 2.0, 3.0], [0.0, 2.5, 2.0])
    assert not mixed.significant and mixed.verdict("higher") == "not significant"


def test_missing_pairs_are_dropped_and_lengths_checked():
    res = paired_difference([1.0, None, 3.0, float("nan"), 5.0], [0.0, 1.0, 1.0, 1.0, 1.0])
    assert res.n == 3 and res.mean_diff == pytest.approx((1 + 2 + 4) / 3)
    assert paired_difference([None], [1.0]).n == 0
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1.0], [1.0, 2.0])


def test_bootstrap_ci_against_the_t_interval_and_determinism():
    rng = np.random.default_rng(7)
    x = rng.normal(2.0, 1.0, 400)
    ci = mean_ci(x, seed=3)
    lo, hi = sps.t.interval(0.95, df=x.size - 1, loc=x.mean(), scale=sps.sem(x))
    assert ci.mean == pytest.approx(x.mean())
    assert ci.low == pytest.approx(lo, abs=0.03) and ci.high == pytest.approx(hi, abs=0.03)
    assert mean_ci(x, seed=3) == ci  # same seed, same interval
    assert mean_ci([2.0, None, "x", float("inf")]).n == 1
    one = mean_ci([0.25])
    assert one.n == 1 and math.isnan(one.low) and one.format(scale=100) == "25.0"
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=95)


def test_ci_coverage_is_near_nominal():
    rng = np.random.default_rng(11)
    covered = 0
    for i in range(60):
        ci = mean_ci(rng.normal(0.0, 1.0, 30), seed=i, n_resamples=2000)
        covered += ci.low <= 0.0 <= ci.high
    assert 48 <= covered <= 60  # 95% nominal; the percentile bootstrap runs a little narrow at n = 30


def _rows():
    """Ten units (5 classes × 2 seeds) of three methods with known relations.

    tmu: δ 2 points below finetune everywhere (a win); sample agreement equal to finetune's (a tie); MIA loss-LR
    gap 3 points larger (a loss). control: sample agreement 10 points below tmu's everywhere.
    """
    rows = []
    rng = np.random.default_rng(0)
    for cls in range(5):
        for s in range(2):
            base = {
                "scenario": f"class-subset:{cls}:100",
                "forget_class": cls,
                "status": "ok",
                "seeds": {"train": s, "gold": s, "request": s, "unlearn": 10000 + s, "eval": 20000 + s},
            }
            d_ft, agree = 0.05 + 0.01 * rng.random(), 0.8 + 0.1 * rng.random()
            gold_mia = 0.55
            for method, d, ag, mia in (
                ("finetune", d_ft, agree, gold_mia + 0.01),
                ("tmu", d_ft - 0.02, agree, gold_mia - 0.04),
                ("tmu.random-control", d_ft - 0.02, agree - 0.10, gold_mia),
            ):
                m = {
                    "delta_forget": d,
                    "sample_agreement": ag,
                    "mia_loss_lr_acc": mia,
                    "gold_mia_loss_lr_acc": gold_mia,
                    "acc_test": 0.9,
                    "acc_retain": 0.95,
                    "original_sample_agreement": 0.85,
                    "original_acc_forget": 0.9,
                    "gold_acc_forget": 0.88,
                }
                if method.startswith("tmu"):
                    m.update(
                        label_accuracy=0.9 if method == "tmu" else 0.7,
                        label_accuracy_null=0.75,
                        label_kappa=0.4 if method == "tmu" else -0.1,
                    )
                rows.append({**base, "method": method, "metrics": m})
    return rows


def test_compare_finds_the_planted_wins_ties_and_losses():
    rows = _rows()
    by = {(c.other, c.measure.key): c for c in compare(rows, "tmu")}
    assert by[("finetune", "delta")].verdict == "better"
    assert by[("finetune", "delta")].result.mean_diff == pytest.approx(-0.02)
    assert by[("finetune", "sample_agreement")].verdict == "not significant"
    assert by[("finetune", "mia_loss_lr_gap")].verdict == "worse"
    assert by[("finetune", "mia_loss_lr_gap")].result.mean_diff == pytest.approx(0.03)
    assert by[("tmu.random-control", "sample_agreement")].verdict == "better"
    assert by[("tmu.random-control", "delta")].verdict == "not significant"
    assert all(c.result.n == 10 for c in by.values())
    assert ("finetune", "activation_distance") not in by  # no values: no line
    with pytest.raises(ValueError, match="no rows"):
        compare(rows, "scrub")


def test_pairing_uses_the_same_request_and_seeds():
    rows = _rows()
    rows = [r for r in rows if not (r["method"] == "finetune" and r["forget_class"] == 0)]
    units, a, b = paired_values(rows, "tmu", "finetune", ALIGNMENT_MEASURES[0].value)
    assert len(units) == 8 and all(u[0] != "class-subset:0:100" for u in units)
    assert all(x == pytest.approx(y - 0.02) for x, y in zip(a, b, strict=True))


def test_report_tables_say_where_tmu_wins_ties_and_loses():
    rows = _rows()
    paired = paired_comparison_table(rows)
    text = paired.to_markdown()
    assert "tmu better" in text and "tmu worse" in text and "not significant" in text
    notes = " ".join(paired.notes)
    assert "tmu wins: finetune: δ (points)" in notes and "tmu loses: finetune: |MIA loss-LR acc − gold|" in notes
    assert "ties (not significant)" in notes
    ci = alignment_ci_table(rows)
    names = [r[0] for r in ci.rows]
    assert names == ["finetune", "tmu", "tmu.random-control", "original (no unlearning)"]
    assert ci.rows[-1][ci.columns.index("sample agreement (%)")] == "85.0 [85.0, 85.0]"
    pred = predictor_null_table(rows)
    verdicts = {r[0]: r[6] for r in pred.rows}
    assert verdicts == {"tmu": "above the null", "tmu.random-control": "below the null"}
    t4 = label_accuracy_table(rows)  # Table 4 shows the fair null under the feature sets
    assert t4.rows[-1] == ["random subset of the same size (fair null)", "75.0 ± 0.0", "20"]
    assert not paired_comparison_table([r for r in rows if r["method"] != "tmu"])
    # doing nothing is a comparison too: the original's agreement 0.85 vs tmu's, paired on the same 10 units
    orig = [r for r in paired.rows if r[0] == "original (no unlearning)"]
    assert [r[1] for r in orig] == ["δ (points)", "sample agreement (%)"] and all(r[2] == "10" for r in orig)
    tmu_agree = [r["metrics"]["sample_agreement"] for r in rows if r["method"] == "tmu"]
    assert orig[1][3].startswith(f"{100 * (np.mean(tmu_agree) - 0.85):+.1f}")


def test_docstring_examples_run():
    import doctest

    from oblivio.experiments import stats
    from oblivio.metrics import alignment

    for module in (stats, alignment):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0 and result.attempted > 5, module.__name__


def test_original_rows_take_the_activation_distance_from_any_row_of_the_unit():
    """Rows made before issue 15 lack ``original_activation_distance_l2``; a unit whose first row is such a row still
    gets the value from a later one, and the paired table then compares with doing nothing on it too."""
    from oblivio.experiments.stats import original_rows

    rows = _rows()
    for i, r in enumerate(rows):
        r["metrics"]["activation_distance_l2"] = 0.10 if r["method"] == "tmu" else 0.12
        if r["method"] == "tmu":  # only the second method of each unit carries the original's value
            r["metrics"]["original_activation_distance_l2"] = 0.20 + 0.001 * i
    orig = original_rows(rows)
    assert len(orig) == 10
    by_unit = {(o["scenario"], o["seeds"]["train"]): o["metrics"]["activation_distance_l2"] for o in orig}
    expected = {
        (r["scenario"], r["seeds"]["train"]): r["metrics"]["original_activation_distance_l2"]
        for r in rows
        if r["method"] == "tmu"
    }
    assert by_unit == expected
    lines = [r for r in paired_comparison_table(rows).rows if r[0] == "original (no unlearning)"]
    act = [r for r in lines if r[1] == "act. distance L2"]
    assert len(act) == 1 and act[0][2] == "10" and act[0][-1] == "tmu better"
