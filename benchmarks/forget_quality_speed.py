"""Time the fast NeurIPS 2023 forget-quality ε (sorting + binary search) against the literal SPEC §8 oracle.

The oracle (``tests/metrics/forget_quality_oracle.py``, the one the tests use, written from SPEC §8 alone) compares
every threshold (single thresholds and all interval right ends x 400 left ends) with every model, as the organisers'
scorer does; the fast path sorts each example's 2N scores once and counts with ``np.searchsorted``. Both must give
the same ε; the script checks that and prints the speed-up.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/forget_quality_speed.py [--models 64] [--examples 50] [--literal]
    OMP_NUM_THREADS=1 python benchmarks/forget_quality_speed.py --models 512 --examples 1000 --reference binary-search

``--reference binary-search`` times the previous fast path instead of the oracle (every interval left end counted
by ``np.searchsorted``: the code before issue 22's lookup table), which is fast enough for 1,000 examples at
N = 512 where the oracle is not; both must give the same ε.

``--literal`` times the oracle with one comparison pass per threshold (the organisers' loop shape) instead of the
400 left ends of an interval at once. Times are CPU seconds of this process (robust on a shared machine) with wall
seconds beside them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from oblivio.metrics.forget_quality import forget_quality

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "metrics"))
from forget_quality_oracle import oracle_epsilon  # noqa: E402  (the tests' oracle, no code shared with oblivio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=64, help="N, models per side")
    parser.add_argument("--examples", type=int, default=50, help="forget examples")
    parser.add_argument("--shift", type=float, default=0.5, help="mean shift of the unlearned scores, in σ")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--literal", action="store_true", help="one comparison pass per threshold in the oracle")
    parser.add_argument(
        "--reference", choices=("oracle", "binary-search"), default="oracle", help="what the fast path is timed against"
    )
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    u = rng.normal(size=(args.models, args.examples)) + args.shift
    r = rng.normal(size=(args.models, args.examples))

    forget_quality(u[:, :1], r[:, :1])  # warm-up (ε table cache)
    wall, cpu = time.perf_counter(), time.process_time()
    fast = forget_quality(u, r)
    fast_wall, fast_cpu = time.perf_counter() - wall, time.process_time() - cpu

    wall, cpu = time.perf_counter(), time.process_time()
    if args.reference == "binary-search":
        import importlib
        from unittest import mock

        fq = importlib.import_module("oblivio.metrics.forget_quality")
        with mock.patch.object(fq, "_interval_epsilon", fq._interval_epsilon_searchsorted):
            ref = fq.forget_quality(u, r).epsilons
    else:
        ref = np.array(
            [oracle_epsilon(u[:, j], r[:, j], batch_left_ends=not args.literal) for j in range(args.examples)]
        )
    ref_wall, ref_cpu = time.perf_counter() - wall, time.process_time() - cpu

    max_diff = float(np.max(np.abs(fast.epsilons - ref)))
    kind = "one pass per threshold" if args.literal else "left ends batched"
    if args.reference == "binary-search":
        kind = "binary search per left end: the path before the lookup table"
    print(f"N = {args.models} models per side, {args.examples} examples, shift {args.shift}σ")
    print(
        f"fast (sort + lookup table): CPU {fast_cpu:8.3f} s  wall {fast_wall:8.3f} s  "
        f"({1e3 * fast_cpu / args.examples:.2f} CPU ms / example)"
    )
    print(
        f"reference ({kind}): CPU {ref_cpu:8.3f} s  wall {ref_wall:8.3f} s  "
        f"({1e3 * ref_cpu / args.examples:.2f} CPU ms / example)"
    )
    print(f"speed-up (CPU): {ref_cpu / fast_cpu:.0f}x   max |Δε| = {max_diff:.3g}   F = {fast.forget_quality:.4f}")
    if max_diff > 1e-9:
        raise SystemExit("fast and reference ε disagree")


if __name__ == "__main__":
    main()
