"""NeurIPS 2023 forget quality: the fast (sorted, searchsorted) path against a literal oracle written from SPEC §8
alone (``forget_quality_oracle``, no shared helper), including the tie rules and the ceil grid, and the facts of
SPEC §8 (what a perfect unlearner and shifted distributions score)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from forget_quality_oracle import oracle_epsilon
from scipy.special import logsumexp

from oblivio.metrics import (
    epsilon_to_score,
    final_score,
    forget_quality,
    logit_scaled_confidence,
    n_bins,
    per_example_epsilon,
)
from oblivio.metrics.forget_quality import EPSILON_CAP


# ------------------------------------------------------------------------------------ logit-scaled confidence
def test_logit_scaled_confidence_matches_a_per_row_formula():
    rng = np.random.default_rng(0)
    z, y = rng.normal(scale=4, size=(30, 10)), rng.integers(0, 10, 30)
    expected = [row[t] - logsumexp(np.delete(row, t)) for row, t in zip(z, y, strict=True)]
    np.testing.assert_allclose(logit_scaled_confidence(z, y), expected, rtol=0, atol=1e-10)


def test_logit_scaled_confidence_two_classes_is_the_logit_gap_and_accepts_float32_tensors():
    z = torch.tensor([[2.5, -1.0], [0.0, 3.0], [7.0, 7.0]], dtype=torch.float32)
    got = logit_scaled_confidence(z, torch.tensor([0, 0, 1]))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, [3.5, -3.0, 0.0], atol=1e-12)


def test_logit_scaled_confidence_saturates_at_the_1e45_floor():
    got = logit_scaled_confidence(np.array([[1000.0, 0.0, 0.0], [0.0, 1000.0, 0.0]]), np.array([0, 0]))
    assert got[0] == pytest.approx(-math.log(1e-45))  # p_rest underflows to 0
    assert got[1] == pytest.approx(math.log(1e-45))  # p_y underflows to 0
    assert np.isfinite(got).all()


# ------------------------------------------------------------------------------------ fast == oracle
def _columns(n_models: int, n_columns: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Synthetic score columns: same law, shifted, widened, narrowed, and heavily tied (rounded to 1 and to 0.5)."""
    rng = np.random.default_rng(seed)
    cols = []
    for j in range(n_columns):
        kind = j % 6
        shift = rng.uniform(-2, 2)
        scale = rng.uniform(0.3, 3.0)
        u, r = rng.normal(shift, scale, n_models), rng.normal(0.0, 1.0, n_models)
        if kind == 1:
            u, r = np.round(u), np.round(r)  # ties on integers
        elif kind == 2:
            u, r = np.round(2 * u) / 2, np.round(2 * r) / 2  # ties on halves
        elif kind == 3:
            u, r = np.round(r + rng.integers(-1, 2)), np.round(rng.normal(0.0, 1.0, n_models))  # equal ranges likely
        elif kind == 4:
            u = rng.normal(0.0, 1.0, n_models) * 4.0 + 0.5  # widened
        elif kind == 5:
            u, r = np.round(rng.normal(3.0, 1.0, n_models) * 2) / 2, np.round(rng.normal(3.0, 1.0, n_models) * 2) / 2
        cols.append((u, r))
    return cols


@pytest.mark.parametrize("n_models,n_columns", [(8, 40), (16, 30), (64, 12), (512, 2)])
def test_fast_epsilon_equals_the_spec_oracle(n_models, n_columns):
    for j, (u, r) in enumerate(_columns(n_models, n_columns, seed=n_models)):
        fast, ref = per_example_epsilon(u, r), oracle_epsilon(u, r)
        assert fast == pytest.approx(ref, abs=1e-12), (n_models, j, u.tolist(), r.tolist())


def test_interval_tie_rule_starts_from_the_median_split():
    # Equal ranges (3.0 each): the rule "narrower set positive, ties u" and the organisers' "median split, swap when
    # range(positive) >= range(negative)" pick different positive sets here (found by a search; ε 0.92 vs 1.61).
    u = np.array([0.5, 0.5, -1.0, 0.5, 1.0, 2.0, -0.5, -1.0])
    r = np.array([0.0, -3.0, -0.5, -0.5, -0.5, -1.5, -0.0, -1.0])
    assert per_example_epsilon(u, r) == pytest.approx(oracle_epsilon(u, r), abs=1e-12)
    assert per_example_epsilon(r, u) == pytest.approx(oracle_epsilon(r, u), abs=1e-12)


def test_grid_has_ceil_not_round_points():
    # Spans of a few hundredths: ceil(100·s) and round(100·s) points place the thresholds differently, and here
    # only the organisers' ceil grid finds the best threshold (found by a search; ε 1.39 with round vs 0.92).
    u = np.array([-0.00139, 0.00033, -0.01425, 0.00333, -0.00651, 0.00862, -0.00126, 0.00669])
    r = np.array([0.02219, 0.01383, 0.00124, -0.00514, 0.02753, 0.00889, 0.00311, 0.01144])
    assert per_example_epsilon(u, r) == pytest.approx(oracle_epsilon(u, r), abs=1e-12)
    rng = np.random.default_rng(11)
    for _ in range(20):
        u, r = rng.normal(0.0, 0.01, 8), rng.normal(0.01, 0.01, 8)
        assert per_example_epsilon(u, r) == pytest.approx(oracle_epsilon(u, r), abs=1e-12)


def test_forget_quality_uses_the_per_example_epsilon():
    rng = np.random.default_rng(3)
    u, r = rng.normal(0.5, 1, (16, 4)), rng.normal(0, 1, (16, 4))
    res = forget_quality(u, r)
    ref = np.array([oracle_epsilon(u[:, j], r[:, j]) for j in range(4)])
    np.testing.assert_allclose(res.epsilons, ref, atol=1e-12)
    k = np.floor(ref / 0.5)
    np.testing.assert_allclose(res.scores, np.where(k >= 2 * math.ceil(math.log(15)), 0.0, 0.5**k))
    assert res.forget_quality == pytest.approx(res.scores.mean())


def test_bad_input_keeps_clear_errors():
    with pytest.raises(ValueError, match="finite"):
        per_example_epsilon(np.array([0.0, np.nan, 1.0]), np.arange(3.0))
    with pytest.raises(ValueError, match="at least 3 models"):
        forget_quality(np.zeros((2, 3)), np.ones((2, 3)))
    assert per_example_epsilon(np.full(8, 0.5), np.arange(8.0)) == EPSILON_CAP  # constant column: deterministic


# ------------------------------------------------------------------------------------ rules of §8
def test_a_deterministic_method_scores_nothing():
    rng = np.random.default_rng(4)
    r = rng.normal(size=64)
    assert per_example_epsilon(np.full(64, 1.3), r) == EPSILON_CAP  # zero range
    assert per_example_epsilon(r, np.zeros(64)) == EPSILON_CAP
    assert per_example_epsilon(np.zeros(64), np.zeros(64)) == EPSILON_CAP
    assert per_example_epsilon(r * 0.009, r) == EPSILON_CAP  # range ratio below 0.01
    res = forget_quality(np.full((64, 3), 2.0), rng.normal(size=(64, 3)))
    assert res.epsilons.tolist() == [50.0] * 3 and res.scores.tolist() == [0.0] * 3 and res.forget_quality == 0.0


def test_a_separating_threshold_gives_the_cap():
    rng = np.random.default_rng(5)
    assert per_example_epsilon(rng.normal(10, 1, 64), rng.normal(0, 1, 64)) == EPSILON_CAP


def test_number_of_bins_is_two_ceil_ln_n_minus_one():
    assert n_bins(512) == 14
    assert n_bins(64) == 2 * math.ceil(math.log(63)) == 10
    assert n_bins(1024) == 14
    with pytest.raises(ValueError):
        n_bins(2)


def test_epsilon_buckets_halve_the_score_every_half_unit():
    eps = np.array([0.0, 0.4999, 0.5, 0.99, 1.0, 3.2, 6.99, 7.0, 50.0])
    assert epsilon_to_score(eps, 512).tolist() == [1, 1, 0.5, 0.5, 0.25, 2.0**-6, 2.0**-13, 0, 0]
    assert epsilon_to_score(np.array([4.99, 5.0]), 64).tolist() == [2.0**-9, 0.0]  # 10 bins at N = 64


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="same shape"):
        forget_quality(np.zeros((8, 3)), np.zeros((8, 4)))


def test_final_score_multiplies_the_utility_ratios():
    assert final_score(0.5, 0.9, 0.9, 0.8, 0.8) == pytest.approx(0.5)
    assert final_score(0.5, [0.8, 0.7], 0.9, 0.6, [0.8, 0.8]) == pytest.approx(0.5 * 0.75 / 0.9 * 0.6 / 0.8)
    with pytest.raises(ValueError):
        final_score(0.5, 0.9, 0.0, 0.8, 0.8)


# ------------------------------------------------------------------------------------ facts of §8
# Sampling error of F: per-example H has a std of about 0.11 (identical), 0.047 (0.5σ), 0.010 (1σ), so with
# 400 examples the standard error is 0.0054, 0.0024, 0.0005. The tolerances are about 3 standard errors plus the
# rounding of the quoted facts (0.18-0.19, ≈0.075, ≈0.017). Seeds are fixed, so the tests are deterministic.
N_EXAMPLES = 400


@pytest.mark.parametrize("n_models", [64, 128, 512])
def test_a_perfect_unlearner_scores_about_0_185_not_1(n_models):
    rng = np.random.default_rng(100 + n_models)
    res = forget_quality(rng.normal(size=(n_models, N_EXAMPLES)), rng.normal(size=(n_models, N_EXAMPLES)))
    assert res.forget_quality == pytest.approx(0.185, abs=0.016)


@pytest.mark.parametrize("shift,expected,tol", [(0.5, 0.075, 0.01), (1.0, 0.017, 0.004)])
def test_a_shifted_distribution_scores_as_the_organisers_report(shift, expected, tol):
    rng = np.random.default_rng(7)
    res = forget_quality(rng.normal(size=(512, N_EXAMPLES)) + shift, rng.normal(size=(512, N_EXAMPLES)))
    assert res.forget_quality == pytest.approx(expected, abs=tol)
