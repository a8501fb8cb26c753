"""NeurIPS 2023 forget quality with N gold models and N runs per method (N >= 16).

A thin wrapper around ``oblivio bench forget-quality`` with the CPU preset. Extra arguments are passed through, e.g.::

    python benchmarks/forget_quality_nseeds.py --seeds 3 --workers 2
    python benchmarks/forget_quality_nseeds.py --ray-address local

Results (resumable JSONL), a markdown and a self-contained HTML report go to ``results/forget-quality`` unless ``--out``
says otherwise; docs/benchmarks.md records them.
"""

from _bench import run

if __name__ == "__main__":
    run("forget-quality")
