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
