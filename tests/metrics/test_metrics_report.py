"""evaluate_unlearning: keys, values equal to the pure functions, one forward pass per model per split."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import oblivio.metrics.extras as extras_module
from oblivio.data import ImageDataset
from oblivio.metrics import (
    accuracy_from_logits,
    activation_distance,
    evaluate_unlearning,
    js_divergence,
    loss_mia_lr,
    per_example_cross_entropy,
    salun_mia_efficacy,
    true_class_confidence,
    zrf_score,
)
from oblivio.training.evaluate import predict_logits


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


@pytest.fixture()
def splits():
    g = torch.Generator().manual_seed(0)

    def make(n, name):
        return ImageDataset(
            torch.rand(n, 1, 4, 4, generator=g),
            torch.randint(0, 3, (n,), generator=g),
            ("a", "b", "c"),
            name=name,
        )

    return make(40, "forget"), make(120, "retain"), make(60, "test")


def test_keys_and_values_match_the_pure_functions(splits, monkeypatch):
    forget, retain, test = splits
    model, gold, rand = _net(1), _net(2), _net(3)
    calls = []
    real = extras_module.predict_logits

    def counting(m, ds, **kw):
        calls.append((id(m), ds.name))
        return real(m, ds, **kw)

    monkeypatch.setattr(extras_module, "predict_logits", counting)  # the one place logits are computed
    out = evaluate_unlearning(model, forget=forget, retain=retain, test=test, gold=gold, random_model=rand, seed=3)
    assert len(calls) == len(set(calls)) == 7  # 3 splits x (model, gold) + the random model on the forget set

    zf, zg, zr = (predict_logits(m, forget) for m in (model, gold, rand))
    assert out["acc_forget"] == accuracy_from_logits(zf, forget.labels)
    assert out["gold_acc_test"] == accuracy_from_logits(predict_logits(gold, test), test.labels)
    assert out["delta_forget"] == pytest.approx(abs(out["acc_forget"] - out["gold_acc_forget"]))
    assert out["activation_distance_l2"] == pytest.approx(activation_distance(zf, zg), abs=1e-9)
    assert out["js_divergence"] == pytest.approx(js_divergence(zf, zg), abs=1e-9)
    assert out["zrf_score"] == pytest.approx(zrf_score(zf, zr), abs=1e-9)
    lr = loss_mia_lr(
        per_example_cross_entropy(zf, forget.labels),
        per_example_cross_entropy(predict_logits(model, test), test.labels),
        seed=3,
    )
    assert out["mia_loss_lr_acc"] == pytest.approx(lr.accuracy)
    assert out["mia_loss_lr_auc"] == pytest.approx(lr.auc)
    conf = lambda ds: true_class_confidence(predict_logits(model, ds), ds.labels)  # noqa: E731
    assert out["mia_salun_efficacy"] == salun_mia_efficacy(conf(retain), conf(test), conf(forget)).efficacy
    for key in ("mia_loss_lr_acc", "mia_loss_lr_auc", "mia_loss_lr_tpr_at_1pct_fpr", "mia_salun_efficacy"):
        assert key in out and f"gold_{key}" in out
    assert all(isinstance(v, float) for v in out.values())


def test_the_model_against_itself_is_perfectly_aligned(splits):
    forget, retain, test = splits
    net = _net(4)
    out = evaluate_unlearning(net, forget=forget, retain=retain, test=test, gold=net, mia=False)
    assert out["delta_forget"] == 0.0 and out["js_divergence"] == 0.0 and out["activation_distance_l2"] == 0.0
    assert not any(k.startswith(("mia", "gold_mia")) for k in out)
    assert "zrf_score" not in out


def test_a_tiny_forget_set_gives_nan_loss_mia_not_an_error(splits):
    forget, retain, test = splits
    out = evaluate_unlearning(_net(5), forget=forget.subset(range(3)), retain=retain, test=test)
    assert math.isnan(out["mia_loss_lr_acc"]) and not math.isnan(out["mia_salun_efficacy"])
    assert not math.isnan(out["acc_forget"])
