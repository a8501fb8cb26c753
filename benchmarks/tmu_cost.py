"""TMU's per-request cost against retraining (issue 10): ``oblivio bench tmu-cost`` plus the before/after comparison.

Runs :func:`oblivio.experiments.tmu_cost.run_tmu_cost` on the CPU preset (classes 0, 1, 2; ``class-subset:k:100``):
gold's retraining timed in the same run, a cold and a warm TMU request per class with per-stage CPU seconds and
sample-passes, δ and sample agreement against gold beside the gold-vs-gold spread, and twin reuse across two
child model versions. With ``--before ROWS.json`` (from ``benchmarks/tmu_cost_before.py`` run on an older commit)
the alignment table compares the same requests and seeds before and after.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/tmu_cost.py --threads 1 --before /tmp/before.json \\
        --json docs/results/tmu-cost.json --out results/tmu-cost
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys

import torch

from oblivio.experiments.tmu_cost import run_tmu_cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--classes", default="0,1,2", help="forget classes (comma-separated)")
    parser.add_argument("--count", type=int, default=100, help="images per request")
    parser.add_argument("--versions", type=int, default=2, help="child versions for the twin-reuse measurement")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--before", help="rows of benchmarks/tmu_cost_before.py for the before/after comparison")
    parser.add_argument("--json", help="also write the result JSON here (docs/results/tmu-cost.json)")
    parser.add_argument("--store", help="checkpoint store (default: the usual one)")
    parser.add_argument("--out", default="results/tmu-cost")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("oblivio.store").setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python benchmarks/tmu_cost.py " + shlex.join(sys.argv[1:])
    print(f"reproduce with: {command}", flush=True)
    result = run_tmu_cost(
        args.preset,
        out=args.out,
        classes=[int(c) for c in args.classes.split(",")],
        count=args.count,
        versions=args.versions,
        store=args.store,
        before=args.before,
        json_path=args.json,
        command=command,
    )
    for table in result["tables"]:
        print(f"\n{table.to_text()}")


if __name__ == "__main__":
    main()
