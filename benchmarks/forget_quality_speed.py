"""Time the fast NeurIPS 2023 forget-quality ε (sorting + binary search) against the literal reference.

The reference compares every threshold (single thresholds and all 400 x 400 intervals) with every model, as the
organisers' scorer does; the fast path sorts each example's 2N scores once and counts with ``np.searchsorted``.
Both must give the same ε; the script checks that and prints the speed-up.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/forget_quality_speed.py [--models 64] [--examples 50] [--batched]

``--batched`` times the reference with the 400 left ends of each interval compared at once (the variant the
tests use) instead of one Python-level comparison per threshold.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from oblivio.metrics.forget_quality import _reference_epsilon, forget_quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=64, help="N, models per side")
    parser.add_argument("--examples", type=int, default=50, help="forget examples")
    parser.add_argument("--shift", type=float, default=0.5, help="mean shift of the unlearned scores, in σ")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batched", action="store_true", help="batch the reference's left ends (faster reference)")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    u = rng.normal(size=(args.models, args.examples)) + args.shift
    r = rng.normal(size=(args.models, args.examples))

    forget_quality(u[:, :1], r[:, :1])  # warm-up (ε table cache)
    start = time.perf_counter()
    fast = forget_quality(u, r)
    fast_s = time.perf_counter() - start

    start = time.perf_counter()
    ref = np.array([_reference_epsilon(u[:, j], r[:, j], batch_left_ends=args.batched) for j in range(args.examples)])
    ref_s = time.perf_counter() - start

    max_diff = float(np.max(np.abs(fast.epsilons - ref)))
    kind = "batched-left-ends" if args.batched else "literal"
    print(f"N = {args.models} models per side, {args.examples} examples, shift {args.shift}σ")
    print(f"fast (sort + searchsorted): {fast_s:8.3f} s  ({1e3 * fast_s / args.examples:.2f} ms / example)")
    print(f"reference ({kind}):   {ref_s:8.3f} s  ({1e3 * ref_s / args.examples:.2f} ms / example)")
    print(f"speed-up: {ref_s / fast_s:.0f}x   max |Δε| = {max_diff:.3g}   F = {fast.forget_quality:.4f}")
    if max_diff > 1e-9:
        raise SystemExit("fast and reference ε disagree")


if __name__ == "__main__":
    main()
