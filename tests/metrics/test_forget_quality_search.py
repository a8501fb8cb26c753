"""The branch-and-bound search of the per-example ε (issue 22, speed) gives the ε of the binary-search reference
bit for bit: on continuous, tied, on-grid and narrow-positive-set scores, N from 2 to 512, one example or a batch;
its bound table is the exact quadrant maximum of the ε table; skipping stretches whose bound ties the best ε never
changes the result (while a bound one ulp too low does: the tests can fail); and the per-example ε still equals the
SPEC §8 oracle. The reference (``_epsilon_reference``: every attack counted by ``np.searchsorted``) is the path the
issue started from; the oracle (``forget_quality_oracle``) shares no code with either."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

fq = importlib.import_module("oblivio.metrics.forget_quality")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from forget_quality_oracle import oracle_epsilon  # noqa: E402

DELTA = 1e-5
EXACT_BOUND = fq._epsilon_bound_table_flat


def _cases(rng, n):
    yield rng.normal(size=n) + 0.5, rng.normal(size=n)
    yield np.round(rng.normal(size=n) * 2) / 2, np.round(rng.normal(size=n) * 2) / 2  # ties on a 0.5 grid
    yield np.round(rng.normal(size=n)), np.round(rng.normal(size=n) + 0.3)  # ties on integers
    yield rng.normal(size=n) * 0.3 + 5, rng.normal(size=n) * 3  # narrow positive set: l > r happens
    yield np.round(rng.normal(size=n) * 100) / 100, np.round(rng.normal(size=n) * 100) / 100 + 0.01  # on the grid
    yield rng.standard_t(2, size=n) * 4, rng.standard_t(2, size=n) * 4 + 1  # heavy tails, wide ranges
    x = rng.normal(size=n)
    yield x + 0.25, x.copy()  # one set a shifted copy of the other: ties across the sets at every grid step


def _batch(n, reps, seed):
    """Sorted ``[n_examples, n]`` score sets of the non-deterministic cases."""
    rng = np.random.default_rng(seed)
    us, rs = [], []
    for _ in range(reps):
        for u, r in _cases(rng, n):
            if not fq._is_deterministic(u, r):
                us.append(np.sort(u))
                rs.append(np.sort(r))
    return np.array(us), np.array(rs)


def _reference(us, rs):
    return np.array([fq._epsilon_reference(u, r, DELTA) for u, r in zip(us, rs, strict=True)])


@pytest.mark.parametrize("n,reps", [(2, 12), (3, 12), (5, 10), (16, 8), (64, 5), (512, 2)])
def test_search_equals_the_binary_search_reference_bit_for_bit(n, reps):
    us, rs = _batch(n, reps, seed=n)
    ref = _reference(us, rs)
    assert np.array_equal(fq._epsilons_of_sorted(us, rs, DELTA), ref)  # one batch
    one = [fq._epsilons_of_sorted(u[None], r[None], DELTA)[0] for u, r in zip(us[:6], rs[:6], strict=True)]
    assert np.array_equal(one, ref[:6])  # one example at a time


def test_pruning_never_changes_epsilon_and_without_it_every_attack_is_counted_once():
    for n in (5, 16, 64):
        us, rs = _batch(n, 2, seed=100 + n)
        ref = _reference(us, rs)
        full, pruned = {}, {}
        assert np.array_equal(fq._epsilons_of_sorted(us, rs, DELTA, prune=False, stats=full), ref)
        assert np.array_equal(fq._epsilons_of_sorted(us, rs, DELTA, stats=pruned), ref)
        attacks = 0  # counted from the reference's own grids
        for u, r in zip(us, rs, strict=True):
            lo, hi = min(u[0], r[0]), max(u[-1], r[-1])
            n_single = fq._n_grid_points(hi - lo)
            rights, lefts = fq._interval_grids(fq._interval_sets(u, r)[0])
            attacks += n_single + (n_single == 1) + lefts.size  # a one-point row is counted at both its ends
        assert full["visited"] == attacks
        assert pruned["visited"] < attacks / 5


@pytest.mark.parametrize("n_pos,n_neg", [(1, 1), (3, 5), (8, 8), (40, 33)])
def test_bound_table_is_the_quadrant_maximum_of_the_epsilon_table(n_pos, n_neg):
    table = fq._epsilon_table(n_pos, n_neg, DELTA)
    bound = fq._epsilon_bound_table_flat(n_pos, n_neg, DELTA).reshape(n_pos + 1, n_neg + 1)
    for tp in range(n_pos + 1):
        for fp in range(n_neg + 1):
            quadrant = [table[a, b] for a in range(tp + 1) for b in range(fp, n_neg + 1)]
            assert bound[tp, fp] == max(quadrant)


def test_ties_at_the_bound_are_skipped_without_changing_epsilon():
    # Tied scores make many stretches' bounds equal the best ε found so far; they are skipped (they cannot raise
    # the maximum). The test is about that case, so it checks that it happens.
    us, rs = _batch(64, 6, seed=5)
    stats = {}
    assert np.array_equal(fq._epsilons_of_sorted(us, rs, DELTA, stats=stats), _reference(us, rs))
    assert stats["ties_at_bound"] > 0


def test_the_tightest_legal_bound_keeps_epsilon(monkeypatch):
    # Adversarial ties: the bound table clipped to the example's true ε is still a valid bound (no attack exceeds
    # it), and once that ε is found it ties the best everywhere, so the search skips as much as any bound can.
    us, rs = _batch(16, 3, seed=9)
    ref = _reference(us, rs)
    exact = EXACT_BOUND
    clipped = 0
    for u, r, eps in zip(us, rs, ref, strict=True):
        monkeypatch.setattr(fq, "_epsilon_bound_table_flat", lambda *a, c=eps: np.minimum(exact(*a), c))
        stats = {}
        assert fq._epsilons_of_sorted(u[None], r[None], DELTA, stats=stats)[0] == eps
        clipped += stats["ties_at_bound"] > 0
    assert clipped > len(ref) / 2


def _off_by_one(n_pos, n_neg, delta):  # bound[tp(a) - 1, fp(b)]: one true positive fewer than a stretch can flag
    bound = EXACT_BOUND(n_pos, n_neg, delta).reshape(n_pos + 1, n_neg + 1)
    return np.vstack([bound[:1], bound[:-1]]).reshape(-1)


def _corner_only(n_pos, n_neg, delta):  # ε at the corner (tp(a), fp(b)) instead of the quadrant's maximum
    return fq._epsilon_table(n_pos, n_neg, delta).reshape(-1)


@pytest.mark.parametrize("wrong", [_off_by_one, _corner_only])
def test_a_wrong_bound_loses_epsilon_so_these_tests_can_fail(monkeypatch, wrong):
    us, rs = _batch(16, 6, seed=16)
    ref = _reference(us, rs)
    monkeypatch.setattr(fq, "_epsilon_bound_table_flat", wrong)
    got = fq._epsilons_of_sorted(us, rs, DELTA)
    assert (got <= ref).all() and (got < ref).sum() >= 3


def test_grid_point_is_numpys_linspace_point():
    rng = np.random.default_rng(12)
    search = importlib.import_module("oblivio.metrics._attack_search")
    for num in (1, 2, 3, 400, 401, 977):
        start = rng.normal(size=num) * 10.0 ** rng.integers(-2, 3, num)
        stop = start + np.abs(rng.normal(size=num)) * 4
        j = rng.integers(0, num, num)
        j[0], j[-1] = 0, num - 1
        step = (stop - start) / max(num - 1, 1)
        expected = [np.linspace(a, b, num)[k] for a, b, k in zip(start, stop, j, strict=True)]
        assert search.grid_point(j, start, step, stop, np.full(num, num - 1)).tolist() == expected


def test_left_end_guard():
    # grids 0, 0.5, 1 | 0, 1.2, 1 (the last point falls) | a negative step | a one-point grid
    start, stop = np.array([0.0, 0.0, 0.0, 5.0]), np.array([1.0, 1.0, 1.0, 5.0])
    step, last = np.array([0.5, 1.2, -0.1, 0.0]), np.array([2, 2, 2, 0])
    assert fq.left_ends_never_decrease(start, step, stop, last).tolist() == [True, False, False, True]


def test_examples_failing_the_guard_are_left_to_the_reference(monkeypatch):
    # No real score fails the guard (the last left end never falls below the one before it; see its docstring), so
    # the fallback is forced: every example then goes to the binary-search reference.
    us, rs = _batch(16, 2, seed=3)
    monkeypatch.setattr(fq, "left_ends_never_decrease", lambda start, step, stop, last: np.zeros(last.size, bool))
    stats = {}
    assert np.array_equal(fq._epsilons_of_sorted(us, rs, DELTA, stats=stats), _reference(us, rs))
    assert stats["guarded"] == len(us)


def test_forget_quality_in_chunks_equals_one_example_at_a_time(monkeypatch):
    monkeypatch.setattr(fq, "CHUNK_EXAMPLES", 3)
    rng = np.random.default_rng(4)
    u, r = rng.normal(size=(32, 11)) + 0.3, rng.normal(size=(32, 11))
    u[:, 4] = 1.5  # deterministic column
    u[:, 7] = np.round(u[:, 7])
    r[:, 7] = np.round(r[:, 7])
    expected = [fq._epsilon_reference(np.sort(u[:, j]), np.sort(r[:, j]), DELTA) for j in range(11)]
    expected[4] = fq.EPSILON_CAP
    assert fq.forget_quality(u, r).epsilons.tolist() == expected


def test_per_example_epsilon_still_equals_the_oracle_on_ties():
    rng = np.random.default_rng(7)
    for u, r in _cases(rng, 24):
        assert fq.per_example_epsilon(u, r) == pytest.approx(oracle_epsilon(u, r), abs=0)


@pytest.mark.parametrize("n_u,n_r", [(2, 2), (7, 9), (12, 5)])
def test_small_and_unequal_sets_equal_the_oracle(n_u, n_r):
    rng = np.random.default_rng(n_u * 10 + n_r)
    for _ in range(4):
        u, r = np.round(rng.normal(size=n_u) * 2) / 2 + 0.3, rng.normal(size=n_r)
        assert fq.per_example_epsilon(u, r) == pytest.approx(oracle_epsilon(u, r), abs=0)


def test_sorted_median_is_numpys_median():
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 4, 511, 512):
        for x in (rng.normal(size=n), np.round(rng.normal(size=n)), rng.normal(size=n) * 1e-9 + 1e9):
            assert fq._sorted_median(np.sort(x)) == float(np.median(x))
            rows = np.sort(np.stack([x, x[::-1] * 2, x + 1]), axis=1)
            assert fq._sorted_medians(rows).tolist() == [float(np.median(row)) for row in rows]


def test_ragged_linspace_is_numpys_linspace():
    rng = np.random.default_rng(8)
    start = rng.normal(size=60) * 10.0 ** rng.integers(-3, 4, 60)
    stop = start + np.abs(rng.normal(size=60)) * 10.0 ** rng.integers(-4, 3, 60)  # spans from ~1e-4: one point
    num = fq._n_grid_points_array(stop - start)
    assert (num == 1).any() and (num > 1000).any()
    values, owner = fq.ragged_linspace(start, stop, num)
    for i in range(60):
        assert np.array_equal(values[owner == i], np.linspace(start[i], stop[i], num[i]))
        assert num[i] == fq._n_grid_points(stop[i] - start[i])
