"""``oblivio demo``: the main job on the embedded data, end to end, in minutes on a CPU.

Trains the original and the gold model on Fashion-MNIST (CPU preset, cached), forgets 100 training images of one
class with each method, and prints every method's numbers beside the gold model's.
"""

from __future__ import annotations

import argparse
import time

from .common import (
    ROW_HEADERS,
    add_experiment_args,
    describe_line,
    experiment_from_args,
    help_text,
    print_table,
    seed_arg,
    whole_number,
)

DEMO_METHODS = ("finetune", "finetune.cpu", "neggrad", "random-label", "bad-teacher", "tmu")
"""Baselines at their reference defaults, fine-tune also at our CPU tuning (``finetune.cpu``), and TMU."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train original + gold on Fashion-MNIST, forget 100 images, compare methods",
        description=help_text(__doc__),
    )
    add_experiment_args(p)
    p.add_argument(
        "--forget-class", default="Shirt", help="class to forget 100 images of (name or index; default Shirt)"
    )
    p.add_argument(
        "--count", type=whole_number("count", low=1), default=100, help="how many images of the class (default 100)"
    )
    p.add_argument("--methods", default=",".join(DEMO_METHODS), help="comma-separated method names")
    p.add_argument("--request-seed", type=seed_arg("request seed"), default=0)
    p.set_defaults(func=run)


def demo_rows(exp, *, spec: str, methods: list[str], request_seed: int = 0, progress: bool = True) -> list[dict]:
    """Run each method on ``spec`` and return one row per model (gold first), in percent where applicable."""
    from ..methods import create_method
    from ..metrics.cost_ratio import RunCost, cost_ratios
    from ..metrics.report import evaluate_unlearning

    splits = exp.unlearning_splits(spec, seed=request_seed)
    original = exp.original()
    gold = exp.gold_with_meta(splits.split)
    rows: list[dict] = []
    base = evaluate_unlearning(original, forget=splits.forget, retain=splits.retain, test=splits.test, gold=gold.model)
    rows.append(
        _row(
            "gold reference (retrain)",
            base,
            gold=True,
            seconds=gold.train_seconds,
            ratio=cost_ratios(RunCost(seconds=gold.train_seconds), gold.cost)["rte"],
        )
    )
    rows.append(
        _row("original (no unlearning)", base, seconds=0.0, ratio=cost_ratios(RunCost(seconds=0.0), gold.cost)["rte"])
    )
    for name in methods:
        method = create_method(name)
        t0 = time.perf_counter()
        unlearned = method(
            original, forget=splits.forget, retain=splits.retain, holdout=splits.holdout, seed=0, progress=progress
        )
        seconds = time.perf_counter() - t0
        metrics = evaluate_unlearning(
            unlearned,
            forget=splits.forget,
            retain=splits.retain,
            test=splits.test,
            gold=gold.model,
            extras=["cost"],
            info=method.info,
            cost=RunCost(seconds=seconds),
            reference_cost=gold.cost,
        )
        rows.append(_row(name, metrics, seconds=seconds, ratio=metrics["rte"]))
    return rows


def _row(name: str, m: dict, *, gold: bool = False, seconds: float | None = None, ratio: float | None = None) -> dict:
    p = "gold_" if gold else ""
    row = {
        "model": name,
        "ACC_test": 100 * m[f"{p}acc_test"],
        "ACC_Dr": 100 * m[f"{p}acc_retain"],
        "ACC_Df": 100 * m[f"{p}acc_forget"],
        "delta": 0.0 if gold else 100 * m["delta_forget"],
        "agree": 100.0 if gold else 100 * m["sample_agreement"],
        "actdist_L2": 0.0 if gold else m["activation_distance_l2"],
        "MIA_lossLR_acc": 100 * m[f"{p}mia_loss_lr_acc"],
        "MIA_SalUn_eff": 100 * m[f"{p}mia_salun_efficacy"],
        "seconds": seconds if seconds is not None else float("nan"),
    }
    if ratio is not None:
        row["cost_vs_retrain"] = ratio
    return row


def run(args: argparse.Namespace) -> int:
    from ..methods import list_methods
    from ..scenarios import resolve_class

    exp = experiment_from_args(args)
    k = resolve_class(exp.data.train, int(args.forget_class) if str(args.forget_class).isdigit() else args.forget_class)
    spec = f"class-subset:{k}:{args.count}"
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    missing = [m for m in methods if m not in list_methods()]
    if missing:
        raise KeyError(f"unknown method(s) {missing}; available: {', '.join(list_methods())}")
    print(describe_line("oblivio demo", exp.describe()))
    print(
        f"forget request: {args.count} training images of class {k} ({exp.data.classes[k]}), seed {args.request_seed}"
    )
    print("training (or loading) the original and the gold model...")
    t0 = time.perf_counter()
    rows = demo_rows(exp, spec=spec, methods=methods, request_seed=args.request_seed, progress=not args.no_progress)
    print()
    print_table(
        rows,
        [
            "model",
            "ACC_test",
            "ACC_Dr",
            "ACC_Df",
            "delta",
            "agree",
            "actdist_L2",
            "MIA_lossLR_acc",
            "MIA_SalUn_eff",
            "seconds",
            "cost_vs_retrain",
        ],
        headers=ROW_HEADERS,
    )
    print()
    print(
        "ACC_* in %, on the evaluation test split / retain set D_r / forget set D_f. delta = |ACC_Df - gold ACC_Df|;"
        " agree = sample agreement: % of D_f where the model and gold are both right or both wrong (delta counts,"
        " agree checks which samples); actdist_L2 = mean L2 distance of softmax outputs to gold on D_f (lower ="
        " closer to gold)."
    )
    print(
        "MIA_lossLR_acc: loss-based logistic-regression membership inference, forget vs test (NeurIPS starting kit);"
        " MIA_SalUn_eff: SalUn confidence-SVC efficacy. Aligned = same as gold, not lower."
    )
    print(f"total {time.perf_counter() - t0:.0f}s; models cached in {exp.store.root}")
    return 0
