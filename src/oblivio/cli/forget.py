"""``oblivio forget``: run an unlearning method on the original model for a forget request."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import (
    ROW_HEADERS,
    add_config_arg,
    add_experiment_args,
    add_model_file_args,
    describe_line,
    experiment_from_args,
    gold_reference,
    json_object,
    load_model_file,
    model_recipe_source,
    print_table,
    recipe_lines,
    recipes_json,
    seed_arg,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..methods import list_methods

    p = sub.add_parser(
        "forget",
        help="unlearn a forget request with a method",
        description="Unlearn a forget request from the original model with one method; compares "
        "with the gold model when --gold is given (or yours, --gold-model-file); --model-file unlearns your own "
        "weights. Methods: " + ", ".join(list_methods()),
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
    add_model_file_args(
        p,
        model_help="unlearn these weights (a state dict of the experiment's model, loaded with weights_only=True) "
        "instead of the experiment's original model, which is then not trained",
    )
    p.add_argument("--out", type=Path, help="save the unlearned model's state dict here (atomic write)")
    p.add_argument("--json", type=Path, help="write the metrics as JSON here")
    add_config_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..methods import create_method
    from ..metrics.cost_ratio import RunCost
    from ..metrics.report import evaluate_unlearning
    from ..training.functions import RecipeSource
    from ..utils import atomic_torch_save, atomic_write_text, check_output_file, state_dict_hash, to_jsonable

    if not args.method:
        raise ValueError("--method is required (on the command line or in the --config file)")
    for option, path in (("--out", args.out), ("--json", args.json)):  # before the run, not after it
        if path is not None:
            check_output_file(path, option=option)
    method = create_method(args.method, **args.hparams)  # fails fast on a bad name or hyper-parameter
    exp = experiment_from_args(args)
    splits = exp.unlearning_splits(args.forget, seed=args.request_seed)
    print(describe_line("experiment", exp.describe()))
    print(describe_line("forget request", splits.split.describe()))
    if args.model_file is not None:  # your weights: no original is trained
        original, original_recipe = load_model_file(exp, args.model_file), model_recipe_source(exp, args)
    else:
        original, original_recipe = exp.original(), RecipeSource.of(exp.config.recipe)
    gold, gold_recipe = gold_reference(exp, splits.split, args)
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
        extras=["original", "cost"],  # the original model beside the method: before / after
        original=original,
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
            "model": f"{args.method} (after)",
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
                "model": "gold reference (your file)" if gold_recipe.kind == "file" else "gold reference (retrain)",
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
    rows.insert(len(rows) - 1, _original_row(metrics, gold=gold is not None))
    print_table(rows, list(dict.fromkeys(k for r in rows for k in r)), headers=ROW_HEADERS)
    print("\n".join(recipe_lines(original_recipe, gold_recipe)))
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
                        "original": _original_metrics(metrics),
                        "cost": cost,
                        "forget": splits.split.to_dict(),
                        "recipes": recipes_json(original_recipe, gold_recipe),
                        "unchanged": unchanged,
                    }
                ),
                indent=2,
            ),
        )
    return 0


def _original_metrics(metrics: dict) -> dict:
    """The original model's (before unlearning) measures, fractions as evaluate_unlearning gives them."""
    out = {k[len("original_") :]: v for k, v in metrics.items() if k.startswith("original_")}
    if "acc_forget" in out and metrics.get("gold_acc_forget") is not None:
        out["delta_forget"] = abs(out["acc_forget"] - metrics["gold_acc_forget"])
    return out


def _original_row(metrics: dict, *, gold: bool) -> dict:
    """The "original (before)" row of the terminal table, in the units of the method's row."""
    o = _original_metrics(metrics)
    row = {
        "model": "original (before)",
        "ACC_test": 100 * o["acc_test"],
        "ACC_Df": 100 * o["acc_forget"],
        "ACC_Dr": 100 * o["acc_retain"],
        "seconds": None,
    }
    if gold:
        row["delta"] = 100 * o["delta_forget"]
        row["act_dist_L2"] = o.get("activation_distance_l2")
    return row
