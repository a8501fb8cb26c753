"""The issue-23 scripts under benchmarks/: the pre-registered analysis (per-unit means on the n·G·S grid, paired over
units against scipy on integer counts, worst case) and the soft AUC against the gold distribution (against sklearn on
duplicated samples), on hand-built rows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import wilcoxon

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(seed, method, unlearn, e_count, d_count, act, n=100, g=4):
    return {
        "status": "ok",
        "method": method,
        "scenario": "random:0.1",
        "n_forget": n,
        "seeds": {"train": seed, "gold": seed, "unlearn": unlearn, "request": seed, "eval": 20000 + seed},
        "metrics": {
            "gold_models": g,
            "expected_agreement": e_count / (n * g),
            "expected_agreement_best": 0.97,
            "delta_mean_gold": d_count / (n * g),
            "activation_distance_mean_gold_l2": act,
        },
        "cost": {"rte_cpu": 0.01},
    }


def test_prereg_units_are_compared_on_their_grid_against_scipy():
    pr = _script("tmu_headroom_prereg")
    rows = []
    e_best = {0: (380, 378), 1: (372, 376), 2: (390, 390), 3: (365, 369), 4: (381, 383), 5: (370, 370)}
    e_ft = {0: (376, 376), 1: (370, 370), 2: (388, 388), 3: (366, 366), 4: (380, 380), 5: (370, 370)}
    for s in range(6):
        for m, table in (("cand", e_best), ("finetune", e_ft)):
            for j, o in enumerate(pr.UNLEARN_OFFSETS):
                rows.append(_row(s, m, o + s, table[s][j], 8 + j, 0.1 + 0.01 * s + (0.02 if m == "finetune" else 0)))
    units = pr._units(rows)
    assert len(units) == 6
    value, grid = pr.unit_value(units[(0, "random:0.1")]["cand"], "expected_agreement", grid=True)
    assert grid == 100 * 4 * 2 and value == pytest.approx((380 + 378) / 800)
    comps = {label: res for label, _, _, res in pr.compare_units(units, "cand", "finetune")}
    d = [sum(e_best[s]) - sum(e_ft[s]) for s in range(6)]  # integer differences on the 800 grid
    res = comps[pr.MEASURES[0][0]]
    assert res.zeros == sum(x == 0 for x in d)
    assert res.p_value == pytest.approx(wilcoxon(d, zero_method="wilcox").pvalue)
    assert comps[pr.MEASURES[1][0]].verdict("lower") == "better"  # 0.02 lower everywhere: p = 2/64
    assert pr.worst_case(units, "cand") == pytest.approx(9 / 400)
    text = pr.analyse(rows, "cand")
    assert "**Met: False.**" in text  # E: two ties and mixed signs -> not significant
    # the per-unit table: unit 0's candidate E is (380 + 378) / 800, fine-tune's 376 / 400
    assert "| 0 random:0.1 | 100 | 97.00 | 94.75 / 0.1000 / 2.12 | 94.00 / 0.1200 / 2.12 |" in text


def test_soft_auc_weights_each_image_by_the_gold_distribution():
    from sklearn.metrics import roc_auc_score

    ex = _script("tmu_headroom_explore")
    scores = np.array([0.9, 0.2, 0.5, 0.7, 0.1])
    p = np.array([1.0, 0.25, 0.5, 0.75, 0.0])
    # oracle: every image duplicated 4 times (G = 4 golds), labelled right for p·4 of the copies
    ys, ss = [], []
    for s, q in zip(scores, p, strict=True):
        k = int(round(4 * q))
        ys += [1] * k + [0] * (4 - k)
        ss += [s] * 4
    assert ex.soft_auc(scores, p) == pytest.approx(roc_auc_score(ys, ss))
    assert np.isnan(ex.soft_auc(scores, np.ones(5)))


def test_drag_shortfall_parts_sum_to_the_decisions_lost_expected_agreement():
    ex = _script("tmu_headroom_explore")
    rng = np.random.default_rng(3)
    n, g = 60, 4
    p = rng.integers(0, g + 1, n) / g
    keep, before, right = (rng.random(n) < q for q in (0.7, 0.8, 0.75))
    parts = ex.shortfall(right, keep, before, p, g)
    # oracle from the definition: E = mean of p_i where right, 1 − p_i where wrong; the decision's E likewise
    e = np.mean([q if r else 1 - q for q, r in zip(p, right, strict=True)])
    e_decision = np.mean([q if k else 1 - q for q, k in zip(p, keep, strict=True)])
    assert sum(c for _, c in parts.values()) == pytest.approx(n * g * (e_decision - e))
    assert parts["hard_unflipped"][0] == sum(r and not k for r, k in zip(right, keep, strict=True))
    assert parts["collateral"][0] == sum(k and b and not r for r, k, b in zip(right, keep, before, strict=True))
    assert parts["kept_wrong_from_start"][0] == sum(
        k and not b and not r for r, k, b in zip(right, keep, before, strict=True)
    )
    # one image by hand: chosen to flip, still right, gold right 3 of 4 times: a miss that gains 2 votes of E
    one = ex.shortfall([True], [False], [True], [0.75], 4)
    assert one["hard_unflipped"] == (1, -2.0) and one["collateral"] == (0, 0.0)


def test_cross_machine_report_compares_each_environment_with_the_reference(tmp_path):
    import json

    xm = _script("cross_machine")

    def row(method, unlearn, e, d):
        return {
            "status": "ok",
            "scenario": "random:0.1",
            "method": method,
            "seeds": {"unlearn": unlearn},
            "metrics": {
                "expected_agreement": e,
                "delta_mean_gold": d,
                "original_expected_agreement": 0.5,
                "original_delta_mean_gold": 0.1,
                "original_acc_test": 0.8,
                "gold_mean_acc_forget": 0.7,
            },
        }

    ref = [row("tmu", 1, 0.80, 0.05), row("tmu", 2, 0.70, 0.10)]
    other = [row("tmu", 1, 0.80, 0.05), row("tmu", 2, 0.75, 0.04)]
    for name, rows in (("1 thread", ref), ("2 threads", other)):
        (tmp_path / f"{xm._slug(name)}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    import torch

    w = {"a": torch.zeros(3), "b": torch.ones(2)}
    for env, delta in (("1 thread", 0.0), ("2 threads", 0.25)):
        for name, d in (("m1", 0.0), ("m2", delta)):
            folder = tmp_path / xm._slug(env) / "store" / "gold" / name
            folder.mkdir(parents=True)
            torch.save({"a": w["a"] + d, "b": w["b"]}, folder / "model.pt")
    text = xm.report(tmp_path)
    assert "| gold | 2 threads | 2 | 1 | 0.25 |" in text  # m1 bitwise the same, m2 moved by 0.25
    # tmu: 2 cells, 1 identical, max |ΔE| 5 points, mean 2.5, max |Δδ| 6, own spread of E over seeds 10 points
    assert "| tmu | 2 threads | 2 | 1 | 5.00 | 2.50 | 6.00 | 10.00 |" in text
    assert "| original | 2 threads | 2 | 2 | 0.00 | 0.00 | 0.00 | 0.00 |" in text
    with pytest.raises(SystemExit, match="reference"):
        xm.report(tmp_path / "missing")


def test_prereg_selection_rule_breaks_ties_under_a_fifth_of_a_point_by_cost_then_distance():
    pr = _script("tmu_headroom_prereg")

    def rows(e_by_name, cost_by_name, act_by_name):
        out = []
        for name in pr.CANDIDATES:
            for shape in pr.SELECTION_SHAPES:
                out.append({
                    "status": "ok", "method": name, "scenario": shape, "seeds": {"train": pr.SELECTION_SEED},
                    "metrics": {"expected_agreement": e_by_name.get(name, 0.80),
                                "activation_distance_mean_gold_l2": act_by_name.get(name, 0.2)},
                    "cost": {"rte_cpu_amortised_100": cost_by_name.get(name, 0.05)},
                })  # fmt: skip
        return out

    # a clear winner: 0.5 points ahead
    best, table = pr.select(rows({"tmu.aum": 0.905, "tmu.kfold": 0.900}, {"tmu.aum": 0.9}, {}))
    assert best == "tmu.aum" and len(table) == len(pr.CANDIDATES)
    # 0.15 points apart is a tie: the cheaper one wins
    best, _ = pr.select(rows({"tmu.aum": 0.9015, "tmu.kfold": 0.900}, {"tmu.aum": 0.2, "tmu.kfold": 0.1}, {}))
    assert best == "tmu.kfold"
    # tied on E and cost: the lower activation distance wins
    best, _ = pr.select(rows({"tmu.aum": 0.9, "tmu.kfold": 0.9}, {}, {"tmu.aum": 0.3, "tmu.kfold": 0.1}))
    assert best == "tmu.kfold"
    # a candidate without a row for a shape is an error, not a silent pick
    incomplete = [r for r in rows({}, {}, {}) if not (r["method"] == "tmu.aum" and r["scenario"] == "random:0.1")]
    with pytest.raises(SystemExit, match="tmu.aum"):
        pr.select(incomplete)
