"""``oblivio train``: train (or load from the store) the original model, and a gold model for a request."""

from __future__ import annotations

import argparse

from .common import (
    add_config_arg,
    add_experiment_args,
    describe_line,
    experiment_from_args,
    print_table,
    seed_arg,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the original model (and the gold model of a forget request)",
        description="Train the original model on D (cached in the store), and with --forget also the "
        "gold model retrained from scratch on D_r.",
    )
    add_experiment_args(p)
    p.add_argument(
        "--forget", metavar="SPEC", help="also train the gold model for this request, e.g. class-subset:6:100"
    )
    p.add_argument(
        "--request-seed", type=seed_arg("request seed"), default=0, help="seed that draws the forget set (default 0)"
    )
    add_config_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.functions import RecipeSource

    exp = experiment_from_args(args)
    print(describe_line("experiment", exp.describe()))
    original = exp.original()
    rows = []
    if args.forget:
        splits = exp.unlearning_splits(args.forget, seed=args.request_seed)
        rows.append({"model": "original", **exp.summary(original, splits)})
        gold = exp.gold(splits.split)
        rows.append({"model": "gold reference", **exp.summary(gold, splits)})
        print(describe_line("forget request", splits.split.describe()))
    else:
        from ..training import accuracy

        rows.append(
            {
                "model": "original",
                "acc_train": accuracy(original, exp.data.train),
                "acc_test": accuracy(original, exp.data.test),
            }
        )
    cols = list(rows[0].keys())
    print_table([{k: (v * 100 if isinstance(v, float) else v) for k, v in r.items()} for r in rows], cols)
    print(describe_line("recipe of the original and gold models", RecipeSource.of(exp.config.recipe).label()))
    print(f"store: {exp.store.root}")
    return 0
