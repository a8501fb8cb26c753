"""Alignment metrics against literal per-row formulas and SciPy's Jensen-Shannon distance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

from oblivio.metrics import accuracy_from_logits, activation_distance, delta, js_divergence, zrf_score


def _softmax_row(z):
    m = max(z)
    e = [math.exp(v - m) for v in z]
    s = sum(e)
    return [v / s for v in e]


@pytest.fixture()
def logits_pair():
    rng = np.random.default_rng(0)
    return rng.normal(scale=3.0, size=(50, 7)), rng.normal(scale=3.0, size=(50, 7))


def test_accuracy_from_logits_matches_a_loop_and_accepts_tensors():
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(40, 5)), rng.integers(0, 5, 40)
    expected = sum(int(np.argmax(row) == label) for row, label in zip(z, y, strict=True)) / 40
    assert accuracy_from_logits(z, y) == expected
    assert accuracy_from_logits(torch.tensor(z, dtype=torch.float32), torch.tensor(y)) == expected
    assert math.isnan(accuracy_from_logits(np.zeros((0, 3)), np.zeros(0)))
    with pytest.raises(ValueError, match="n = len"):
        accuracy_from_logits(z, y[:3])


def test_delta_is_the_absolute_gap_in_the_given_units():
    assert delta(86.9, 82.7) == pytest.approx(4.2)
    assert delta(0.5, 0.9) == pytest.approx(0.4)
    assert delta(0.9, 0.5) == delta(0.5, 0.9)


@pytest.mark.parametrize("norm,order", [("l2", 2), ("l1", 1)])
def test_activation_distance_matches_a_literal_loop(logits_pair, norm, order):
    a, b = logits_pair
    per_row = []
    for za, zb in zip(a.tolist(), b.tolist(), strict=True):
        pa, pb = _softmax_row(za), _softmax_row(zb)
        diffs = [abs(x - y) for x, y in zip(pa, pb, strict=True)]
        per_row.append(math.sqrt(sum(d * d for d in diffs)) if order == 2 else sum(diffs))
    assert activation_distance(a, b, norm=norm) == pytest.approx(sum(per_row) / len(per_row), abs=1e-12)
    assert activation_distance(torch.tensor(a), torch.tensor(b), norm=norm) == pytest.approx(
        activation_distance(a, b, norm=norm), abs=1e-12
    )


def test_activation_distance_rejects_an_unknown_norm_naming_the_valid_ones(logits_pair):
    with pytest.raises(ValueError, match="l2, l1"):
        activation_distance(*logits_pair, norm="linf")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same shape"):
        activation_distance(logits_pair[0], logits_pair[1][:3])


def test_js_divergence_matches_scipy_squared_distance(logits_pair):
    a, b = logits_pair
    expected = np.mean(
        [jensenshannon(_softmax_row(x), _softmax_row(y)) ** 2 for x, y in zip(a.tolist(), b.tolist(), strict=True)]
    )
    assert js_divergence(a, b) == pytest.approx(expected, abs=1e-12)
    assert js_divergence(a, b) == pytest.approx(js_divergence(b, a), abs=1e-15)  # symmetric


def test_js_divergence_of_disjoint_one_hots_is_ln2_even_with_exact_zeros():
    a = np.array([[1000.0, 0.0, 0.0]])  # softmax underflows to an exact one-hot
    b = np.array([[0.0, 1000.0, 0.0]])
    assert js_divergence(a, b) == pytest.approx(math.log(2), abs=1e-12)
    assert jensenshannon([1, 0, 0], [0, 1, 0]) ** 2 == pytest.approx(math.log(2))
    assert js_divergence(a, a) == 0.0


def test_zrf_is_one_minus_mean_js(logits_pair):
    a, b = logits_pair
    assert zrf_score(a, b) == pytest.approx(1.0 - js_divergence(a, b), abs=1e-15)
    assert zrf_score(a, a) == pytest.approx(1.0)
    assert zrf_score(np.array([[1000.0, 0.0]]), np.array([[0.0, 1000.0]])) == pytest.approx(1 - math.log(2))
