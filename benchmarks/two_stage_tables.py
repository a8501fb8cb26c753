"""Two-stage retraining, Tables 2-5: retrained vs scratch accuracy, saving point, TTA min/max mislabel, neutralisation epochs.

A thin wrapper around ``oblivio bench two-stage`` with the CPU preset. Extra arguments are passed through, e.g.::

    python benchmarks/two_stage_tables.py --seeds 3 --workers 2
    python benchmarks/two_stage_tables.py --ray-address local

Results (resumable JSONL), a markdown and a self-contained HTML report go to ``results/two-stage`` unless ``--out``
says otherwise; docs/benchmarks.md records them.
"""

from __future__ import annotations

import shlex
import sys

from oblivio.cli import main

BENCHMARK = "two-stage"


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
