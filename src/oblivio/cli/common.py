"""Arguments shared by several sub-commands: the experiment, ``--import``, ``--config``, and text tables."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..data import parse_bytes
from ..experiments import Experiment, ExperimentConfig, get_preset
from ..training.recipes import get_recipe


def add_experiment_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("experiment")
    g.add_argument("--preset", default="cpu", help="cpu (default), paper, paper-fmnist, tiny")
    g.add_argument("--dataset", help="override the preset's dataset (oblivio.data.list_datasets())")
    g.add_argument("--data-root", help="folder (or file) of the dataset, for loaders that take one")
    g.add_argument("--train-size", type=int, help="class-stratified subsample of the training set")
    g.add_argument("--model", help="override the preset's model (oblivio.models.list_models())")
    g.add_argument("--model-options", type=json.loads, help="JSON dict, e.g. '{\"width\": 16}'")
    g.add_argument("--recipe", help="override the recipe: paper, cpu, tiny")
    g.add_argument("--epochs", type=int, help="override the recipe's epochs")
    g.add_argument("--seed", type=int, default=None, help="training seed (original and gold models)")
    g.add_argument("--store", help="checkpoint store folder (default $OBLIVIO_STORE or ~/.cache/oblivio/store)")
    g.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars and progress log lines")
    g.add_argument(
        "--stream",
        choices=("auto", "on", "off"),
        default="auto",
        help="read the data batch by batch (on), into memory (off), or streamed when a dataset registered as torch "
        "Datasets exceeds --memory-budget (auto, default)",
    )
    g.add_argument("--memory-budget", help="size for --stream auto, e.g. 4GB (default: a quarter of the memory)")
    g.add_argument("--num-workers", type=int, help="loader processes reading streamed batches (default 0)")
    add_import_arg(p)


def add_import_arg(p: argparse.ArgumentParser) -> None:
    """``--import MODULE`` (repeatable): modules that register the user's datasets, models or methods."""
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module first (it may call register_dataset / register_model / "
        "register_method); the current folder is searched; repeatable; bench workers import it too",
    )


def import_modules(names: list[str]) -> None:
    """Import the ``--import`` modules, with the current folder on ``sys.path`` as ``python -m`` has it.

    Raises:
        ValueError: a module cannot be imported (the message names it and the folder searched).
    """
    if not names:
        return
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # spawned bench workers inherit sys.path
    for name in names:
        if name.endswith(".py") or os.sep in name:
            raise ValueError(
                f"--import takes a module name, not a path: for {name!r} write "
                f"--import {Path(name).stem} from its folder"
            )
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(
                f"--import {name}: cannot import it ({exc}); the current folder {cwd} and the "
                "installed packages were searched"
            ) from exc


# ---------------------------------------------------------------------------------------------- config files
def add_config_arg(p: argparse.ArgumentParser) -> None:
    """``--config FILE.yaml``: option values from a file; options given on the command line win."""
    p.add_argument(
        "--config",
        metavar="FILE.yaml",
        help="YAML file of option values, keyed by option name (e.g. seeds: 3, methods: [...], "
        "hparams: {...}); options given on the command line override it (docs/configs.md)",
    )
    p.set_defaults(_config_parser=p)


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML (or JSON) config file into a dict (PyYAML ``safe_load``: no code runs).

    Raises:
        ValueError: the file is missing, not YAML, or not a mapping of option names to values.
    """
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ValueError(f"config file {path} must be a mapping of option names to values, got {type(data).__name__}")
    return data


def _config_value(action: argparse.Action, value: Any, key: str, path: Any) -> Any:
    """A config value as the default argparse would produce from the command line (strings go through ``type``)."""
    if value is None:
        return None
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise ValueError(f"{path}: {key} must be true or false, got {value!r}")
        return value
    if isinstance(action, argparse._AppendAction):
        return [str(v) for v in (value if isinstance(value, list) else [value])]
    if action.type is json.loads or action.type is None and isinstance(value, (list, dict)):
        return value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        raise ValueError(f"{path}: {key} takes a single value, got a mapping")
    return str(value) if action.type is not None else value


def config_defaults(parser: argparse.ArgumentParser, values: dict[str, Any], *, path: Any = "config") -> dict[str, Any]:
    """Map config keys (option names, ``-`` or ``_``) onto ``parser``'s destinations, converted like the CLI."""
    actions = {
        a.dest: a
        for a in parser._actions
        if a.dest not in ("help", "config", "version")
        and not a.dest.startswith("_")
        and not isinstance(a, argparse._SubParsersAction)
    }
    out: dict[str, Any] = {}
    for key, value in values.items():
        dest = key.replace("-", "_")
        if dest == "import":
            dest = "imports"
        if dest not in actions:
            valid = ", ".join(sorted("import" if d == "imports" else d.replace("_", "-") for d in actions))
            raise ValueError(f"{path}: unknown option {key!r} for this command; valid: {valid}")
        out[dest] = _config_value(actions[dest], value, key, path)
    return out


def apply_config(
    parser: argparse.ArgumentParser, argv: list[str] | None, args: argparse.Namespace
) -> argparse.Namespace:
    """Re-parse ``argv`` with the ``--config`` file's values as defaults (explicit options still win)."""
    path = getattr(args, "config", None)
    sub = getattr(args, "_config_parser", None)
    if not path or sub is None:
        return args
    sub.set_defaults(**config_defaults(sub, load_config(path), path=path))
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:  # a config value that the option's type rejects
        raise ValueError(f"{path}: a value does not fit its option (see the message above)") from exc


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
    if args.num_workers is not None and args.num_workers < 0:
        raise ValueError(f"--num-workers must be >= 0, got {args.num_workers}")
    if args.memory_budget is not None:
        parse_bytes(args.memory_budget)  # a bad size fails here, with its message
    return Experiment(
        config_from_args(args),
        store=args.store,
        device=args.device,
        progress=not args.no_progress,
        stream={"on": True, "off": False}.get(args.stream, "auto"),
        memory_budget=args.memory_budget,
        num_workers=args.num_workers,
    )


MAX_WIDTH = 120  # stdout tables fit this many columns; wider ones are split into blocks (the first column repeats)


def format_table(rows: list[dict], columns: list[str], *, floatfmt: str = "{:.2f}", width: int = MAX_WIDTH) -> str:
    """A plain aligned text table no wider than ``width``: columns that do not fit go to further blocks, each
    repeating the first (key) column."""

    def fmt(v):
        if isinstance(v, float):
            return floatfmt.format(v)
        return "" if v is None else str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    blocks: list[list[int]] = []
    current = [0]
    used = widths[0]
    for i in range(1, len(columns)):
        if used + 2 + widths[i] > width and len(current) > 1:
            blocks.append(current)
            current, used = [0], widths[0]
        current.append(i)
        used += 2 + widths[i]
    blocks.append(current)
    out: list[str] = []
    for b, idx in enumerate(blocks):
        if b:
            out.append("")
        out.append("  ".join(columns[i].ljust(widths[i]) for i in idx).rstrip())
        out.append("  ".join("-" * widths[i] for i in idx))
        out.extend("  ".join(row[i].ljust(widths[i]) for i in idx).rstrip() for row in cells)
    return "\n".join(out)


def describe_line(label: str, described: Any, *, width: int = MAX_WIDTH) -> str:
    """``label: k=v, k=v ...`` wrapped to ``width`` columns (an experiment's ``describe()`` dict, or any text)."""
    import textwrap

    if isinstance(described, dict):
        described = ", ".join(
            f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in described.items()
        )
    return textwrap.fill(f"{label}: {described}", width=width, subsequent_indent="    ", break_on_hyphens=False)


PERCENT_METRICS = (
    "acc_",
    "delta_forget",
    "sample_agreement",
    "mia_loss_lr_acc",
    "mia_loss_lr_tpr_at_1pct_fpr",
    "mia_salun_efficacy",
)
"""Metric keys (and key prefixes) that are fractions, shown in percent by every command (one unit convention)."""


def is_percent_metric(key: str) -> bool:
    key = key[len("gold_") :] if key.startswith("gold_") else key
    return any(key == p or (p.endswith("_") and key.startswith(p)) for p in PERCENT_METRICS)


def metric_rows(metrics: dict[str, Any]) -> list[dict[str, str]]:
    """``evaluate_unlearning``'s flat dict as table rows: ``metric``, ``model``, ``gold reference`` (the model's
    ``gold_*`` twin), accuracies and other fractions in percent (2 decimals, label ending ``(%)``), the rest with 4
    significant digits."""

    def show(key: str, value: Any) -> str:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return "" if value is None else str(value)
        return f"{100 * value:.2f}" if is_percent_metric(key) else f"{value:.4g}"

    rows = []
    for key, value in metrics.items():
        if key.startswith("gold_"):
            continue
        row = {"metric": key + (" (%)" if is_percent_metric(key) else ""), "model": show(key, value)}
        if f"gold_{key}" in metrics:
            row["gold reference"] = show(key, metrics[f"gold_{key}"])
        rows.append(row)
    return rows


def print_table(rows: list[dict], columns: list[str], *, floatfmt: str = "{:.2f}") -> None:
    """Print :func:`format_table` (at most 120 columns wide)."""
    print(format_table(rows, columns, floatfmt=floatfmt))
