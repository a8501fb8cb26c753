"""U-LiRA against SciPy's normal log-density and a brute-force threshold search."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from oblivio.metrics import best_balanced_accuracy, ulira, ulira_accuracy, ulira_log_likelihood_ratio


def test_log_likelihood_ratio_matches_scipy():
    rng = np.random.default_rng(0)
    s_in, s_out = rng.normal(1, 2, (12, 5)), rng.normal(-1, 0.5, (9, 5))
    x = rng.normal(size=(3, 5))
    expected = norm.logpdf(x, s_in.mean(0), s_in.std(0)) - norm.logpdf(x, s_out.mean(0), s_out.std(0))
    np.testing.assert_allclose(ulira_log_likelihood_ratio(s_in, s_out, x), expected, atol=1e-10)


def test_missing_shadow_scores_are_ignored():
    rng = np.random.default_rng(1)
    s_in, s_out, x = rng.normal(size=(10, 3)), rng.normal(size=(10, 3)), rng.normal(size=(2, 3))
    with_nan = np.vstack([s_in, np.full((1, 3), np.nan)])
    np.testing.assert_allclose(
        ulira_log_likelihood_ratio(with_nan, s_out, x), ulira_log_likelihood_ratio(s_in, s_out, x)
    )
    with pytest.raises(ValueError, match="at least one"):
        ulira_log_likelihood_ratio(np.full((3, 3), np.nan), s_out, x)


def test_best_balanced_accuracy_matches_brute_force():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 300).astype(bool)
    scores = np.round(rng.normal(size=300) + labels, 1)
    brute = max(
        0.5 * ((scores[labels] >= t).mean() + (scores[~labels] < t).mean()) for t in np.r_[np.unique(scores), np.inf]
    )
    assert best_balanced_accuracy(scores, labels) == pytest.approx(brute, abs=1e-12)


def test_identical_in_and_out_distributions_are_indistinguishable():
    rng = np.random.default_rng(3)
    res = ulira(rng.normal(size=(60, 100)), rng.normal(size=(60, 100)), n_target_models=20, seed=0)
    assert res.n_in == res.n_out == 2000
    assert 0.5 <= res.accuracy < 0.54  # the max over thresholds is biased a little above 0.5
    assert abs(res.auc - 0.5) < 0.03


def test_separated_distributions_are_recognised():
    rng = np.random.default_rng(4)
    res = ulira(rng.normal(2.5, 1, (40, 50)), rng.normal(0, 1, (40, 50)), n_target_models=10, seed=1)
    assert res.accuracy > 0.85 and res.auc > 0.9
    wide = ulira(rng.normal(5, 1, (40, 50)), rng.normal(0, 1, (40, 50)), n_target_models=10, fix_variance=True)
    assert wide.accuracy > 0.98


def test_per_model_flags_and_validation():
    rng = np.random.default_rng(5)
    s_in, s_out = rng.normal(3, 1, (20, 6)), rng.normal(0, 1, (20, 6))
    targets = np.vstack([rng.normal(3, 1, (4, 6)), rng.normal(0, 1, (4, 6))])
    flags = np.r_[np.ones(4), np.zeros(4)]
    a = ulira_accuracy(s_in, s_out, targets, flags)
    b = ulira_accuracy(s_in, s_out, targets, np.repeat(flags[:, None], 6, axis=1))
    assert a == b and a.n_in == a.n_out == 24
    with pytest.raises(ValueError, match="n_target_models"):
        ulira(s_in, s_out, n_target_models=20)
