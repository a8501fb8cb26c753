"""``oblivio evaluate``: score a saved model against a forget request (and its gold model)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_experiment_args, experiment_from_args, metric_rows, print_table, seed_arg


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
    p.add_argument("--json", type=Path, help="write the metrics as JSON here (accuracies as fractions in [0, 1])")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..metrics.report import evaluate_unlearning
    from ..utils import CheckpointError, atomic_write_text, safe_torch_load, to_jsonable

    exp = experiment_from_args(args)
    splits = exp.unlearning_splits(args.forget, seed=args.request_seed)
    model = exp.build_model()
    state = safe_torch_load(args.model_file, map_location=exp.device)
    try:
        model.load_state_dict(state)
    except (RuntimeError, AttributeError, TypeError) as exc:
        raise CheckpointError(
            f"{args.model_file} does not fit model {exp.config.model!r} with options {exp.config.model_options}: {exc}"
        ) from exc
    from ..models.base import check_usable_weights

    check_usable_weights(model, source=str(args.model_file))  # before any metric (a NaN model broke sklearn's SVC)
    gold = exp.gold(splits.split) if args.gold else None
    metrics = evaluate_unlearning(model, forget=splits.forget, retain=splits.retain, test=splits.test, gold=gold)
    rows = metric_rows(metrics)
    print_table(rows, ["metric", "model"] + (["gold reference"] if gold is not None else []))
    if args.json:
        atomic_write_text(args.json, json.dumps(to_jsonable(metrics), indent=2))
    return 0
