"""``oblivio evaluate``: score a saved model against a forget request (and its gold model)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import (
    add_experiment_args,
    add_model_file_args,
    experiment_from_args,
    gold_reference,
    load_model_file,
    metric_rows,
    model_recipe_source,
    print_table,
    recipe_lines,
    recipes_json,
    seed_arg,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a saved model on forget / retain / test (and against gold)",
        description="Load a state dict saved by `oblivio forget --out` and compute every metric.",
    )
    add_experiment_args(p)
    p.add_argument("--model-file", type=Path, required=True, help="state dict (.pt) of the model to score")
    p.add_argument("--forget", metavar="SPEC", required=True, help="the forget request the model served")
    p.add_argument("--request-seed", type=seed_arg("request seed"), default=0)
    p.add_argument("--gold", action="store_true", help="compare with the gold model (trains it once if needed)")
    add_model_file_args(p, model_help=None)
    p.add_argument("--json", type=Path, help="write the metrics as JSON here (accuracies as fractions in [0, 1])")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..metrics.report import evaluate_unlearning
    from ..utils import atomic_write_text, check_output_file, to_jsonable

    if args.json is not None:
        check_output_file(args.json, option="--json")  # before the evaluation, not after it
    exp = experiment_from_args(args)
    splits = exp.unlearning_splits(args.forget, seed=args.request_seed)
    model = load_model_file(exp, args.model_file)
    trained_gold, gold_recipe = gold_reference(exp, splits.split, args)
    gold = trained_gold.model if trained_gold is not None else None
    metrics = evaluate_unlearning(model, forget=splits.forget, retain=splits.retain, test=splits.test, gold=gold)
    rows = metric_rows(metrics)
    print_table(rows, ["metric", "model"] + (["gold reference"] if gold is not None else []))
    model_recipe = model_recipe_source(exp, args)
    if gold_recipe is not None:
        print("\n".join(recipe_lines(model_recipe, gold_recipe, what="model's original")))
    if args.json:
        payload = dict(metrics)
        if gold_recipe is not None:
            payload["recipes"] = recipes_json(model_recipe, gold_recipe)
        atomic_write_text(args.json, json.dumps(to_jsonable(payload), indent=2))
    return 0
