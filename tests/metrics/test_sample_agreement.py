"""Sample agreement, Cohen's κ and the rate-matched null (SPEC §6), against sklearn and literal per-row formulas."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from oblivio.metrics import evaluate_unlearning
from oblivio.metrics.alignment import cohen_kappa, random_subset_agreement, sample_agreement, sample_kappa


def _literal_agreement(lu, lg, y):
    """Per row: 1 when both models are right or both are wrong (written from SPEC §6 alone)."""
    total = 0
    for zu, zg, t in zip(lu, lg, y, strict=True):
        right_u = max(range(len(zu)), key=lambda k: zu[k]) == t
        right_g = max(range(len(zg)), key=lambda k: zg[k]) == t
        total += int(right_u == right_g)
    return total / len(y)


@pytest.mark.parametrize("seed", range(5))
def test_sample_agreement_matches_the_per_row_formula(seed):
    rng = np.random.default_rng(seed)
    n, c = 57, 4
    y = rng.integers(0, c, n)
    lu, lg = rng.normal(size=(n, c)), rng.normal(size=(n, c))
    lu[: n // 2, :] += 3 * np.eye(c)[y[: n // 2]]  # half the samples right for M_u
    assert sample_agreement(lu, lg, y) == pytest.approx(_literal_agreement(lu.tolist(), lg.tolist(), y.tolist()))
    right_u, right_g = lu.argmax(1) == y, lg.argmax(1) == y
    assert sample_kappa(lu, lg, y) == pytest.approx(cohen_kappa_score(right_u, right_g))


@pytest.mark.parametrize("seed", range(5))
def test_cohen_kappa_matches_sklearn(seed):
    rng = np.random.default_rng(100 + seed)
    a = rng.integers(0, 3, 40)
    b = np.where(rng.random(40) < 0.6, a, rng.integers(0, 3, 40))
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    strings = np.array(["x", "y", "z"])
    assert cohen_kappa(strings[a], strings[b]) == pytest.approx(cohen_kappa_score(strings[a], strings[b]))


def test_kappa_hand_computed_and_degenerate_cases():
    # a = 1100, b = 1010: p_o = 0.5, p_e = 0.5·0.5 + 0.5·0.5 = 0.5 -> κ = 0
    assert cohen_kappa([1, 1, 0, 0], [1, 0, 1, 0]) == 0.0
    # a = 1110, b = 1100: p_o = 0.75, p_e = 0.75·0.5 + 0.25·0.5 = 0.5 -> κ = 0.5
    assert cohen_kappa([1, 1, 1, 0], [1, 1, 0, 0]) == pytest.approx(0.5)
    assert math.isnan(cohen_kappa([1, 1, 1], [1, 1, 1]))  # both raters constant and equal: undefined
    assert math.isnan(cohen_kappa([], []))
    with pytest.raises(ValueError, match="same length"):
        cohen_kappa([1, 0], [1])


def test_same_count_other_samples_scores_zero_delta_but_low_agreement():
    """The motivating case: δ is a count, sample agreement sees which samples."""
    y = np.zeros(10, dtype=int)
    right, wrong = [5.0, 0.0], [0.0, 5.0]
    gold = np.array([right] * 8 + [wrong] * 2)
    same_count = np.array([wrong] * 2 + [right] * 8)  # 8 right, but 2 different samples wrong
    assert (same_count.argmax(1) == y).mean() == (gold.argmax(1) == y).mean()
    assert sample_agreement(same_count, gold, y) == pytest.approx(0.6)
    assert sample_agreement(gold, gold, y) == 1.0
    with pytest.raises(ValueError):
        sample_agreement(gold, gold, y[:5])


def _exhaustive_null(predicted, truth):
    """Mean accuracy over every subset of the same size marked positive (the literal definition)."""
    n, e = len(predicted), int(sum(predicted))
    accs = []
    for chosen in itertools.combinations(range(n), e):
        labels = [1 if i in chosen else 0 for i in range(n)]
        accs.append(sum(int(p == t) for p, t in zip(labels, truth, strict=True)) / n)
    return sum(accs) / len(accs)


@pytest.mark.parametrize("seed", range(6))
def test_random_subset_agreement_is_the_exhaustive_mean(seed):
    rng = np.random.default_rng(seed)
    n = 9
    predicted, truth = rng.integers(0, 2, n), rng.integers(0, 2, n)
    assert random_subset_agreement(predicted, truth) == pytest.approx(_exhaustive_null(predicted, truth))
    # κ of the predictor against the truth is its accuracy above this null, scaled
    p_o = float(np.mean(predicted == truth))
    null = random_subset_agreement(predicted, truth)
    if null < 1:
        assert cohen_kappa(predicted, truth) == pytest.approx((p_o - null) / (1 - null))


def test_evaluate_unlearning_reports_sample_agreement():
    import torch
    from torch import nn

    from oblivio.data import ImageDataset

    torch.manual_seed(0)
    x = torch.rand(30, 1, 4, 4)
    ds = ImageDataset(x, torch.arange(30) % 3, ("a", "b", "c"))
    net_u = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    net_g = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    res = evaluate_unlearning(net_u, forget=ds, retain=ds, test=ds, gold=net_g, mia=False)
    with torch.no_grad():
        lu, lg = net_u(x).numpy(), net_g(x).numpy()
    y = ds.labels.numpy()
    assert res["sample_agreement"] == pytest.approx(_literal_agreement(lu.tolist(), lg.tolist(), y.tolist()))
    assert res["sample_kappa"] == pytest.approx(cohen_kappa_score(lu.argmax(1) == y, lg.argmax(1) == y))
    assert "sample_agreement" not in evaluate_unlearning(net_u, forget=ds, retain=ds, test=ds, mia=False)
