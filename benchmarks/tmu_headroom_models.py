"""Train (through the store) every model an issue-23 unit needs, in a given order: the original with its training
dynamics, its K-fold models, and G gold models + one held-out gold per forget request. Resumable: the store skips
finished models and resumes an interrupted one from its last epoch. One process, one thread (RULES).

Usage::

    python benchmarks/tmu_headroom_models.py --seed 50 --kfold 5 --gold-models 4 \\
        --requests "random:0.1;class-subset:6:400;class-subset:6:800"

Gold seeds: ``gold + 1000·j`` for j < G (``EvalOptions(gold_models=G)``) and the held-out gold at the ``gold``
pseudo-method's seed ``10000 + seed``; the request seed is the unit's seed (``Seeds.for_replicate``).
"""

from __future__ import annotations

import argparse
import time


def main(argv: list[str] | None = None) -> int:
    import torch

    from oblivio.experiments.grid import UNLEARN_SEED_OFFSET, gold_distribution_seeds
    from oblivio.experiments.pipeline import Experiment

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cpu")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--kfold", type=int, default=0, help="K-fold models to train (0: none)")
    p.add_argument("--gold-models", type=int, default=4)
    p.add_argument("--requests", default="", help="';'-separated forget requests")
    p.add_argument("--store", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    exp = Experiment(a.preset, store=a.store, progress=False)

    def timed(what, fn):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        print(f"{what}: {time.process_time() - c0:.1f} CPU s, {time.perf_counter() - t0:.0f} s wall", flush=True)

    timed(f"original seed {a.seed} (with dynamics)", lambda: exp.original_dynamics(seed=a.seed, recompute=True))
    if a.kfold:
        timed(f"{a.kfold}-fold models + evidence", lambda: exp.kfold_evidence(seed=a.seed, folds=a.kfold))
    for spec in filter(None, a.requests.split(";")):
        split = exp.forget_split(spec, seed=a.seed)
        for g in [*gold_distribution_seeds(a.seed, a.gold_models), UNLEARN_SEED_OFFSET + a.seed]:
            timed(f"{spec} gold seed {g}", lambda g=g, split=split: exp.gold(split, seed=g))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
