"""Two-stage retraining, Tables 2-5: retrained vs scratch accuracy, saving point, TTA min/max mislabel,
neutralisation epochs.

A thin wrapper around ``oblivio bench two-stage`` with the CPU preset. Extra arguments are passed through, e.g.::

    python benchmarks/two_stage_tables.py --seeds 3 --workers 2
    python benchmarks/two_stage_tables.py --ray-address local

Results (resumable JSONL), a markdown and a self-contained HTML report go to ``results/two-stage`` unless ``--out``
says otherwise; docs/benchmarks.md records them.
"""

from _bench import run

if __name__ == "__main__":
    run("two-stage")
