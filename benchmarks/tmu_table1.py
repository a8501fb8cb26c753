"""TMU Table 1 (and Table 3): per-class accuracy, δ and activation distance against the gold model.

A thin wrapper around ``oblivio bench tmu-table1`` with the CPU preset. Extra arguments are passed through, e.g.::

    python benchmarks/tmu_table1.py --seeds 3 --workers 2
    python benchmarks/tmu_table1.py --ray-address local

Results (resumable JSONL), a markdown and a self-contained HTML report go to ``results/tmu-table1`` unless ``--out``
says otherwise; docs/benchmarks.md records them.
"""

from _bench import run

if __name__ == "__main__":
    run("tmu-table1")
