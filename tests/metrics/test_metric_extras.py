"""evaluate_unlearning's groups and extras (the one assembly point) and the cost ratios, against literal formulas."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from oblivio.data import ImageDataset
from oblivio.metrics.cost import rte, sample_passes_total
from oblivio.metrics.cost_ratio import COST_KEYS, RunCost, cost_fields, cost_ratios
from oblivio.metrics.extras import Extra, list_extras
from oblivio.metrics.report import Evaluation, evaluate_unlearning
from oblivio.training.evaluate import accuracy


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


@pytest.fixture()
def sets():
    g = torch.Generator().manual_seed(0)

    def make(n):
        return ImageDataset(
            torch.rand(n, 1, 4, 4, generator=g),
            torch.randint(0, 3, (n,), generator=g),
            ("a", "b", "c"),
        )

    return {"forget": make(30), "retain": make(60), "test": make(40)}


def test_cost_ratios_are_the_literal_quotients():
    method = RunCost(seconds=3.0, cpu_seconds=6.0, forward_samples=100, backward_samples=40)
    gold = RunCost(seconds=60.0, cpu_seconds=120.0, forward_samples=3000, backward_samples=3000)
    r = cost_ratios(method, gold)
    assert r["rte"] == rte(3.0, 60.0) == 3.0 / 60.0 and r["rte_cpu"] == 6.0 / 120.0
    assert r["sample_pass_ratio"] == (100 + 2 * 40) / (3000 + 2 * 3000)
    assert r["sample_pass_ratio"] == sample_passes_total({"forward_samples": 100, "backward_samples": 40}) / 9000
    fields = cost_fields(method, gold)
    assert tuple(fields) == COST_KEYS
    assert fields["method_seconds"] == 3.0 and fields["gold_train_backward_samples"] == 3000


@pytest.mark.parametrize(
    "method, gold",
    [(RunCost(), RunCost(seconds=1.0)), (RunCost(seconds=1.0), None), (RunCost(seconds=1.0), RunCost(seconds=0.0))],
)
def test_cost_ratio_is_none_when_a_side_is_unknown_or_zero(method, gold):
    assert cost_ratios(method, gold) == {"rte": None, "rte_cpu": None, "sample_pass_ratio": None}


def test_run_cost_reads_info_and_training_records():
    info = {"seconds": 1.0, "cpu_seconds": 2.0, "forward_samples": 3, "backward_samples": 4, "epochs": 9}
    assert RunCost.from_mapping(info) == RunCost(1.0, 2.0, 3, 4)
    meta = {"train_seconds": 5.0, "train_cpu_seconds": None, "train_forward_samples": 7}
    assert RunCost.from_mapping(meta, prefix="train_") == RunCost(5.0, None, 7, None)


def test_groups_record_which_keys_each_part_added(sets):
    model, gold, original = _net(1), _net(2), _net(3)
    ev = evaluate_unlearning(
        model,
        **sets,
        gold=gold,
        random_model=_net(4),
        mia=False,
        seed=1,
        extras=["original", "tta", "cost"],
        original=original,
        cost=RunCost(seconds=2.0),
        reference_cost=RunCost(seconds=8.0),
    )
    assert isinstance(ev, Evaluation) and isinstance(ev, dict)
    assert list(ev.groups) == ["accuracy", "gold-comparison", "zrf", "original", "tta", "cost"]
    assert sorted(k for keys in ev.groups.values() for k in keys) == sorted(ev)  # every key in exactly one group
    # the "original" extra equals the accuracy the runner always recorded (training.accuracy)
    for name, ds in sets.items():
        assert ev[f"original_acc_{name}"] == accuracy(original, ds)
    assert ev["chance"] == 1 / 3 and "gold_tta_hflip" in ev
    # "do nothing" references against gold, from the spec's formulas written here with plain torch
    x, y = sets["forget"].images.float(), sets["forget"].labels
    with torch.no_grad():
        po, pg = original(x), gold(x)
    right_o, right_g = po.argmax(1) == y, pg.argmax(1) == y
    assert ev["original_sample_agreement"] == pytest.approx(float((right_o == right_g).float().mean()))
    l2 = (po.softmax(1) - pg.softmax(1)).pow(2).sum(1).sqrt().mean()
    assert ev["original_activation_distance_l2"] == pytest.approx(float(l2), rel=1e-5)
    assert ev.group("cost")["rte"] == 0.25
    cost = ev.pop_group("cost")
    assert set(cost) == set(COST_KEYS) and not set(COST_KEYS) & set(ev) and "cost" not in ev.groups


def test_plain_call_is_unchanged_by_extras(sets):
    model, gold = _net(1), _net(2)
    plain = evaluate_unlearning(model, **sets, gold=gold, mia=True, seed=3)
    more = evaluate_unlearning(model, **sets, gold=gold, mia=True, seed=3, extras=["cost"])
    assert {k: more[k] for k in plain} == plain
    assert set(more) - set(plain) == set(COST_KEYS)


def test_a_pluggable_extra_sees_the_metrics_and_info_and_reuses_logits(sets):
    seen = {}

    def mine(ctx):
        seen["acc"] = ctx.metrics["acc_forget"]
        seen["logits"] = ctx.logits("model", "forget")
        return {"my_key": ctx.info["n"]}

    ev = evaluate_unlearning(_net(1), **sets, mia=False, extras=[Extra("mine", mine)], info={"n": 7})
    assert ev["my_key"] == 7 and ev.groups["mine"] == ("my_key",) and seen["acc"] == ev["acc_forget"]
    assert seen["logits"].dtype.name == "float64" and seen["logits"].shape == (30, 3)


def test_extras_fail_with_a_reason(sets):
    net = _net(1)
    with pytest.raises(KeyError, match="valid: .*cost.*original"):
        evaluate_unlearning(net, **sets, extras=["nope"])
    with pytest.raises(ValueError, match="needs original="):
        evaluate_unlearning(net, **sets, mia=False, extras=["original"])
    with pytest.raises(ValueError, match="needs gold="):
        evaluate_unlearning(net, **sets, mia=False, extras=["gold-comparison"])
    with pytest.raises(ValueError, match="needs random_model="):
        evaluate_unlearning(net, **sets, mia=False, extras=["zrf"])
    with pytest.raises(ValueError, match="earlier group set: \\['acc_forget'\\]"):
        evaluate_unlearning(net, **sets, mia=False, extras=[Extra("bad", lambda ctx: {"acc_forget": 0.0})])
    assert {"original", "tta", "cost", "mia", "zrf"} <= set(list_extras())


def test_builtin_group_names_in_extras_turn_them_on(sets):
    ev = evaluate_unlearning(_net(1), **sets, mia=False, extras=["mia"])
    assert "mia" in ev.groups and not math.isnan(ev["mia_salun_efficacy"])
