"""Arguments shared by several sub-commands."""

from __future__ import annotations

import argparse
import json

from ..experiments import Experiment, ExperimentConfig, get_preset
from ..training.recipes import get_recipe


def add_experiment_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("experiment")
    g.add_argument("--preset", default="cpu", help="cpu (default), paper, paper-fmnist, tiny")
    g.add_argument("--dataset", help="override the preset's dataset (oblivio.data.list_datasets())")
    g.add_argument("--data-root", help="folder (or file) of the dataset, for loaders that take one")
    g.add_argument("--train-size", type=int, help="class-stratified subsample of the training set")
    g.add_argument("--model", help="override the preset's model (oblivio.models.list_models())")
    g.add_argument("--model-options", type=json.loads, help='JSON dict, e.g. \'{"width": 16}\'')
    g.add_argument("--recipe", help="override the recipe: paper, cpu, tiny")
    g.add_argument("--epochs", type=int, help="override the recipe's epochs")
    g.add_argument("--seed", type=int, default=None, help="training seed (original and gold models)")
    g.add_argument("--store", help="checkpoint store folder (default $OBLIVIO_STORE or ~/.cache/oblivio/store)")
    g.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    config = get_preset(args.preset)
    changes: dict = {}
    if args.dataset:
        changes["dataset"] = args.dataset
        changes["dataset_options"] = {}
        changes["train_size"] = None
    if args.data_root:
        key = "path" if (args.dataset or config.dataset) == "npz" else "root"
        changes["dataset_options"] = {key: args.data_root}
    if args.train_size is not None:
        changes["train_size"] = args.train_size
    if args.model:
        changes["model"] = args.model
        changes["model_options"] = {}
    if args.model_options is not None:
        changes["model_options"] = args.model_options
    recipe = get_recipe(args.recipe) if args.recipe else config.recipe
    if args.epochs is not None:
        recipe = recipe.scaled(args.epochs / recipe.epochs) if recipe.epochs else recipe.replace(epochs=args.epochs)
    changes["recipe"] = recipe
    if args.seed is not None:
        changes["seed"] = args.seed
    return config.replace(**changes)


def experiment_from_args(args: argparse.Namespace) -> Experiment:
    return Experiment(config_from_args(args), store=args.store, device=args.device, progress=not args.no_progress)


def print_table(rows: list[dict], columns: list[str], *, floatfmt: str = "{:.2f}") -> None:
    """A plain aligned text table."""
    def fmt(v):
        if isinstance(v, float):
            return floatfmt.format(v)
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
