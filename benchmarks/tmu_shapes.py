"""Worst case over request shapes (issue 23 item 7): every method on requests from 2% to 80% of a class, a random
request, each against G gold models, with the mean and the worst case per method.

The shapes are where TMU's twin estimate is known not to transfer (a request that removes most of a class). The
ledger's default method (``request apply``: ``tmu.guarded``, TMU whose guard falls back to fine-tune on such shapes)
must never be the worst method on any of them; ``tmu`` (no guard, the issue-15 default) shows what the guard
prevents.

Usage::

    python benchmarks/tmu_shapes.py run --preset tiny --seeds 0,1,2 --out results/shapes-tiny.jsonl
    python benchmarks/tmu_shapes.py summary results/shapes-tiny.jsonl
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

METHODS = (
    "tmu.guarded",
    "tmu",
    "tmu.paper",
    "tmu.random-control",
    "finetune",
    "finetune.1ep",
    "neggrad",
    "neggrad+",
    "random-label",
    "bad-teacher",
    "scrub",
    "salun",
    "gold",
)
DEFAULT = "tmu.guarded"
"""The ledger's default method (oblivio.ledger.service.DEFAULT_METHOD)."""
SHARES = (0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.75, 0.8)


def scenarios(preset: str, cls: int) -> list[str]:
    """``class-subset:cls:n`` for each share of the class (rounded, at least 2 images) and ``random:0.1``."""
    from oblivio.experiments.pipeline import Experiment

    exp = Experiment(preset, progress=False)
    n_cls = int((exp.data.train.labels == cls).sum())
    counts = sorted({max(2, round(s * n_cls)) for s in SHARES})
    return [f"class-subset:{cls}:{n}" for n in counts] + ["random:0.1"]


def cmd_run(a) -> None:
    from oblivio.experiments.grid import EvalOptions, Grid
    from oblivio.experiments.runner import Runner

    grid = Grid(
        scenarios=scenarios(a.preset, a.cls) if not a.scenarios else a.scenarios.split(";"),
        methods=list(METHODS),
        seeds=[int(s) for s in a.seeds.split(",")],
        options=EvalOptions(mia=False, zrf=False, gold_models=a.gold_models),
    )
    Runner(a.preset, results=a.out, store=a.store, tags={"benchmark": "tmu-shapes"}, threads_per_worker=1).run(grid)


def summary(rows: list[dict]) -> str:
    """Per method: mean and worst (max) δ to the mean gold, mean and worst (min) E, over every (shape, seed) unit; and
    per shape, which method is worst on δ to the mean gold (mean over seeds)."""
    from oblivio.experiments.stats import original_rows

    rows = [r for r in rows if r.get("status", "ok") == "ok"]
    every = rows + original_rows(rows)
    by_method: dict[str, list[dict]] = defaultdict(list)
    for r in every:
        by_method[r["method"]].append(r)
    lines = [
        "| method | units | δ to mean gold: mean | worst (shape) | E: mean | worst (shape) |",
        "|---|---|---|---|---|---|",
    ]
    for m, rs in by_method.items():
        d = [
            (100 * r["metrics"]["delta_mean_gold"], r["scenario"])
            for r in rs
            if r["metrics"].get("delta_mean_gold") is not None
        ]
        e = [
            (100 * r["metrics"]["expected_agreement"], r["scenario"])
            for r in rs
            if r["metrics"].get("expected_agreement") is not None
        ]
        if not d:
            continue
        dw, ew = max(d), min(e)
        lines.append(
            f"| {m} | {len(d)} | {sum(x for x, _ in d) / len(d):.1f} | {dw[0]:.1f} ({dw[1]}) | "
            f"{sum(x for x, _ in e) / len(e):.1f} | {ew[0]:.1f} ({ew[1]}) |"
        )
    lines += [
        "",
        "| shape | worst method on δ to mean gold (mean over seeds) | its δ | ledger default (tmu.guarded) δ "
        "| its rank (1 = worst) |",
        "|---|---|---|---|---|",
    ]
    shapes = list(dict.fromkeys(r["scenario"] for r in rows))
    for sc in shapes:
        means = {}
        for m, rs in by_method.items():
            if m == "gold":
                continue
            v = [r["metrics"].get("delta_mean_gold") for r in rs if r["scenario"] == sc]
            v = [x for x in v if x is not None]
            if v:
                means[m] = 100 * sum(v) / len(v)
        order = sorted(means, key=lambda k: -means[k])
        worst = order[0]
        rank = order.index(DEFAULT) + 1 if DEFAULT in order else math.nan
        lines.append(
            f"| {sc} | {worst} | {means[worst]:.1f} | {means.get(DEFAULT, math.nan):.1f} | {rank} of {len(order)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--preset", default="tiny")
    r.add_argument("--cls", type=int, default=0)
    r.add_argument("--scenarios", default="", help="';'-separated requests instead of the share sweep")
    r.add_argument("--seeds", default="0,1,2")
    r.add_argument("--gold-models", type=int, default=4)
    r.add_argument("--store", default=None)
    r.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("summary")
    s.add_argument("rows", type=Path)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if a.command == "run":
        cmd_run(a)
    else:
        from oblivio.experiments.rows import read_results

        print(summary(read_results(a.rows)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
