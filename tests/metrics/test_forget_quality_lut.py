"""The lookup-table count of the interval attacks (issue 22, speed) gives the binary-search reference's ε bit for bit,
on continuous scores, on heavily tied ones (where grid points land on scores), on narrow positive sets (empty
intervals) and at N = 512; and the per-example ε still equals the SPEC §8 oracle."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

fq = importlib.import_module("oblivio.metrics.forget_quality")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from forget_quality_oracle import oracle_epsilon  # noqa: E402


def _cases(rng, n):
    yield rng.normal(size=n) + 0.5, rng.normal(size=n)
    yield np.round(rng.normal(size=n) * 2) / 2, np.round(rng.normal(size=n) * 2) / 2  # ties on a 0.5 grid
    yield np.round(rng.normal(size=n)), np.round(rng.normal(size=n) + 0.3)  # ties on integers
    yield rng.normal(size=n) * 0.3 + 5, rng.normal(size=n) * 3  # narrow positive set: l > r happens
    yield np.round(rng.normal(size=n) * 100) / 100, np.round(rng.normal(size=n) * 100) / 100 + 0.01  # on the grid
    yield rng.standard_t(2, size=n) * 4, rng.standard_t(2, size=n) * 4 + 1  # heavy tails, wide ranges


@pytest.mark.parametrize("n", [5, 16, 64, 512])
def test_lookup_table_equals_binary_search(n):
    rng = np.random.default_rng(n)
    for _ in range(4 if n == 512 else 12):
        for u, r in _cases(rng, n):
            if fq._is_deterministic(u, r):
                continue
            pos, neg = fq._interval_sets(u, r)
            ps, ns = np.sort(pos), np.sort(neg)
            assert fq._interval_epsilon(ps, ns, 1e-5) == fq._interval_epsilon_searchsorted(ps, ns, 1e-5)


def test_per_example_epsilon_still_equals_the_oracle_on_ties():
    rng = np.random.default_rng(7)
    for u, r in _cases(rng, 24):
        assert fq.per_example_epsilon(u, r) == pytest.approx(oracle_epsilon(u, r), abs=0)


def test_sorted_median_is_numpys_median():
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 4, 511, 512):
        for x in (rng.normal(size=n), np.round(rng.normal(size=n)), rng.normal(size=n) * 1e-9 + 1e9):
            assert fq._sorted_median(np.sort(x)) == float(np.median(x))
