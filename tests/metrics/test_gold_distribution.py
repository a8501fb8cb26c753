"""Alignment against the gold distribution (issue 23), checked on a case computed by hand and against literal per-image
loops written from SPEC §6 alone (no helper shared with :mod:`oblivio.metrics.gold_distribution`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oblivio.metrics.gold_distribution import (
    best_expected_agreement,
    delta_to_mean_gold,
    expected_agreement,
    expected_agreement_count,
    gold_distribution_metrics,
    gold_probabilities,
    gold_right_counts,
    mean_gold_output_distance,
)


def _logits_for(preds, n_classes=3, margin=20.0):
    """Logits whose argmax is ``preds`` (one-hot up to e^-20: softmax is one-hot to 2e-9)."""
    z = np.zeros((len(preds), n_classes))
    z[np.arange(len(preds)), preds] = margin
    return z


def test_hand_computed_case():
    # 5 forget images of class 0; 4 gold models. Right counts per image: 4, 3, 2, 1, 0 -> p = 1, .75, .5, .25, 0.
    labels = np.zeros(5, dtype=int)
    gold_preds = [[0, 0, 0, 0, 1], [0, 0, 0, 1, 1], [0, 0, 1, 1, 2], [0, 1, 1, 1, 2]]
    gold_logits = [_logits_for(g) for g in gold_preds]
    # the unlearned model is right on images 0, 2, 3 and wrong on 1, 4
    u_logits = _logits_for([0, 2, 0, 0, 1])
    m = gold_distribution_metrics(u_logits, gold_logits, labels)
    # by hand: E = (1 + (1 − .75) + .5 + .25 + (1 − 0)) / 5 = 3.0 / 5 = 0.6
    assert m["expected_agreement"] == pytest.approx(0.6)
    # on the n·G = 20 grid: 4 + 1 + 2 + 1 + 4 = 12 = 0.6 · 20
    assert m["expected_agreement_count"] == 12
    # E* = (1 + .75 + .5 + .75 + 1) / 5 = 0.8
    p = gold_probabilities(np.stack([np.asarray(g) == 0 for g in gold_preds]))
    assert p.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert best_expected_agreement(p) == pytest.approx(0.8)
    # mean gold accuracy on D_f = (4 + 3 + 2 + 1 + 0) / 20 = 0.5; M_u gets 3 of 5 = 0.6: δ = 0.1
    assert m["delta_mean_gold"] == pytest.approx(0.1)
    # mean gold output per image (one-hot outputs averaged): image 0 -> (1, 0, 0); M_u (1, 0, 0): distance 0.
    # image 1: gold mean (.75, .25, 0), M_u (0, 0, 1): sqrt(.5625 + .0625 + 1) = sqrt(1.625)
    # image 2: gold mean (.5, .5, 0), M_u (1, 0, 0): sqrt(.25 + .25) = sqrt(.5)
    # image 3: gold mean (.25, .75, 0), M_u (1, 0, 0): sqrt(.5625 + .5625) = sqrt(1.125)
    # image 4: gold mean (0, .5, .5), M_u (0, 1, 0): sqrt(0 + .25 + .25) = sqrt(.5)
    expect = (0 + math.sqrt(1.625) + math.sqrt(0.5) + math.sqrt(1.125) + math.sqrt(0.5)) / 5
    assert m["activation_distance_mean_gold_l2"] == pytest.approx(expect, abs=1e-6)


def _literal(correct_u, gold_correct):
    """E, E* and the grid count by one loop over images, straight from SPEC §6."""
    g, n = len(gold_correct), len(correct_u)
    e = e_best = 0.0
    count = 0
    for i in range(n):
        k = sum(1 for row in gold_correct if row[i])
        p = k / g
        e += p if correct_u[i] else 1 - p
        e_best += max(p, 1 - p)
        count += k if correct_u[i] else g - k
    return e / n, e_best / n, count


@pytest.mark.parametrize("seed", range(5))
def test_against_a_literal_loop(seed):
    rng = np.random.default_rng(seed)
    n, g = 37, int(rng.integers(1, 7))
    gold = rng.random((g, n)) < rng.random(n)  # image-dependent difficulty
    u = rng.random(n) < 0.8
    e, e_best, count = _literal(u.tolist(), gold.tolist())
    p = gold_probabilities(gold)
    assert expected_agreement(u, p) == pytest.approx(e)
    assert best_expected_agreement(p) == pytest.approx(e_best)
    assert expected_agreement_count(u, gold_right_counts(gold), g) == count
    assert count / (n * g) == pytest.approx(e)
    # E* bounds every decision, and the Bayes decision reaches it
    assert expected_agreement(u, p) <= best_expected_agreement(p) + 1e-12
    assert expected_agreement(p > 0.5, p) == pytest.approx(best_expected_agreement(p))


def test_one_gold_model_reduces_to_sample_agreement_and_delta():
    from oblivio.metrics.alignment import activation_distance, sample_agreement

    rng = np.random.default_rng(3)
    zu, zg, y = rng.normal(size=(50, 4)), rng.normal(size=(50, 4)), rng.integers(0, 4, 50)
    m = gold_distribution_metrics(zu, [zg], y)
    assert m["expected_agreement"] == pytest.approx(sample_agreement(zu, zg, y))
    acc_u, acc_g = float(np.mean(zu.argmax(1) == y)), float(np.mean(zg.argmax(1) == y))
    assert m["delta_mean_gold"] == pytest.approx(abs(acc_u - acc_g))
    assert m["activation_distance_mean_gold_l2"] == pytest.approx(activation_distance(zu, zg))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"\[G, n\]"):
        gold_probabilities(np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="one correctness value per image"):
        expected_agreement([True], [0.5, 0.5])
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        expected_agreement([True], [1.5])
    with pytest.raises(ValueError, match="right counts"):
        expected_agreement_count([True], [5], 4)
    with pytest.raises(ValueError, match="at least one"):
        delta_to_mean_gold(0.5, [])
    with pytest.raises(ValueError, match="at least one"):
        mean_gold_output_distance(np.zeros((1, 2)), [])
    assert math.isnan(expected_agreement([], []))
