"""The "before" side of ``benchmarks/tmu_cost.py``: TMU's per-sample results and CPU seconds on the same requests.

Uses only the public API that every commit has (``Experiment``, ``create_method("tmu")``), so it runs on an older
checkout: extract it and put its ``src`` first on the path.

Usage:
    git archive 4a64646 src | tar -x -C /tmp/tmu-before
    PYTHONPATH=/tmp/tmu-before/src OMP_NUM_THREADS=1 python benchmarks/tmu_cost_before.py /tmp/before.json
"""

from __future__ import annotations

import json
import sys
import time

import torch

from oblivio.experiments import Experiment
from oblivio.methods import create_method
from oblivio.training.evaluate import predict_logits

UNLEARN_SEED = 10_000  # as in oblivio.experiments.tmu_cost


def main() -> None:
    torch.set_num_threads(1)
    exp = Experiment("cpu", progress=False, device="cpu")
    original = exp.original()
    rows = []
    for k in (0, 1, 2):
        splits = exp.unlearning_splits(f"class-subset:{k}:100", seed=0)
        tmu = create_method("tmu")
        wall, cpu = time.perf_counter(), time.process_time()
        model = tmu(
            original,
            forget=splits.forget,
            retain=splits.retain,
            holdout=splits.holdout,
            seed=UNLEARN_SEED,
            progress=False,
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        correct = (predict_logits(model, splits.forget).argmax(1) == splits.forget.labels).long().tolist()
        acc_test = float((predict_logits(model, splits.test).argmax(1) == splits.test.labels).float().mean())
        row = {
            "cls": k,
            "wall": wall,
            "cpu": cpu,
            "correct": correct,
            "acc_test": acc_test,
            **{
                key: tmu.info.get(key)
                for key in ("twin_epochs", "unlearn_epochs", "predicted_easy", "predicted_hard", "twin_size", "n_twins")
            },
        }
        print(json.dumps({key: v for key, v in row.items() if key != "correct"}), flush=True)
        rows.append(row)
    with open(sys.argv[1], "w") as fh:
        json.dump(rows, fh)


if __name__ == "__main__":
    main()
