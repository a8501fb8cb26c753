"""TMU step 3: the generalisation-label MLP and its class-imbalance rule."""

from __future__ import annotations

import pytest
import torch

from oblivio.methods.tmu import train_predictor
from oblivio.methods.tmu.predictor import _rate_matching_threshold


def _toy(n, seed, easy_fraction=0.5):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=g)
    y = (x[:, 0] < easy_fraction).long()  # separable on the first feature
    return x, y


def test_learns_a_separable_problem():
    x, y = _toy(200, 0)
    pred = train_predictor(x, y, balance="none", seed=0)
    assert pred.train_accuracy >= 0.9
    xt, yt = _toy(200, 1)
    assert float((pred.predict(xt) == yt).float().mean()) >= 0.85


def test_threshold_rule_matches_the_easy_rate():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(150, 3, generator=g)
    y = ((x[:, 0] + 0.6 * torch.rand(150, generator=g)) > 0.35).long()  # mostly easy, noisy
    pred = train_predictor(x, y, balance="threshold", seed=0)
    rate = float(y.float().mean())
    assert rate > 0.75
    assert float(pred.predict(x).float().mean()) == pytest.approx(rate, abs=1 / 150 + 1e-6)


def test_class_weights_run():
    x, y = _toy(100, 3, easy_fraction=0.8)
    pred = train_predictor(x, y, balance="weights", seed=0)
    assert pred.threshold == 0.5 and 0 <= pred.train_accuracy <= 1


def test_single_class_labels_give_a_constant_predictor():
    x = torch.rand(10, 3)
    pred = train_predictor(x, torch.ones(10, dtype=torch.long))
    assert pred.constant == 1 and pred.predict(torch.rand(4, 3)).tolist() == [1, 1, 1, 1]


def test_rate_matching_threshold():
    p = torch.tensor([0.9, 0.8, 0.7, 0.2])
    assert float((p >= _rate_matching_threshold(p, 0.5)).float().mean()) == 0.5
    assert float((p >= _rate_matching_threshold(p, 1.0)).float().mean()) == 1.0
    assert float((p >= _rate_matching_threshold(p, 0.0)).float().mean()) == 0.0


def test_deterministic_and_validated():
    x, y = _toy(60, 4)
    a, b = train_predictor(x, y, seed=5), train_predictor(x, y, seed=5)
    assert torch.equal(a.predict_proba(x), b.predict_proba(x))
    with pytest.raises(ValueError, match="balance"):
        train_predictor(x, y, balance="oversample")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        train_predictor(x, y[:10])
