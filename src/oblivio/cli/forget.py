"""``oblivio forget``: run an unlearning method on the original model for a forget request."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import (
    add_config_arg,
    add_experiment_args,
    describe_line,
    experiment_from_args,
    json_object,
    print_table,
    seed_arg,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..methods import list_methods

    p = sub.add_parser(
        "forget",
        help="unlearn a forget request with a method",
        description="Unlearn a forget request from the original model with one method; compares "
        "with the gold model when --gold is given. Methods: " + ", ".join(list_methods()),
    )
    add_experiment_args(p)
    p.add_argument("--method", help="registered method name, variants included (required, here or in --config)")
    p.add_argument(
        "--forget",
        metavar="SPEC",
        default="class-subset:6:100",
        help="class-subset:K:N, class:K, random:P, group:IDS, indices:FILE (default class-subset:6:100)",
    )
    p.add_argument("--request-seed", type=seed_arg("request seed"), default=0, help="seed that draws the forget set")
    p.add_argument("--unlearn-seed", type=seed_arg("unlearning seed"), default=0, help="seed of the unlearning run")
    p.add_argument(
        "--hparams", type=json_object, default={}, help="method hyper-parameters as JSON, e.g. '{\"epochs\": 3}'"
    )
    p.add_argument("--gold", action="store_true", help="train (or load) the gold model and report alignment to it")
    p.add_argument("--out", type=Path, help="save the unlearned model's state dict here (atomic write)")
    p.add_argument("--json", type=Path, help="write the metrics as JSON here")
    add_config_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..methods import create_method
    from ..metrics.cost_ratio import RunCost
    from ..metrics.report import evaluate_unlearning
    from ..utils import atomic_torch_save, atomic_write_text, state_dict_hash, to_jsonable

    if not args.method:
        raise ValueError("--method is required (on the command line or in the --config file)")
    method = create_method(args.method, **args.hparams)  # fails fast on a bad name or hyper-parameter
    exp = experiment_from_args(args)
    splits = exp.unlearning_splits(args.forget, seed=args.request_seed)
    print(describe_line("experiment", exp.describe()))
    print(describe_line("forget request", splits.split.describe()))
    original = exp.original()
    gold = exp.gold_with_meta(splits.split) if args.gold else None
    unlearned = method(
        original,
        forget=splits.forget,
        retain=splits.retain,
        holdout=splits.holdout,
        seed=args.unlearn_seed,
        progress=not args.no_progress,
    )
    metrics = evaluate_unlearning(
        unlearned,
        forget=splits.forget,
        retain=splits.retain,
        test=splits.test,
        gold=gold.model if gold is not None else None,
        extras=["cost"],
        info=method.info,
        cost=RunCost.from_mapping(method.info),
        reference_cost=gold.cost if gold is not None else None,
    )
    cost = metrics.pop_group("cost")
    metrics["seconds"] = method.info.get("seconds")
    # Same weights as the original: say so, as `request apply` does for a no-op run (and record it in --json).
    unchanged = state_dict_hash(unlearned) == state_dict_hash(original)
    rows = [
        {
            "model": args.method,
            "ACC_test": metrics["acc_test"] * 100,
            "ACC_Df": metrics["acc_forget"] * 100,
            "ACC_Dr": metrics["acc_retain"] * 100,
            "seconds": metrics["seconds"],
        }
    ]
    if gold is not None:
        rows.insert(
            0,
            {
                "model": "gold reference (retrain)",
                "ACC_test": metrics["gold_acc_test"] * 100,
                "ACC_Df": metrics["gold_acc_forget"] * 100,
                "ACC_Dr": metrics["gold_acc_retain"] * 100,
                "seconds": cost["gold_train_seconds"],
            },
        )
        rows[1]["delta"] = metrics["delta_forget"] * 100
        rows[1]["act_dist_L2"] = metrics["activation_distance_l2"]
        if cost["rte"] is not None:
            rows[1]["cost_vs_retrain"] = cost["rte"]
    print_table(rows, list(dict.fromkeys(k for r in rows for k in r)))
    if unchanged:
        from ..api import _why_unchanged

        print(
            describe_line(
                "WARNING: no change",
                f"{args.method} returned the model with the same weights as the original"
                f"{_why_unchanged(method.info, len(splits.forget))}: nothing was unlearned",
            )
        )
    if args.out:
        atomic_torch_save(unlearned.state_dict(), args.out)
        print(f"saved {args.out}")
    if args.json:
        atomic_write_text(
            args.json,
            json.dumps(
                to_jsonable(
                    {
                        "method": args.method,
                        "hparams": method.hparams(),
                        "info": method.info,
                        "metrics": dict(metrics),
                        "cost": cost,
                        "forget": splits.split.to_dict(),
                        "unchanged": unchanged,
                    }
                ),
                indent=2,
            ),
        )
    return 0
