"""Time the fast NeurIPS 2023 forget-quality ε (sort + branch-and-bound search) against a reference.

The default reference is the literal SPEC §8 oracle (``tests/metrics/forget_quality_oracle.py``, the one the tests
use, written from SPEC §8 alone): it compares every threshold (single thresholds and all interval right ends x 400
left ends) with every model, as the organisers' scorer does. The fast path sorts each example's 2N scores once and
searches the attacks for the largest ε, counting only those an exact bound cannot rule out
(``oblivio.metrics._attack_search``). Both must give the same ε; the script checks that and prints the speed-up.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/forget_quality_speed.py [--models 64] [--examples 50] [--literal]
    OMP_NUM_THREADS=1 python benchmarks/forget_quality_speed.py --models 512 --examples 1000 --reference binary-search \
        --repeat 5

``--reference binary-search`` times the path before issue 22's speed work instead of the oracle (every attack counted
by ``np.searchsorted``: ``_epsilon_reference``), which is fast enough for 1,000 examples at N = 512 where the oracle
is not; the ε must be identical (max |Δε| = 0).

``--literal`` times the oracle with one comparison pass per threshold (the organisers' loop shape) instead of the
400 left ends of an interval at once. ``--repeat K`` times the fast path K times (min and median: the machine is
shared). ``--save-eps`` / ``--compare-eps`` write / check the fast path's ε (``.npy``), e.g. against an older
commit's. Times are CPU seconds of this process (robust on a shared machine) with wall seconds beside them.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "metrics"))
from forget_quality_oracle import oracle_epsilon  # noqa: E402  (the tests' oracle, no code shared with oblivio)

fq = importlib.import_module("oblivio.metrics.forget_quality")


def _binary_search_epsilons(u: np.ndarray, r: np.ndarray) -> np.ndarray:
    """ε of every column by ``_epsilon_reference`` (every attack counted by binary search)."""
    eps = []
    for j in range(u.shape[1]):
        uj, rj = u[:, j], r[:, j]
        det = fq._is_deterministic(uj, rj)
        eps.append(fq.EPSILON_CAP if det else fq._epsilon_reference(np.sort(uj), np.sort(rj), fq.DEFAULT_DELTA))
    return np.array(eps)


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
    parser.add_argument("--repeat", type=int, default=1, help="time the fast path this many times")
    parser.add_argument("--save-eps", type=Path, help="write the fast path's ε to this .npy file")
    parser.add_argument("--compare-eps", type=Path, help="check the fast path's ε against this .npy file")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    u = rng.normal(size=(args.models, args.examples)) + args.shift
    r = rng.normal(size=(args.models, args.examples))

    fq.forget_quality(u[:, :1], r[:, :1])  # warm-up (ε and bound table caches)
    cpu_times, wall_times = [], []
    for _ in range(args.repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fast = fq.forget_quality(u, r)
        wall_times.append(time.perf_counter() - wall)
        cpu_times.append(time.process_time() - cpu)
    fast_cpu, fast_wall = min(cpu_times), min(wall_times)

    wall, cpu = time.perf_counter(), time.process_time()
    if args.reference == "binary-search":
        ref = _binary_search_epsilons(u, r)
    else:
        ref = np.array(
            [oracle_epsilon(u[:, j], r[:, j], batch_left_ends=not args.literal) for j in range(args.examples)]
        )
    ref_wall, ref_cpu = time.perf_counter() - wall, time.process_time() - cpu

    max_diff = float(np.max(np.abs(fast.epsilons - ref)))
    kind = "one pass per threshold" if args.literal else "left ends batched"
    if args.reference == "binary-search":
        kind = "binary search per attack: the path before issue 22's speed work"
    print(f"N = {args.models} models per side, {args.examples} examples, shift {args.shift}σ")
    if args.repeat > 1:
        print(
            f"fast, {args.repeat} runs: CPU s " + " ".join(f"{t:.3f}" for t in cpu_times) + f"  (min {fast_cpu:.3f}, "
            f"median {statistics.median(cpu_times):.3f}; wall min {fast_wall:.3f}, median "
            f"{statistics.median(wall_times):.3f})"
        )
    print(
        f"fast (sort + branch-and-bound search): CPU {fast_cpu:8.3f} s  wall {fast_wall:8.3f} s  "
        f"({1e3 * fast_cpu / args.examples:.2f} CPU ms / example)"
    )
    print(
        f"reference ({kind}): CPU {ref_cpu:8.3f} s  wall {ref_wall:8.3f} s  "
        f"({1e3 * ref_cpu / args.examples:.2f} CPU ms / example)"
    )
    print(f"speed-up (CPU): {ref_cpu / fast_cpu:.0f}x   max |Δε| = {max_diff:.3g}   F = {fast.forget_quality:.4f}")
    if args.save_eps:
        np.save(args.save_eps, fast.epsilons)
    if args.compare_eps:
        other = np.load(args.compare_eps)
        print(f"against {args.compare_eps}: max |Δε| = {float(np.max(np.abs(fast.epsilons - other))):.3g}")
        if not np.array_equal(fast.epsilons, other):
            raise SystemExit("ε differ from the saved ones")
    if max_diff > 1e-9:
        raise SystemExit("fast and reference ε disagree")


if __name__ == "__main__":
    main()
