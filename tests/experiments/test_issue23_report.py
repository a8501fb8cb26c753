"""benchmarks/tmu_headroom_report.py on hand-built rows: headroom (E* − E of doing nothing) and the held-out gold's E,
per-shape means, the worst method and the ledger default's rank (ties as ties), paired tests on the |D_f|·G grid
against scipy on integer counts, stability and provenance counts; the oracle is numpy/scipy in the test."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import wilcoxon

ROOT = Path(__file__).resolve().parents[2]
N, G = 10, 4


def _script():
    spec = importlib.util.spec_from_file_location("tmu_headroom_report", ROOT / "benchmarks/tmu_headroom_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(method, scenario, seed, e_count, d_count, *, orig_e=30, unlearn=None, prov=True, guard=None):
    prov_d = {"git_commit": "a" * 40, "git_dirty": False, "finished_at": f"2026-01-01T00:00:0{seed}+00:00"}
    return {
        "status": "ok",
        "method": method,
        "scenario": scenario,
        "n_forget": N,
        "seeds": {"train": seed, "gold": seed, "unlearn": 10_000 + seed if unlearn is None else unlearn},
        "info": {"guard_triggered": guard},
        "provenance": prov_d if prov else {"git_commit": "a" * 40},
        "metrics": {
            "gold_models": G,
            "expected_agreement": e_count / (N * G),
            "expected_agreement_best": 36 / (N * G),
            "delta_mean_gold": d_count / (N * G),
            "original_expected_agreement": orig_e / (N * G),
            "original_delta_mean_gold": 5 / (N * G),
            "original_sample_agreement": 0.8,
            "original_acc_forget": 0.8,
            "gold_acc_forget": 0.8,
            "gold_mean_acc_forget": 0.75,
        },
    }


def test_explore_headroom_and_held_out_gold():
    rep = _script()
    rows = [_row("tmu", "p1", 50, 33, 2), _row("gold", "p1", 50, 31, 1), _row("tmu", "p2", 50, 34, 1, orig_e=28)]
    hr = rep.headroom(rows)
    assert hr["p1"]["headroom"] == pytest.approx(36 / 40 - 30 / 40)
    assert hr["p1"]["E_gold"] == pytest.approx(31 / 40) and hr["p1"]["methods"] == 2
    assert hr["p2"]["E_gold"] is None and hr["p2"]["headroom"] == pytest.approx(8 / 40)
    text = rep.explore_report(rows)
    assert "| p1 | 10 | 4 | 2 | 75.00 | 90.00 | 75.00 | 15.00 | 77.50 | n/a |" in text
    assert "No stability rows" in text


def test_stability_mean_spread_worst():
    rep = _script()
    e = [30, 34, 33, 28, 35]
    rows = [_row("tmu", "p1", 50, c, 1, unlearn=10_050 + i) for i, c in enumerate(e)] + [
        _row("finetune", "p1", 50, 30, 1)
    ]
    st = rep.stability(rows)
    assert list(st) == [("p1", 50, "tmu")]
    text = rep.explore_report(rows)
    x = np.array(e) / 40
    line = next(ln for ln in text.splitlines() if ln.startswith("| p1 | 50 | tmu | 5 |"))
    assert f"{100 * x.mean():.2f} [" in line
    assert f"| {100 * (x.max() - x.min()):.2f} | {100 * x.min():.2f} |" in line


def test_shapes_worst_rank_and_grid_pairs_against_scipy():
    rep = _script()
    # δ counts per (method, shape, seed) on the N·G grid
    d = {
        "tmu.guarded": {"s1": [2, 3, 4], "s2": [5, 5, 5]},
        "tmu": {"s1": [2, 3, 4], "s2": [20, 22, 30]},  # ties the default on s1 (equal means)
        "finetune": {"s1": [1, 3, 8], "s2": [5, 6, 5]},
    }
    rows = []
    for m, by in d.items():
        for sc, counts in by.items():
            for seed, c in enumerate(counts):
                rows.append(_row(m, sc, seed, 40 - c, c, guard=(sc == "s2") if m == "tmu.guarded" else None))
    units = rep.shape_units(rows)
    means = rep.per_shape_means(units, "delta_mean_gold")
    for m, by in d.items():
        for sc, counts in by.items():
            assert means[m][sc] == pytest.approx(np.mean(counts) / 40)
    ranked = rep.worst_by_shape(means, higher_is_worse=True, exclude=("gold", rep.ORIGINAL))
    assert ranked["s1"][0][0] == "finetune" and ranked["s2"][0][0] == "tmu"
    # s1: tmu and the default tie (3 = 3): one method (finetune, 4) strictly worse, so rank 2
    assert rep.default_rank(ranked["s1"][1], higher_is_worse=True) == 2
    assert rep.default_rank(ranked["s2"][1], higher_is_worse=True) == 3
    res = rep.paired_on_grid(units, "tmu.guarded", "finetune", "delta_mean_gold")
    diffs = [a - b for sc in ("s1", "s2") for a, b in zip(d["tmu.guarded"][sc], d["finetune"][sc], strict=True)]
    assert res.n == 6 and res.zeros == sum(x == 0 for x in diffs)
    assert res.p_value == pytest.approx(wilcoxon(diffs, zero_method="wilcox").pvalue)
    assert res.mean_diff == pytest.approx(np.mean(diffs) / 40)
    text = rep.shapes_report(rows)
    assert "tmu.guarded worst (or tied worst) on δ to mean gold (points): on no shape." in text
    assert "| s2 | 3 | tmu |" in text and "| 3 of 3 |" in text  # the guard fell back on every s2 seed


def test_shapes_names_a_shape_where_the_default_is_worst():
    rep = _script()
    rows = [_row("tmu.guarded", "s1", s, 30, 9) for s in range(3)] + [_row("tmu", "s1", s, 35, 2) for s in range(3)]
    assert "tmu.guarded worst (or tied worst) on δ to mean gold (points): s1." in rep.shapes_report(rows)


def test_provenance_counts_missing_fields(tmp_path):
    rep = _script()
    rows = [_row("tmu", "p1", 1, 30, 1), _row("tmu", "p1", 2, 30, 1, prov=False)]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = rep.provenance_table(rep.read_rows(path))
    assert "rows missing a commit, dirty flag or time: git_dirty: 1, time: 1." in text


def test_shortfall_table_lists_each_kind_of_miss_and_its_total():
    rep = _script()
    row = {"scenario": "random:0.1", "decision": "kfold", "remedy": "runner-up (default)",
           "misses": {"hard_unflipped": 3, "collateral": 2, "kept_wrong_from_start": 1},
           "miss_cost_counts": {"hard_unflipped": 5.0, "collateral": -2.0, "kept_wrong_from_start": 4.0}}  # fmt: skip
    lines = rep.shortfall_table([row, {"scenario": "x", "misses": None}])
    assert lines[-1] == "| random:0.1 | kfold | runner-up (default) | 3 (+5) | 2 (-2) | 1 (+4) | +7 |"
    assert sum(line.startswith("| random") for line in lines) == 1  # the row without misses is left out
    assert rep.shortfall_table([{"misses": None}]) == []
