"""Membership-inference metrics against scikit-learn and literal per-row formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score
from sklearn.svm import SVC

from oblivio.metrics import (
    loss_mia_lr,
    modified_entropy,
    per_example_cross_entropy,
    roc_auc,
    salun_mia_efficacy,
    tpr_at_fpr,
    true_class_confidence,
)


@pytest.fixture()
def scored():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    scores = np.round(rng.normal(size=400) + 0.8 * labels, 1)  # rounded: many ties
    return scores, labels


def test_roc_auc_matches_sklearn_with_ties(scored):
    scores, labels = scored
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert roc_auc(-scores, labels) == pytest.approx(1 - roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize("target", [0.0, 0.01, 0.05, 0.1, 0.5, 1.0])
def test_tpr_at_fpr_matches_sklearn_roc_curve(scored, target):
    scores, labels = scored
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    assert tpr_at_fpr(scores, labels, fpr=target) == pytest.approx(tpr[fpr <= target].max(), abs=1e-12)


def test_roc_helpers_need_both_classes():
    with pytest.raises(ValueError, match="both positives"):
        roc_auc(np.arange(3.0), np.ones(3))
    with pytest.raises(ValueError, match="fpr must be"):
        tpr_at_fpr(np.arange(4.0), np.array([0, 1, 0, 1]), fpr=1.5)


def test_cross_entropy_and_confidence_match_torch():
    rng = np.random.default_rng(2)
    z, y = rng.normal(scale=4, size=(30, 6)), rng.integers(0, 6, 30)
    zt, yt = torch.tensor(z), torch.tensor(y)
    np.testing.assert_allclose(
        per_example_cross_entropy(z, y), F.cross_entropy(zt, yt, reduction="none").numpy(), rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(true_class_confidence(z, y), zt.softmax(1)[torch.arange(30), yt].numpy(), atol=1e-12)


def test_modified_entropy_matches_song_and_mittal_per_row():
    rng = np.random.default_rng(3)
    z = rng.normal(scale=3, size=(25, 5))
    probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    probs = np.vstack([probs, [[1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0]]])  # confident right, confident wrong
    labels = np.r_[rng.integers(0, 5, 25), 0, 0]
    got = modified_entropy(probs, labels)
    for row, y, value in zip(probs, labels, got, strict=True):
        safe = lambda a: math.log(max(a, 1e-30))  # noqa: E731
        expected = -(1 - row[y]) * safe(row[y])
        for i, p in enumerate(row):
            if i != y:
                expected -= p * safe(1 - p)
        assert value == pytest.approx(expected, abs=1e-10)
    assert got[-2] == 0.0  # certain and right: nothing left to explain
    assert got[-1] > 60  # certain and wrong: large


def test_loss_mia_lr_accuracy_is_the_starting_kits_number():
    rng = np.random.default_rng(4)
    forget, test = rng.exponential(0.3, 120), rng.exponential(1.0, 120)
    res = loss_mia_lr(forget, test, seed=7)
    x = np.r_[forget, test][:, None]
    y = np.r_[np.ones(120), np.zeros(120)]
    kit = cross_val_score(
        LogisticRegression(),
        x,
        y,
        cv=StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=7),
        scoring="accuracy",
    )
    assert res.accuracy == pytest.approx(kit.mean(), abs=1e-12)
    assert res.n_per_side == 120
    assert 0.6 < res.auc <= 1.0 and 0.0 <= res.tpr_at_1pct_fpr <= 1.0


def test_loss_mia_lr_is_at_chance_for_one_distribution_and_high_when_separated():
    rng = np.random.default_rng(5)
    same = loss_mia_lr(rng.exponential(1.0, 500), rng.exponential(1.0, 300), seed=0)
    assert same.n_per_side == 300  # the larger side is subsampled
    assert abs(same.accuracy - 0.5) < 0.08 and abs(same.auc - 0.5) < 0.08
    apart = loss_mia_lr(rng.uniform(0, 0.1, 200), rng.uniform(1, 2, 200), seed=0)
    assert apart.accuracy == 1.0 and apart.auc == 1.0 and apart.tpr_at_1pct_fpr == 1.0


def test_loss_mia_lr_rejects_too_few_samples():
    with pytest.raises(ValueError, match="at least"):
        loss_mia_lr(np.ones(4), np.ones(100))


def test_salun_efficacy_matches_an_independent_svc():
    rng = np.random.default_rng(6)
    retain = np.r_[rng.uniform(0.9, 1.0, 100), rng.uniform(0.0, 0.1, 300)]  # only the first |test| count
    test = rng.uniform(0.0, 0.7, 100)
    forget = rng.uniform(0.0, 1.0, 80)
    svc = SVC(C=3, gamma="auto", kernel="rbf").fit(
        np.r_[retain[:100], test][:, None], np.r_[np.ones(100), np.zeros(100)]
    )
    expected = float(np.mean(svc.predict(forget[:, None]) == 0))
    res = salun_mia_efficacy(retain, test, forget)
    assert res.efficacy == pytest.approx(expected) and res.n_train_per_side == 100 and res.n_forget == 80
    assert res.forget_member_rate == pytest.approx(1 - expected)


def test_salun_efficacy_extremes_and_small_retain():
    rng = np.random.default_rng(7)
    retain, test = rng.uniform(0.95, 1.0, 200), rng.uniform(0.0, 0.5, 150)
    assert salun_mia_efficacy(retain, test, rng.uniform(0.96, 1.0, 40)).efficacy == 0.0  # looks like members
    assert salun_mia_efficacy(retain, test, rng.uniform(0.0, 0.4, 40)).efficacy == 1.0  # looks like test
    assert salun_mia_efficacy(retain[:50], test, test[:10]).n_train_per_side == 50
