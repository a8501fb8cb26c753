"""``oblivio bench NAME``: run (or resume) a named benchmark and write results JSONL, markdown and HTML.

Example::

    oblivio bench tmu-table1 --preset cpu --classes 0,1,2 --seeds 3 --workers 2 --out results/tmu-table1
    oblivio bench forget-quality --preset cpu --n-models 16 --ray-address local
    oblivio bench tmu-table1 --config bench.yaml --seeds 5     # options from a YAML file; --seeds overrides it
    oblivio bench --list
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import textwrap

from .common import MAX_WIDTH, add_config_arg, add_experiment_args, check_store_arg, config_from_args, help_text

BENCH_FILES = ("results.jsonl", "report.md", "report.html")
"""The files ``bench`` writes into its ``--out`` folder (checked before the run: missing or regular files)."""


def _int_list(text: str) -> list[int]:
    from ..scenarios import ScenarioError, parse_id_text

    try:  # the one rule for ids given as text: ASCII digits only (int() also reads '１', '1_0', '+1')
        return [parse_id_text(t, what="class index") for t in text.split(",") if t.strip()]
    except ScenarioError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}: {exc}") from None


def add_parser(subparsers) -> None:
    from ..experiments.bench import list_benchmarks

    p = subparsers.add_parser(
        "bench",
        help="run a named benchmark that reproduces a paper's table",
        description=help_text(__doc__),
        epilog="benchmarks: " + ", ".join(list_benchmarks()) + " (--list describes them). Before a run starts, bench "
        "prints what it will cost: cells, models to train against models already in the store, a time estimate; "
        "each finished cell prints its progress with an ETA.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", nargs="?", help="benchmark name (see --list)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument("--classes", type=_int_list, help="forget classes, e.g. 0,1,2 (default: the benchmark's)")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="replicates, each with its own training / gold / unlearning / evaluation seeds (default 1)",
    )
    p.add_argument(
        "--methods",
        help="comma-separated method names replacing the benchmark's list, or a JSON list of "
        'names and {"name": ..., "hparams": {...}, "label": ...} objects',
    )
    p.add_argument("--count", type=int, default=100, help="images per class-subset request (default 100)")
    p.add_argument("--n-models", type=int, default=16, help="forget-quality, study-004: models per side K (default 16)")
    p.add_argument(
        "--scenario",
        help="forget-quality: the forget request (default random:0.1); study-004: which of its requests "
        "(non-iid,iid-identities,iid-images; default all)",
    )
    p.add_argument("--workers", type=int, default=1, help="cells at a time in a local process pool (default 1)")
    p.add_argument("--threads-per-worker", type=int, help="torch threads per worker (default cores // workers)")
    p.add_argument("--ray-address", help="run on Ray: 'local' starts a local instance, else a cluster address")
    p.add_argument("--ray-gpus", type=float, default=0, help="GPUs Ray reserves per cell (default 0)")
    p.add_argument("--out", help="output folder (default results/NAME)")
    p.add_argument("--no-plots", action="store_true", help="no figures in the HTML report")
    add_experiment_args(p)
    add_config_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments.bench import BenchSettings, get_benchmark, list_benchmarks, run_benchmark

    if args.list or not args.name:
        for name in list_benchmarks():
            print(f"{name:16s} {get_benchmark(name).description}")
        return 0 if args.list else 2
    from ..utils import check_output_dir

    get_benchmark(args.name)  # fail early on an unknown name
    if args.stream != "auto" or args.memory_budget is not None or args.num_workers is not None:
        raise ValueError(
            "bench reads its data the default way (--stream auto, the default memory budget, no loader workers); "
            "--stream, --memory-budget and --num-workers apply to train, forget, evaluate and request"
        )
    out = args.out or f"results/{args.name}"
    check_output_dir(out, option="--out", files=BENCH_FILES)  # before the run, not after it
    check_store_arg(args)
    settings = BenchSettings(
        classes=args.classes,
        seeds=args.seeds,
        methods=_parse_methods(args.methods),
        count=args.count,
        n_models=args.n_models,
        scenario=args.scenario,
    )
    command = _command(args, out)
    _say_cost(args, config_from_args(args), settings, out)
    result = run_benchmark(
        args.name,
        config_from_args(args),
        out=out,
        settings=settings,
        command=command,
        plots=not args.no_plots,
        store=args.store,
        workers=args.workers,
        threads_per_worker=args.threads_per_worker,
        ray_address=args.ray_address,
        ray_num_gpus=args.ray_gpus,
        device=args.device,
        imports=args.imports,
    )
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.main_table is not None:
        print(result.main_table.to_text())  # at most 120 columns wide; every table in full in the reports
    else:
        print("no finished runs to tabulate")
    print(f"\nresults: {result.results}\nreport:  {result.files.markdown}\n         {result.files.html}")
    print(f"reproduce: {command}")
    if result.errors:
        print(f"{len(result.errors)} cells failed (see {result.results}); a rerun retries them", file=sys.stderr)
        return 1
    return 0


def _say_cost(args: argparse.Namespace, config, settings, out: str) -> None:
    """Before the run: cells, models to train vs stored, and a time estimate (:mod:`oblivio.experiments.bench_cost`)."""
    from pathlib import Path

    from ..experiments import Experiment
    from ..experiments.bench import benchmark_cells, get_benchmark
    from ..experiments.bench_cost import estimate_cost

    if get_benchmark(args.name).run is not None:  # not a grid of cells (tmu-cost)
        return
    data = Experiment(config, store=args.store, progress=False).data
    cells, _ = benchmark_cells(args.name, config, settings=settings, data=data)
    estimate = estimate_cost(config, cells, results=Path(out) / "results.jsonl", store=args.store, data=data)
    text = f"{args.name}: {estimate.describe(workers=args.workers)}"
    print(
        "\n".join(textwrap.fill(line, width=MAX_WIDTH, subsequent_indent="    ") for line in text.splitlines()),
        flush=True,
    )


def _command(args: argparse.Namespace, out: str) -> str:
    parts = ["oblivio", "bench", args.name, "--preset", args.preset]
    if args.classes is not None:
        parts += ["--classes", ",".join(map(str, args.classes))]
    parts += ["--seeds", str(args.seeds)]
    if args.methods:
        parts += ["--methods", args.methods]
    if args.count != 100:
        parts += ["--count", str(args.count)]
    for flag in ("dataset", "data_root", "train_size", "model", "recipe", "epochs"):
        if getattr(args, flag, None) is not None:
            parts += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    if args.model_options is not None:
        parts += ["--model-options", json.dumps(args.model_options)]
    if args.name == "forget-quality" or args.n_models != 16:
        parts += ["--n-models", str(args.n_models)]
    if args.scenario:
        parts += ["--scenario", args.scenario]
    if args.seed is not None:
        parts += ["--seed", str(args.seed)]
    for module in args.imports:
        parts += ["--import", module]
    parts += ["--out", out]
    return shlex.join(parts)


def _parse_methods(text: str | None) -> list | None:
    """``a,b,c`` or a JSON list (names and method-spec objects) into the settings' method list."""
    if not text:
        return None
    if text.lstrip().startswith("["):
        import json

        from .parsing import parse_user_json

        try:
            methods = parse_user_json(text, what="--methods")
        except json.JSONDecodeError as exc:
            raise ValueError(f"--methods is not valid JSON: {exc}") from exc
        if not isinstance(methods, list) or not methods:
            raise ValueError("--methods JSON must be a non-empty list")
        return methods
    return [m.strip() for m in text.split(",") if m.strip()]
