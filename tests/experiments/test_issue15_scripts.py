"""The issue-15 analysis scripts under benchmarks/: the oracle decisions of ``tmu_ceiling.py`` and the pooled
paired comparisons of ``tmu_table1_pooled.py``, checked against hand-written cases and scipy."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from scipy.stats import wilcoxon

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ceiling_labels_is_gold_right_and_count_takes_the_lowest_margins():
    ceiling = _script("tmu_ceiling")
    gold_right = torch.tensor([1, 0, 1, 0, 1, 1])
    margins = torch.tensor([5.0, 0.3, -1.0, 2.0, 0.1, 4.0])
    assert ceiling.oracle_decision("ceiling.labels", margins=margins, gold_right=gold_right).tolist() == [
        1,
        0,
        1,
        0,
        1,
        1,
    ]
    # gold gets 2 wrong: the two lowest margins (-1.0 at 2, 0.1 at 4) are called hard, whatever gold says of them
    assert ceiling.oracle_decision("ceiling.count", margins=margins, gold_right=gold_right).tolist() == [
        1,
        1,
        0,
        1,
        0,
        1,
    ]
    assert ceiling.oracle_decision("ceiling.count", margins=margins, gold_right=torch.ones(6)).tolist() == [1] * 6
    with pytest.raises(ValueError, match="unknown ceiling"):
        ceiling.oracle_decision("ceiling.magic", margins=margins, gold_right=gold_right)


def _bench_row(seed, k, method, delta, agree, act, orig=None):
    m = {"delta_forget": delta, "sample_agreement": agree, "activation_distance_l2": act, "gold_acc_forget": 0.8}
    if orig is not None:
        m.update(
            original_acc_forget=0.8 + orig[0],
            original_sample_agreement=orig[1],
            original_activation_distance_l2=orig[2],
        )
    return {
        "status": "ok",
        "method": method,
        "forget_class": k,
        "seeds": {"train": seed, "gold": seed},
        "scenario": f"class-subset:{k}:100",
        "metrics": m,
    }


def test_pooled_table_pairs_units_across_files(tmp_path):
    pooled = _script("tmu_table1_pooled")
    tmu = [0.02, 0.01, 0.05, 0.03, 0.00, 0.04]
    ft = [0.05, 0.04, 0.04, 0.07, 0.03, 0.06]
    rows, sel = [], []
    for i in range(3):  # a bench file (seeds 0-2 layout) with the original's extras on the finetune rows
        rows.append(_bench_row(i, 0, "tmu", tmu[i], 0.9, 0.1))
        rows.append(_bench_row(i, 0, "finetune", ft[i], 0.9, 0.1, orig=(0.1, 0.88, 0.2)))
    (tmp_path / "tmu-table1-full.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for i in range(3, 6):  # a selection-script file with its original forget accuracies beside it
        for meth, d in (("tmu", tmu[i]), ("finetune", ft[i])):
            sel.append(
                {
                    "seed": 100 + i,
                    "forget_class": 1,
                    "method": meth,
                    "original_sample_agreement": 0.88,
                    "original_activation_distance_l2": 0.2,
                    "metrics": {
                        "delta_forget": d,
                        "sample_agreement": 0.9,
                        "activation_distance_l2": 0.1,
                        "gold_acc_forget": 0.8,
                    },
                }
            )
    (tmp_path / "tmu-table1-full-replication.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sel))
    (tmp_path / "tmu-table1-full-replication-original.json").write_text(
        json.dumps({f"{100 + i}:1": 0.85 for i in range(3, 6)})
    )
    groups = pooled.load(tmp_path)
    assert [len(u) for u in groups.values()] == [3, 3]
    text = pooled.table(groups)
    line = next(ln for ln in text.splitlines() if ln.startswith("| all 6 pooled | tmu − finetune | δ"))
    diffs = [100 * (a - b) for a, b in zip(tmu, ft, strict=True)]
    assert f"| 6 | {sum(diffs) / 6:+.1f} [" in line
    assert f"| {wilcoxon(diffs).pvalue:.3g} |" in line
    # the original's δ is |original forget accuracy − gold's|: 10 points in the bench file, 5 in the selection file
    orig = next(ln for ln in text.splitlines() if ln.startswith("| all 6 pooled | tmu − original | δ"))
    expect = sum(100 * t - o for t, o in zip(tmu, [10, 10, 10, 5, 5, 5], strict=True)) / 6
    assert f"| 6 | {expect:+.1f} [" in orig


def test_pooled_table_counts_equal_images_as_ties(tmp_path):
    """Issue 23: δ differences are taken from counts of images, so a float32 original that got the same count as TMU
    is a zero difference (dropped by the Wilcoxon test), not a ±1e-7 win; p matches scipy on the integer counts."""
    import numpy as np

    pooled = _script("tmu_table1_pooled")
    tmu_right = [84, 90, 87, 80, 93, 85, 88, 91]
    orig_right = [84, 99, 87, 97, 93, 98, 88, 95]  # ties with TMU on 4 units
    gold_right = [86, 88, 87, 82, 92, 84, 89, 90]
    rows = []
    for i, (t, o, g) in enumerate(zip(tmu_right, orig_right, gold_right, strict=True)):
        r = _bench_row(i, 0, "tmu", abs(t - g) / 100, 0.9, 0.1, orig=(0.0, 0.9, 0.1))
        r["n_forget"] = 100
        r["metrics"].update(gold_acc_forget=g / 100, original_acc_forget=float(np.float32(o / 100)))
        rows.append(r)
    (tmp_path / "tmu-table1-full.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = pooled.table(pooled.load(tmp_path), "tmu", ("original",))
    line = next(ln for ln in text.splitlines() if ln.startswith("| all 8 pooled | tmu − original | δ"))
    d = [abs(t - g) - abs(o - g) for t, o, g in zip(tmu_right, orig_right, gold_right, strict=True)]
    assert sum(x == 0 for x in d) >= 2
    assert f"| {wilcoxon(d, zero_method='wilcox').pvalue:.3g} |" in line
