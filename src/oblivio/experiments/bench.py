"""Named benchmarks that reproduce the papers' tables (SPEC §7), run through :class:`Runner`.

=================  ==========================================================================================
name               what it runs
=================  ==========================================================================================
``tmu-table1``     per class, ``class-subset:k:100``; finetune, neggrad, random-label, bad-teacher, tmu, the
                   rate-matched ``tmu.random-control`` and gold. Tables: TMU Table 1 (accuracies, δ), Table 3
                   (activation distance), a summary, per-method means with 95% bootstrap CIs, paired tests.
``tmu-table4``     TMU's generalization-label predictor per feature set (NF / AF / CF ablation), per class.
``tmu-figure3``    TMU's label accuracy as ``|D_f|`` grows (2 % to 80 % of a class, as 100 → 4000 of 5000).
``two-stage``      forget ratios 1, 2, 5, 10 % (``random:p``); two-stage with minimum and maximum mislabel and
                   gold; test-time augmentation on. Tables 2-5 of the two-stage paper.
``forget-quality`` NeurIPS 2023 forget quality with N ≥ 16 gold models and N runs per method from one ``M_o``.
``tmu-cost``       TMU's per-request cost vs retraining (CPU seconds, sample-passes), cold and warm, per stage
                   (:mod:`oblivio.experiments.tmu_cost`; not a grid of cells).
=================  ==========================================================================================

Studies (:mod:`oblivio.experiments.studies`) register further names; each owns its protocol and its tables.

Methods that are not registered (``oblivio.methods.list_methods()``) are skipped with a warning, written into
the report. Results go to ``out/results.jsonl`` (resumable), ``out/report.md`` and ``out/report.html``.

Example:
    >>> from oblivio.experiments.bench import list_benchmarks
    >>> list_benchmarks()
    ['forget-quality', 'study-004', 'tmu-cost', 'tmu-figure3', 'tmu-table1', 'tmu-table4', 'two-stage']
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..registry import Registry
from .config import ExperimentConfig, get_preset
from .report import ReportFiles, Table, build_tables, write_report
from .runner import GOLD_METHOD, Cell, EvalOptions, Grid, MethodSpec, Runner

log = logging.getLogger("oblivio.bench")

BENCHMARKS: Registry = Registry("benchmark")

TMU_TABLE1_METHODS: tuple = (
    "finetune",
    "neggrad",
    "random-label",
    "finetune.cpu",
    "bad-teacher",
    "tmu",
    "tmu.random-control",
    "tmu.paper",
    GOLD_METHOD,
)
"""TMU Table 1's columns (the baselines at their reference defaults, fine-tune also at our CPU tuning), TMU (the
issue-15 default) beside the paper's literal procedure (``tmu.paper``), and the two controls of SPEC §6:
``tmu.random-control`` (TMU's aligned step with a random hard set of TMU's own size) and the ``gold`` pseudo-method
(a second gold model: the noise floor)."""
FORGET_QUALITY_METHODS: tuple[str, ...] = ("finetune", "neggrad+", "bad-teacher", "scrub", "tmu", GOLD_METHOD)
FIGURE3_FRACTIONS: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8)
"""``|D_f|`` as a fraction of the smallest class (the paper's 100 … 4000 of 5000 CIFAR-10 images per class)."""
TWO_STAGE_RATIOS: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1)
"""Forget ratios of two-stage Table 5 (1-10 %)."""


@dataclass
class BenchSettings:
    """What a user may change about a benchmark.

    Args:
        classes: forget classes (default: the benchmark's own choice, usually every class).
        seeds: replicates (each with its own training, gold, unlearning and evaluation seeds).
        methods: method names (or :class:`MethodSpec`) replacing the benchmark's list.
        count: samples per class-subset request (TMU: 100).
        n_models: models per side for ``forget-quality``.
        scenario: the forget request for ``forget-quality`` (default ``random:0.1``, the challenge's 10 %).
    """

    classes: Sequence[int] | None = None
    seeds: int = 1
    methods: Sequence[str | MethodSpec] | None = None
    count: int = 100
    n_models: int = 16
    scenario: str | None = None


@dataclass
class Benchmark:
    """A named benchmark: how to build its cells and which tables to report.

    Attributes:
        name: registry name.
        description: what it measures (one paragraph).
        tables: report table keys (:data:`oblivio.experiments.report.TABLES`), the main one first.
        build: ``build(data, config, settings) -> (cells, notes)``.
        run: for a benchmark that is not a grid of cells: ``run(config, out=, settings=, command=, **runner_kwargs)
            -> BenchmarkResult``, called by :func:`run_benchmark` instead of the runner.
    """

    name: str
    description: str
    tables: tuple[str, ...]
    build: Callable[[Any, ExperimentConfig, BenchSettings], tuple[list[Cell], list[str]]]
    run: Callable[..., Any] | None = None

    @property
    def main_table(self) -> str:
        return self.tables[0]


def register_benchmark(bench: Benchmark) -> Benchmark:
    BENCHMARKS.register(bench.name)(bench)
    return bench


def list_benchmarks() -> list[str]:
    _load_studies()
    return BENCHMARKS.names()


def get_benchmark(name: str) -> Benchmark:
    _load_studies()
    return BENCHMARKS.get(name)


def _load_studies() -> None:
    """Import the study plug-ins (:mod:`oblivio.experiments.studies`): each registers its own benchmark."""
    from .studies import load_studies

    load_studies()


# ---------------------------------------------------------------------------------------------- helpers
def _available(methods: Sequence[str | MethodSpec], notes: list[str]) -> list[MethodSpec]:
    from ..methods import METHODS

    specs, missing = [], []
    for m in methods:
        spec = MethodSpec.parse(m)
        if spec.name == GOLD_METHOD or spec.name in METHODS:
            specs.append(spec)
        else:
            missing.append(spec.name)
    if missing:
        msg = f"methods not registered, skipped: {', '.join(dict.fromkeys(missing))}"
        log.warning(msg)
        notes.append(msg)
    if not specs:
        raise ValueError(
            f"none of the methods {[MethodSpec.parse(m).name for m in methods]} is registered; "
            "see oblivio.methods.list_methods()"
        )
    return specs


def _classes(data, settings: BenchSettings, default: Sequence[int] | None = None) -> list[int]:
    n = data.num_classes
    classes = (
        list(settings.classes) if settings.classes is not None else list(default if default is not None else range(n))
    )
    bad = [k for k in classes if not 0 <= int(k) < n]
    if bad:
        raise ValueError(f"unknown classes {bad}: the dataset has classes 0..{n - 1}")
    return [int(k) for k in classes]


def _method_field(name: str, candidates: Sequence[str]) -> tuple[str, dataclasses.Field] | None:
    from ..methods import METHODS

    if name not in METHODS:
        return None
    fields = {f.name: f for f in dataclasses.fields(METHODS.get(name)) if f.init}
    for c in candidates:
        if c in fields:
            return c, fields[c]
    return None


def _grid(
    scenarios: list[str],
    methods: list[MethodSpec],
    config: ExperimentConfig,
    settings: BenchSettings,
    options: EvalOptions = EvalOptions(),
) -> list[Cell]:
    if settings.seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {settings.seeds}")
    return Grid(
        scenarios=scenarios, methods=methods, seeds=list(range(settings.seeds)), options=options, base_seed=config.seed
    ).cells()


def _check_count(data, classes: Sequence[int], count: int) -> None:
    import numpy as np

    sizes = np.bincount(data.train.labels.numpy(), minlength=data.num_classes)
    small = [k for k in classes if int(sizes[k]) <= count]
    if small:
        raise ValueError(f"classes {small} have at most {count} training samples; lower --count")


# ---------------------------------------------------------------------------------------------- definitions
def _build_tmu_table1(data, config, settings):
    notes: list[str] = []
    classes = _classes(data, settings)
    _check_count(data, classes, settings.count)
    methods = _available(settings.methods or TMU_TABLE1_METHODS, notes)
    return _grid([f"class-subset:{k}:{settings.count}" for k in classes], methods, config, settings), notes


def _build_tmu_table4(data, config, settings):
    notes: list[str] = []
    classes = _classes(data, settings)
    _check_count(data, classes, settings.count)
    methods = _available(settings.methods or ["tmu.predictor"], notes)  # the predictor is what these score
    notes.append(
        "one full TMU run (NF+AF+CF) per cell; each feature subset's label accuracy comes from a "
        "predictor refitted on that run's twin features (oblivio.experiments.analyses.feature_ablation)"
    )
    return _grid(
        [f"class-subset:{k}:{settings.count}" for k in classes],
        methods,
        config,
        settings,
        EvalOptions(mia=False, ablation=True),
    ), notes


def _build_tmu_figure3(data, config, settings):
    import numpy as np

    notes: list[str] = []
    classes = _classes(data, settings, default=(0, 1, 2))
    counts = np.bincount(data.train.labels.numpy(), minlength=data.num_classes)
    smallest = int(min(counts[k] for k in classes))
    sizes = sorted({max(1, min(smallest - 1, int(round(f * smallest)))) for f in FIGURE3_FRACTIONS})
    notes.append(
        f"|D_f| sizes {sizes} ({', '.join(f'{f:g}' for f in FIGURE3_FRACTIONS)} of the smallest "
        f"chosen class, {smallest} images)"
    )
    methods = _available(settings.methods or ["tmu.predictor"], notes)  # the predictor is what these score
    scenarios = [f"class-subset:{k}:{n}" for k in classes for n in sizes]
    return _grid(scenarios, methods, config, settings, EvalOptions(mia=False)), notes


def _two_stage_variants(notes: list[str], recipe=None) -> list[MethodSpec]:
    """Minimum mislabel (``two-stage``, the paper's method) and maximum mislabel (the named variant
    ``two-stage.max``), retraining with the experiment's own recipe (so epochs compare with gold)."""
    from ..methods import METHODS

    extra = {"recipe": recipe} if recipe is not None and _method_field("two-stage", ("recipe",)) else {}
    specs = [MethodSpec("two-stage", dict(extra), label="two-stage[min]")]
    if "two-stage.max" in METHODS:
        specs.append(MethodSpec("two-stage.max", dict(extra), label="two-stage[max]"))
    else:
        notes.append("two-stage.max is not registered: Table 4 has no min-vs-max comparison")
    return specs


def _build_two_stage(data, config, settings):
    notes: list[str] = []
    from ..methods import METHODS

    if settings.methods:
        methods = _available(settings.methods, notes)
    elif "two-stage" in METHODS:
        methods = _two_stage_variants(notes, config.recipe) + [MethodSpec(GOLD_METHOD)]
    else:
        methods = _available(["two-stage", GOLD_METHOD], notes)
    scenarios = [f"random:{p:g}" for p in TWO_STAGE_RATIOS]
    if settings.classes is not None:
        notes.append("--classes is ignored by two-stage (its requests are random forget ratios)")
    return _grid(scenarios, methods, config, settings, EvalOptions(tta=True)), notes


def _build_forget_quality(data, config, settings):
    from .forget_quality_run import forget_quality_cells

    notes: list[str] = []
    if settings.n_models < 16:
        notes.append(
            f"N = {settings.n_models} models per side: fewer than the 16 this benchmark asks for; "
            "F is coarse (few ε buckets)"
        )
    methods = _available(settings.methods or FORGET_QUALITY_METHODS, notes)
    scenario = settings.scenario or "random:0.1"
    if settings.seeds != 1:
        notes.append("--seeds is ignored by forget-quality (N = --n-models runs per method)")
    cells = forget_quality_cells(
        methods,
        scenario=scenario,
        n_models=settings.n_models,
        train_seed=config.seed,
        request_seed=config.seed,
        gold_seed=config.seed,
    )
    return cells, notes


register_benchmark(
    Benchmark(
        "tmu-table1",
        "TMU Table 1 protocol: for each class, forget 100 random training images of that class; compare each method's "
        "test and forget accuracy with a gold model retrained without them (δ = |ACC_Df(M_u) − ACC_Df(M_g)|), plus "
        "the activation distance to gold (TMU Table 3), MIA variants and cost.",
        ("tmu-table1", "alignment-ci", "paired", "predictor-null", "tmu-table3", "summary"),
        _build_tmu_table1,
    )
)
register_benchmark(
    Benchmark(
        "tmu-table4",
        "TMU Table 4: accuracy of the generalization-label predictor (does the gold model classify x ∈ D_f "
        "correctly?) against the real gold model, per feature set (NF, AF, CF and their combinations).",
        ("tmu-table4", "predictor-null", "tmu-table1", "summary"),
        _build_tmu_table4,
    )
)
register_benchmark(
    Benchmark(
        "tmu-figure3",
        "TMU Figure 3: predictor label accuracy (and δ) as the forget set grows from 2% to 80% of a class.",
        ("tmu-figure3", "summary"),
        _build_tmu_figure3,
    )
)
register_benchmark(
    Benchmark(
        "two-stage",
        "Two-stage retraining, Tables 2-5: accuracy of the retrained vs a scratch (gold) model, epochs to the saving "
        "point, forget accuracy under test-time augmentation with minimum vs maximum mislabel, and neutralisation "
        "epochs against the forget ratio (1-10%).",
        ("two-stage-table2", "two-stage-table3", "two-stage-table4", "two-stage-table5", "summary"),
        _build_two_stage,
    )
)


def _run_tmu_cost(config, *, out, settings, command=None, **runner_kwargs):
    from .tmu_cost import run_tmu_cost

    notes = [
        f"runner option {k} is ignored by tmu-cost (it runs in this process)"
        for k, v in runner_kwargs.items()
        if k not in ("store", "device") and v not in (None, 1, 0, [], ())
    ]
    classes = list(settings.classes) if settings.classes is not None else [0, 1, 2]
    result = run_tmu_cost(
        config,
        out=out,
        classes=classes,
        count=settings.count,
        store=runner_kwargs.get("store"),
        device=runner_kwargs.get("device"),
        command=command,
    )
    files = ReportFiles(Path(out) / "report.md", Path(out) / "report.html", result["tables"])
    return BenchmarkResult("tmu-cost", [], [], result["tables"], files, Path(out) / "tmu-cost.json", notes)


register_benchmark(
    Benchmark(
        "tmu-cost",
        "TMU's per-request cost against retraining (issue 10): per-stage CPU seconds (all threads) and sample-passes of "
        "a cold request (empty twin cache) and a warm one (same class profile and size), gold's retraining measured "
        "in the same run, TMU's δ and sample agreement beside the gold-vs-gold spread, and twin reuse across model "
        "versions. Writes tmu-cost.json.",
        ("tmu-cost", "tmu-cost-stages", "tmu-cost-alignment"),
        lambda data, config, settings: ([], []),
        run=_run_tmu_cost,
    )
)
register_benchmark(
    Benchmark(
        "forget-quality",
        "NeurIPS 2023 forget quality (SPEC §8): N gold models (different training seeds) and N runs of each method "
        "(different unlearning seeds) from one original model; F from the logit-scaled confidences on D_f, and the "
        "final score F × RA_u/RA_r × TA_u/TA_r. The gold row compares gold with gold (F ≈ 0.18-0.19 is the ceiling).",
        ("forget-quality", "summary"),
        _build_forget_quality,
    )
)


# ---------------------------------------------------------------------------------------------- running
@dataclass
class BenchmarkResult:
    """What :func:`run_benchmark` produced.

    Attributes:
        name: the benchmark.
        rows: the finished rows of its cells (this run's and earlier runs').
        errors: rows of cells that failed in this run.
        tables: the report tables (main one first).
        files: the markdown and HTML report paths.
        results: the JSONL results file.
        notes: warnings about the run (skipped methods...).
    """

    name: str
    rows: list[dict]
    errors: list[dict]
    tables: list[Table]
    files: ReportFiles
    results: Path
    notes: list[str] = field(default_factory=list)

    @property
    def main_table(self) -> Table | None:
        return self.tables[0] if self.tables else None


def benchmark_cells(
    name: str, config: ExperimentConfig | str, *, settings: BenchSettings | None = None, data=None
) -> tuple[list[Cell], list[str]]:
    """The cells a benchmark would run (and its notes), without running anything but the dataset load."""
    from .pipeline import Experiment

    config = get_preset(config)
    bench = get_benchmark(name)
    if data is None:
        data = Experiment(config, store=os.devnull, progress=False).data
    return bench.build(data, config, settings or BenchSettings())


def run_benchmark(
    name: str,
    config: ExperimentConfig | str = "cpu",
    *,
    out: str | os.PathLike,
    settings: BenchSettings | None = None,
    command: str | None = None,
    plots: bool = True,
    **runner_kwargs: Any,
) -> BenchmarkResult:
    """Run (or resume) a named benchmark and write its results and report into ``out``.

    Args:
        name: one of :func:`list_benchmarks`.
        config: experiment config or preset name.
        out: output folder: ``results.jsonl``, ``report.md``, ``report.html``.
        settings: classes, seeds, methods... (:class:`BenchSettings`).
        command: the command line that reproduces the run (written into the report).
        plots: embed figures in the HTML report (needs matplotlib).
        **runner_kwargs: ``store``, ``workers``, ``threads_per_worker``, ``ray_address``, ``device``,
            ``imports``... (see :class:`Runner`).
    """
    config = get_preset(config)
    bench = get_benchmark(name)
    settings = settings or BenchSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if bench.run is not None:
        return bench.run(config, out=out, settings=settings, command=command, **runner_kwargs)
    cells, notes = benchmark_cells(name, config, settings=settings)
    tags = {"benchmark": bench.name, **runner_kwargs.pop("tags", {})}
    runner = Runner(config, results=out / "results.jsonl", tags=tags, **runner_kwargs)
    rows = runner.run(cells)
    intro = [bench.description]
    if command:
        intro.append(f"Reproduce: {command}")
    intro += [f"Note: {n}" for n in notes]
    if runner.errors:
        intro.append(
            f"{len(runner.errors)} cells failed in this run (status 'error' in results.jsonl; a rerun "
            f"retries them), e.g. {runner.errors[0].get('error')}"
        )
    files = write_report(
        rows, out, title=f"oblivio benchmark: {bench.name}", tables=bench.tables, intro=intro, plots=plots
    )
    return BenchmarkResult(bench.name, rows, runner.errors, files.tables, files, out / "results.jsonl", notes)


__all__ = [
    "BENCHMARKS",
    "BenchSettings",
    "Benchmark",
    "BenchmarkResult",
    "benchmark_cells",
    "build_tables",
    "get_benchmark",
    "list_benchmarks",
    "register_benchmark",
    "run_benchmark",
]
