"""The runner's ``gold_models=G`` option (issue 23) on the tiny preset: the G gold models are the store's, the row's
expected agreement and δ to the mean gold are recomputed here from those models by a literal loop, the held-out gold
(the ``gold`` pseudo-method) is scored the same way, and a cell without the option keeps its old key."""

from __future__ import annotations

import pytest
import torch

from oblivio.experiments.pipeline import Experiment
from oblivio.experiments.runner import Cell, EvalOptions, Grid, MethodSpec, Runner, Seeds
from oblivio.experiments.stats import compare, original_rows
from oblivio.utils import config_hash, to_jsonable

SCENARIO = "class-subset:3:40"


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    root = tmp_path_factory.mktemp("golddist")
    grid = Grid(
        scenarios=[SCENARIO],
        methods=[MethodSpec("finetune", {"epochs": 1}), "gold"],
        seeds=[0, 1],
        options=EvalOptions(mia=False, zrf=False, gold_models=3),
    )
    out = Runner("tiny", results=root / "rows.jsonl", store=root / "store").run(grid)
    return {"rows": out, "store": root / "store"}


def test_row_metrics_match_a_literal_recomputation_from_the_stored_golds(rows):
    exp = Experiment("tiny", store=rows["store"], progress=False)
    for row in rows["rows"]:
        s = row["seeds"]
        split = exp.forget_split(SCENARIO, seed=s["request"])
        forget = exp.unlearning_splits(split).forget
        seeds = [s["gold"] + 1000 * j for j in range(3)]
        assert row["per_image"]["gold_seeds"] == seeds
        right = []
        for g in seeds:  # the same models the store holds (trained once, loaded here)
            gold = exp.gold(split, seed=g)
            with torch.no_grad():
                right.append((gold(forget.float_images(torch.arange(len(forget)))).argmax(1) == forget.labels).tolist())
        counts = [sum(r[i] for r in right) for i in range(len(forget))]
        assert row["per_image"]["gold_right_counts"] == "".join(map(str, counts))
        mine = [c == "1" for c in row["per_image"]["forget_correct"]]
        e = sum(k / 3 if ok else 1 - k / 3 for k, ok in zip(counts, mine, strict=True)) / len(forget)
        m = row["metrics"]
        assert m["gold_models"] == 3
        assert m["expected_agreement"] == pytest.approx(e)
        assert m["expected_agreement_count"] == round(e * 3 * len(forget))
        assert m["expected_agreement_best"] == pytest.approx(sum(max(k / 3, 1 - k / 3) for k in counts) / len(forget))
        assert m["delta_mean_gold"] == pytest.approx(abs(sum(mine) / len(forget) - sum(counts) / (3 * len(forget))))
        assert m["expected_agreement"] <= m["expected_agreement_best"] + 1e-12
        # the original's are there too (the "do nothing" reference)
        orig = [c == "1" for c in row["per_image"]["original_forget_correct"]]
        e_o = sum(k / 3 if ok else 1 - k / 3 for k, ok in zip(counts, orig, strict=True)) / len(forget)
        assert m["original_expected_agreement"] == pytest.approx(e_o)


def test_the_held_out_gold_is_outside_the_gold_set_and_pairs_on_the_grid(rows):
    gold_rows = [r for r in rows["rows"] if r["method"] == "gold"]
    assert gold_rows and all(r["seeds"]["unlearn"] not in r["per_image"]["gold_seeds"] for r in gold_rows)
    every = rows["rows"] + original_rows(rows["rows"])
    by = {(c.other, c.measure.key): c.result for c in compare(every, "finetune")}
    res = by[("gold", "expected_agreement")]
    assert res.on_grid and res.n == 2
    assert ("original (no unlearning)", "expected_agreement") in by


def test_cell_key_is_unchanged_without_the_option():
    from oblivio.experiments.config import get_preset

    cell = Cell(SCENARIO, MethodSpec("finetune"), Seeds(), EvalOptions())
    config = get_preset("tiny")
    old = config_hash(
        {
            "schema": 1,
            "config": to_jsonable(config),
            "scenario": SCENARIO,
            "method": cell.method.key(),
            "seeds": cell.seeds.as_dict(),
            "options": {"mia": True, "zrf": True, "tta": False, "scores": False, "ablation": False},
        }
    )
    assert cell.key(config) == old
    assert Cell(SCENARIO, MethodSpec("finetune"), Seeds(), EvalOptions(gold_models=4)).key(config) != old
    with pytest.raises(ValueError, match="0 \\(off\\) to 9"):
        EvalOptions(gold_models=10)


def test_report_table_lists_methods_references_and_headroom(rows):
    from oblivio.experiments.report import build_tables
    from oblivio.experiments.stats import mean_ci

    (table,) = build_tables(rows["rows"], keys=["gold-distribution"])
    names = [r[0] for r in table.rows]
    assert names[:2] == ["finetune", "gold (held-out gold)"] and "original (no unlearning)" in names
    assert names[-1].startswith("E* (best possible")
    orig = [r for r in rows["rows"] if r["method"] == "finetune"]
    headroom = [r["metrics"]["expected_agreement_best"] - r["metrics"]["original_expected_agreement"] for r in orig]
    assert f"E* − E(doing nothing): {mean_ci(headroom).format(scale=100)} points" in " ".join(table.notes)
