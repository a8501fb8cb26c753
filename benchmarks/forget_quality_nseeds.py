"""NeurIPS 2023 forget quality with N gold models and N runs per method (N >= 16).

A thin wrapper around ``oblivio bench forget-quality`` with the CPU preset. Extra arguments are passed through, e.g.::

    python benchmarks/forget_quality_nseeds.py --seeds 3 --workers 2
    python benchmarks/forget_quality_nseeds.py --ray-address local

Results (resumable JSONL), a markdown and a self-contained HTML report go to ``results/forget-quality`` unless ``--out``
says otherwise; docs/benchmarks.md records them.
"""

from __future__ import annotations

import shlex
import sys

from oblivio.cli import main

BENCHMARK = "forget-quality"


def command(extra: list[str]) -> list[str]:
    """The ``oblivio`` arguments this script runs (CPU preset unless ``--preset`` is given)."""
    args = ["bench", BENCHMARK]
    if "--preset" not in extra:
        args += ["--preset", "cpu"]
    if "--out" not in extra:
        args += ["--out", f"results/{BENCHMARK}"]
    return args + extra


if __name__ == "__main__":
    argv = command(sys.argv[1:])
    print("reproduce with: oblivio " + shlex.join(argv), flush=True)
    sys.exit(main(argv))
