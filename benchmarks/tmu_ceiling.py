"""How close to gold could TMU's aligned step get with a better decision? (issue 15, a diagnostic, not a method)

TMU's per-sample result has two parts: the *decision* (which forget samples to unlearn: ``M_o``'s margin ranking
and a count transferred from the twin problem) and the *aligned step* (train the chosen ones toward ``M_o``'s
runner-up classes while keeping the rest). This script separates them on the Table 1 units by running the default
TMU's aligned step, unchanged, after two decisions that only an oracle can make, because they read the gold model:

* ``ceiling.count``: ``M_o``'s margin ranking (TMU's own score) with gold's true count of wrong answers on ``D_f``
  (isolates the count estimate: what TMU would get if the twin problem guessed the count exactly);
* ``ceiling.labels``: gold's own right / wrong answers on ``D_f`` (isolates the ranking: the best any decision rule
  could do with this aligned step).

Each writes one JSON row per (seed, forget class) with δ, sample agreement and activation distance against the
same gold model the Table 1 rows use (same store, same seeds), so the rows pair with ``tmu`` and ``finetune`` rows of
``oblivio bench tmu-table1``. Resumable: a rerun skips finished keys.

Usage::

    python benchmarks/tmu_ceiling.py --seed 200 --replicates 3 --store STORE --out results/tmu-ceiling.jsonl
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from pathlib import Path

CEILINGS = ("ceiling.count", "ceiling.labels")


def oracle_decision(kind: str, *, margins, gold_right):
    """Easy (1) / hard (0) labels for ``D_f`` under an oracle ``kind`` (see the module docstring)."""
    import torch

    gold_right = torch.as_tensor(gold_right).long()
    if kind == "ceiling.labels":
        return gold_right.clone()
    if kind == "ceiling.count":  # TMU's ranking, gold's count: the k lowest margins are hard
        k = int((gold_right == 0).sum())
        out = torch.ones_like(gold_right)
        out[torch.argsort(torch.as_tensor(margins), stable=True)[:k]] = 0
        return out
    raise ValueError(f"unknown ceiling {kind!r}; expected one of {CEILINGS}")


def run(
    out: Path,
    *,
    classes: list[int],
    base: int,
    replicates: int,
    count: int,
    train_size: int,
    store: str | None,
    preset: str,
) -> None:
    import torch

    from oblivio.experiments.config import get_preset
    from oblivio.experiments.grid import Seeds
    from oblivio.experiments.pipeline import Experiment
    from oblivio.experiments.rows import append_row, read_results
    from oblivio.methods import create_method
    from oblivio.methods.tmu.aligned import true_class_margin
    from oblivio.metrics.report import evaluate_unlearning
    from oblivio.training.evaluate import predict_logits

    done = {r["key"] for r in read_results(out, only_ok=False)}
    torch.set_num_threads(1)
    config = dataclasses.replace(get_preset(preset), train_size=train_size, seed=base)
    exp = Experiment(config, store=store, progress=False)
    for i in range(replicates):
        s = Seeds.for_replicate(i, base=base)
        original = exp.original(seed=s.train)
        for k in classes:
            scenario = f"class-subset:{k}:{count}"
            split = exp.forget_split(scenario, seed=s.request)
            splits = exp.unlearning_splits(split)
            gold = exp.gold(split, seed=s.gold)
            gold_right = (predict_logits(gold, splits.forget).argmax(1) == splits.forget.labels).long()
            margins = true_class_margin(predict_logits(original, splits.forget), splits.forget.labels)
            for kind in CEILINGS:
                key = f"{s.train}:{k}:{count}:{train_size}:{kind}"
                if key in done:
                    continue
                method = create_method("tmu")  # its aligned step and settings, unchanged
                method.info = {}
                predicted = oracle_decision(kind, margins=margins, gold_right=gold_right)
                t0 = time.process_time()
                model = method.aligned_unlearn(
                    copy.deepcopy(original),
                    forget=splits.forget,
                    retain=splits.retain,
                    predicted=predicted,
                    seed=s.unlearn,
                )
                cpu = time.process_time() - t0
                m = evaluate_unlearning(
                    model,
                    forget=splits.forget,
                    retain=splits.retain,
                    test=splits.test,
                    gold=gold,
                    mia=False,
                    seed=s.eval,
                )
                row = {
                    "key": key,
                    "method": kind,
                    "scenario": scenario,
                    "seeds": s.as_dict(),
                    "forget_class": k,
                    "count": count,
                    "train_size": train_size,
                    "cpu_seconds": cpu,
                    "predicted_hard": int((predicted == 0).sum()),
                    "gold_hard": int((gold_right == 0).sum()),
                    "decision_label_accuracy": float((predicted == gold_right).double().mean()),
                    "metrics": {
                        x: float(m[x])
                        for x in (
                            "delta_forget",
                            "sample_agreement",
                            "activation_distance_l2",
                            "acc_test",
                            "acc_retain",
                            "acc_forget",
                            "gold_acc_test",
                            "gold_acc_retain",
                            "gold_acc_forget",
                        )
                        if x in m
                    },
                }
                append_row(out, row)  # one fsynced line per row: a killed run loses at most the cell it was on
                mm = row["metrics"]
                print(
                    f"seed {s.train} class {k} {kind:15s} hard {row['predicted_hard']:3d} (gold {row['gold_hard']:3d}) "
                    f"δ {100 * mm['delta_forget']:5.1f} agree {100 * mm['sample_agreement']:5.1f} "
                    f"act {mm['activation_distance_l2']:.3f} cpu {cpu:.1f}s",
                    flush=True,
                )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/tmu-ceiling.jsonl")
    p.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    p.add_argument("--seed", type=int, default=200, help="base seed of the Table 1 run to pair with")
    p.add_argument("--replicates", type=int, default=3)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--train-size", type=int, default=20000)
    p.add_argument("--preset", default="cpu")
    p.add_argument("--store", default=None)
    a = p.parse_args(argv)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    run(
        out,
        classes=[int(c) for c in a.classes.split(",")],
        base=a.seed,
        replicates=a.replicates,
        count=a.count,
        train_size=a.train_size,
        store=a.store,
        preset=a.preset,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
