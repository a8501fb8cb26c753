"""Arguments shared by several sub-commands: the experiment, ``--import``, ``--config``, and text tables."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

from ..data import parse_bytes
from ..experiments import Experiment, ExperimentConfig, get_preset
from ..experiments.labels import PERCENT_KEYS, is_percent, unit_of, with_unit
from ..training.functions import RecipeSource, TrainFunction, recipe_mismatch
from ..training.recipes import get_recipe
from .parsing import (  # noqa: F401  (re-exported: the options' parsers live there)
    MAX_CONFIG_BYTES,
    MAX_NESTING,
    check_nesting,
    json_object,
    load_config,
    parse_user_json,
)


# ---------------------------------------------------------------------------------------------- option types
# argparse's ``type=int`` is Python's int(), which also reads '１２', '٣٤', '1_0', '+11' and '-0'; every whole number
# on the command line goes through the one rule for ids instead (ASCII digits only), with its range checked here.
def whole_number(what: str, *, low: int = 0, high: int | None = None):
    """An argparse ``type``: a whole number written with ASCII digits, in ``low..high``."""
    from ..scenarios import ScenarioError, parse_id_text

    def parse(text: str) -> int:
        try:
            value = parse_id_text(text, what=what)
        except ScenarioError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if value < low or (high is not None and value > high):
            span = f"{low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{what} must be {span}, got {text.strip()}")
        return value

    parse.__name__ = what
    return parse


def seed_arg(what: str):
    """An argparse ``type`` for a seed: ``0..MAX_SEED``."""
    from ..utils import MAX_SEED

    return whole_number(what, high=MAX_SEED)


def positive_seconds(text: str) -> float:
    """An argparse ``type``: a finite number of seconds > 0 (not nan, not inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"seconds must be a finite number > 0, got {text!r}")
    return value


def add_experiment_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("experiment")
    g.add_argument("--preset", default="cpu", help="cpu (default), paper, paper-fmnist, tiny")
    g.add_argument("--dataset", help="override the preset's dataset (oblivio.data.list_datasets())")
    g.add_argument("--data-root", help="folder (or file) of the dataset, for loaders that take one")
    g.add_argument(
        "--train-size", type=whole_number("train size", low=1), help="class-stratified subsample of the training set"
    )
    g.add_argument("--model", help="override the preset's model (oblivio.models.list_models())")
    g.add_argument("--model-options", type=json_object, help="JSON dict, e.g. '{\"width\": 16}'")
    g.add_argument(
        "--recipe",
        help="override the recipe: paper, cpu, tiny, or your training function registered with "
        "oblivio.training.register_recipe in an --import module (original and gold models are trained with it)",
    )
    g.add_argument("--epochs", type=whole_number("epoch count", low=1), help="override the recipe's epochs (>= 1)")
    g.add_argument("--seed", type=seed_arg("seed"), default=None, help="training seed (original and gold models)")
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
        ValueError: a module cannot be found (the message names it and the folder searched), raises while it is
            imported, has a syntax error, or calls ``sys.exit`` (which would end the command having done nothing,
            with exit code 0): one line naming the module and what happened.
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
        except ModuleNotFoundError as exc:
            if exc.name != name and not name.startswith(f"{exc.name}."):
                raise ValueError(
                    f"--import {name}: the module itself failed to import {exc.name!r} ({exc}); install it or fix "
                    "the module"
                ) from exc
            raise ValueError(
                f"--import {name}: cannot import it ({exc}); the current folder {cwd} and the "
                "installed packages were searched"
            ) from exc
        except SyntaxError as exc:
            where = f"{exc.filename}, line {exc.lineno}" if exc.filename else name
            raise ValueError(f"--import {name}: syntax error in {where}: {exc.msg}; fix the module") from exc
        except SystemExit as exc:
            # A script's sys.exit() at import time would end oblivio with its code (0: "success", nothing done).
            raise ValueError(
                f"--import {name}: the module called sys.exit({exc.code!r}) while being imported; a module given "
                "to --import should only register datasets, models or methods: put its script part under "
                "if __name__ == '__main__':"
            ) from None
        except Exception as exc:
            raise ValueError(
                f"--import {name}: importing it raised {type(exc).__name__}: "
                f"{' '.join(str(exc).split()) or '(no message)'}{_where(exc)}; fix the module (-v shows the traceback)"
            ) from exc


def _where(exc: BaseException) -> str:
    """`` (file.py, line N)`` of the innermost frame of ``exc`` (the user's module, usually)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f" ({tb.tb_frame.f_code.co_filename}, line {tb.tb_lineno})" if tb is not None else ""


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
    if action.type in (json.loads, json_object) or action.type is None and isinstance(value, (list, dict)):
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
    if args.epochs is not None and isinstance(recipe, TrainFunction):
        recipe = recipe.with_options(epochs=args.epochs)  # your function's own `epochs` option
    elif args.epochs is not None:
        recipe = recipe.scaled(args.epochs / recipe.epochs) if recipe.epochs else recipe.replace(epochs=args.epochs)
    changes["recipe"] = recipe
    if args.seed is not None:
        changes["seed"] = args.seed
    return config.replace(**changes)


def check_store_arg(args: argparse.Namespace) -> None:
    """``--store`` names a folder (or nothing yet): never a file, device or FIFO, refused before any work."""
    from ..utils import file_kind

    kind = file_kind(args.store) if getattr(args, "store", None) else None
    if kind not in (None, "directory"):
        raise ValueError(f"--store {args.store} is a {kind}, not a folder; give a folder for the checkpoint store")


def experiment_from_args(args: argparse.Namespace) -> Experiment:
    check_store_arg(args)
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


def help_text(doc: str | None) -> str:
    r"""A module docstring (reST) as plain ``-h`` text: ``code`` and :role:`name` lose their markup, a paragraph
    ending ``::`` ends ``:``; the example lines stay as they are (use it with ``RawDescriptionHelpFormatter``).

    Example:
        >>> print(help_text("``oblivio bench NAME``: see :func:`~a.b.run`.\n\nExample::\n\n    oblivio bench x"))
        oblivio bench NAME: see run.
        <BLANKLINE>
        Example:
        <BLANKLINE>
            oblivio bench x
    """
    text = re.sub(r":[a-z]+:`~?([^`]*)`", lambda m: m.group(1).rsplit(".", 1)[-1], doc or "")
    text = text.replace("``", "")
    return re.sub(r"::[ \t]*$", ":", text, flags=re.M).strip()


MAX_WIDTH = 120  # stdout tables fit this many columns; wider ones are split into blocks (the first column repeats)


def format_table(
    rows: list[dict],
    columns: list[str],
    *,
    floatfmt: str = "{:.2f}",
    width: int = MAX_WIDTH,
    headers: dict[str, str] | None = None,
) -> str:
    """A plain aligned text table no wider than ``width``: columns that do not fit go to further blocks, each
    repeating the first (key) column. ``headers`` maps a column key to the header shown (with its unit)."""

    def fmt(v):
        if isinstance(v, float):
            return floatfmt.format(v)
        return "" if v is None else str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    shown = [(headers or {}).get(c, c) for c in columns]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(shown)]
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
        out.append("  ".join(shown[i].ljust(widths[i]) for i in idx).rstrip())
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


PERCENT_METRICS = PERCENT_KEYS
"""Metric keys (and key prefixes) that are fractions, shown in percent by every command and report (one unit
convention: :mod:`oblivio.experiments.labels`)."""


def is_percent_metric(key: str) -> bool:
    return is_percent(key)


def metric_rows(metrics: dict[str, Any]) -> list[dict[str, str]]:
    """``evaluate_unlearning``'s flat dict as table rows: ``metric``, ``model``, ``gold reference`` (the model's
    ``gold_*`` twin), accuracies and other fractions in percent (2 decimals; the label ends with its unit, ``(%)``
    or ``(points)`` for δ), the rest with 4 significant digits."""

    def show(key: str, value: Any) -> str:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return "" if value is None else str(value)
        return f"{100 * value:.2f}" if is_percent_metric(key) else f"{value:.4g}"

    rows = []
    for key, value in metrics.items():
        if key.startswith("gold_"):
            continue
        row = {"metric": with_unit(key, unit_of(key)), "model": show(key, value)}
        if f"gold_{key}" in metrics:
            row["gold reference"] = show(key, metrics[f"gold_{key}"])
        rows.append(row)
    return rows


ROW_HEADERS: dict[str, str] = {
    "ACC_test": "ACC_test (%)",
    "ACC_Df": "ACC_Df (%)",
    "ACC_Dr": "ACC_Dr (%)",
    "delta": "δ (points)",
    "agree": "agree (%)",
    "actdist_L2": "act. dist. L2",
    "act_dist_L2": "act. dist. L2",
    "MIA_lossLR_acc": "MIA loss-LR acc (%)",
    "MIA_SalUn_eff": "MIA SalUn eff. (%)",
    "seconds": "time (s)",
    "cost_vs_retrain": "cost vs retrain (×)",
}
"""Terminal headers with their units for the row keys of ``forget`` and ``demo`` (values already in percent)."""


def print_table(
    rows: list[dict], columns: list[str], *, floatfmt: str = "{:.2f}", headers: dict[str, str] | None = None
) -> None:
    """Print :func:`format_table` (at most 120 columns wide)."""
    print(format_table(rows, columns, floatfmt=floatfmt, headers=headers))


# ---------------------------------------------------------------------------------------------- your model files
def add_model_file_args(p: argparse.ArgumentParser, *, model_help: str | None) -> None:
    """``--model-file`` (when ``model_help``), ``--model-recipe`` and ``--gold-model-file``: your weights in, and
    which recipe trained them (reports compare it with the gold model's)."""
    if model_help is not None:
        p.add_argument("--model-file", type=Path, help=model_help)
    p.add_argument(
        "--model-recipe",
        metavar="NAME",
        help="the recipe that trained the --model-file weights (or their original), for the report's recipe check "
        "(default: your training function when --recipe names one, else unknown)",
    )
    p.add_argument(
        "--gold-model-file",
        type=Path,
        metavar="PATH",
        help="your gold model (state dict of the experiment's model, retrained without the forget set), used as the "
        "gold reference instead of retraining one (loaded with weights_only=True); implies --gold",
    )


def load_model_file(exp: Experiment, path: Path, *, what: str = "--model-file"):
    """The experiment's architecture with the state dict at ``path`` (``weights_only=True``), in eval mode.

    Raises:
        CheckpointError: the file is unreadable, not a state dict, or of another architecture.
    """
    import torch

    from ..models.adapters import load_weights_file

    test = exp.data.test  # the probe: a few real images
    return load_weights_file(
        exp.build_model(),
        path,
        probe=test.float_images(torch.arange(min(4, len(test)))).to(exp.device),
        label=f"{what} {path}",
        model_desc=f"model {exp.config.model!r} with options {exp.config.model_options}",
    )


def model_recipe_source(exp: Experiment, args: argparse.Namespace) -> RecipeSource:
    """Which recipe trained the user's ``--model-file`` weights: ``--model-recipe``; else the experiment's recipe
    when it is the user's own training function (assumed: it is how they train); else unknown."""
    stated = getattr(args, "model_recipe", None)
    if stated:
        return RecipeSource.stated(stated)
    if isinstance(exp.config.recipe, TrainFunction):
        return RecipeSource.of(exp.config.recipe, assumed=True)
    return RecipeSource.stated(None)


def gold_reference(exp: Experiment, split: Any, args: argparse.Namespace):
    """``(TrainedModel, RecipeSource)`` of the gold model: ``--gold-model-file``, or retrained (from the store) with
    the experiment's recipe when ``--gold``; ``(None, None)`` without either."""
    from ..experiments import TrainedModel

    path = getattr(args, "gold_model_file", None)
    if path is not None:
        return TrainedModel(load_model_file(exp, path, what="--gold-model-file"), {}), RecipeSource.user_file()
    if getattr(args, "gold", False):
        return exp.gold_with_meta(split), RecipeSource.of(exp.config.recipe)
    return None, None


def recipe_lines(original: RecipeSource, gold: RecipeSource | None, *, what: str = "original") -> list[str]:
    """The report lines that name the recipes (and warn when gold was retrained another way)."""
    import textwrap

    lines = [f"recipe of the {what}: {original.label()}"]
    if gold is not None:
        lines.append(f"recipe of the gold model: {gold.label()}")
        warning = recipe_mismatch(original, gold)
        if warning:
            lines.append(f"WARNING: {warning}")
    return [textwrap.fill(x, width=MAX_WIDTH, subsequent_indent="    ", break_on_hyphens=False) for x in lines]


def recipes_json(original: RecipeSource, gold: RecipeSource | None) -> dict[str, Any]:
    """The ``recipes`` entry of a ``--json`` report."""
    return {
        "original": original.to_dict(),
        "gold": gold.to_dict() if gold is not None else None,
        "warning": recipe_mismatch(original, gold) if gold is not None else None,
    }
