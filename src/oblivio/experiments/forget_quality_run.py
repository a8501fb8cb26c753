"""Many-seed NeurIPS 2023 forget quality (SPEC §8): N gold models and N runs of a method from one ``M_o``.

Cell ``i`` of a method (``i = 0 .. N-1``) uses the same original model (training seed ``train_seed``), gold
training seed ``gold_seed + i`` and unlearning seed ``unlearn_seed + i``, and stores the logit-scaled confidences
of both its unlearned model and its gold model on ``D_f``. The ``N`` cells of a method therefore give the ``N``
unlearned and the ``N`` retrained score vectors of the metric. The cells go through :class:`Runner`, so they run
in-process, in a process pool or on Ray, and a rerun resumes.

Example:
    >>> res = forget_quality_benchmark("tiny", "gold", scenario="class-subset:3:20", n_models=4,
    ...                                results="fq.jsonl", store="/tmp/store")  # doctest: +SKIP
    >>> res.forget_quality, res.final_score  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .config import ExperimentConfig
from .forget_quality_rows import ForgetQualityResult, forget_quality_from_rows
from .runner import EVAL_SEED_OFFSET, UNLEARN_SEED_OFFSET, Cell, EvalOptions, MethodSpec, Runner, Seeds

FQ_OPTIONS = EvalOptions(mia=False, zrf=False, tta=False, scores=True)
"""Evaluation options of forget-quality cells (scores on, the costly extras off)."""


def forget_quality_cells(
    methods: Sequence[MethodSpec | str | Mapping[str, Any]],
    *,
    scenario: str,
    n_models: int = 16,
    train_seed: int = 0,
    request_seed: int = 0,
    gold_seed: int = 0,
    unlearn_seed: int = UNLEARN_SEED_OFFSET,
    eval_seed: int = EVAL_SEED_OFFSET,
) -> list[Cell]:
    """The ``len(methods) × n_models`` cells of a forget-quality benchmark (same ``M_o``, N gold seeds, N runs).

    Raises:
        ValueError: fewer than 2 models per side, or overlapping gold and unlearning seeds (the ``gold``
            pseudo-method would then compare a gold model with itself).
    """
    if n_models < 2:
        raise ValueError(f"forget quality needs at least 2 models per side (the challenge used 512), got {n_models}")
    gold_seeds = set(range(gold_seed, gold_seed + n_models))
    if gold_seeds & set(range(unlearn_seed, unlearn_seed + n_models)):
        raise ValueError("gold and unlearning seed ranges overlap; move unlearn_seed away from gold_seed")
    specs = [MethodSpec.parse(m) for m in methods]
    return [
        Cell(
            scenario,
            m,
            Seeds(
                train=train_seed, gold=gold_seed + i, unlearn=unlearn_seed + i, eval=eval_seed + i, request=request_seed
            ),
            FQ_OPTIONS,
        )
        for m in specs
        for i in range(n_models)
    ]


def forget_quality_benchmark(
    config: ExperimentConfig | str,
    methods: Sequence[MethodSpec | str] | MethodSpec | str,
    *,
    scenario: str,
    n_models: int = 16,
    results: str | os.PathLike,
    train_seed: int = 0,
    request_seed: int = 0,
    gold_seed: int = 0,
    unlearn_seed: int = UNLEARN_SEED_OFFSET,
    **runner_kwargs: Any,
) -> ForgetQualityResult | list[ForgetQualityResult]:
    """Train N gold models, run each method N times from one ``M_o``, and score the NeurIPS forget quality.

    Args:
        config: experiment config or preset name.
        methods: one method (returns one result) or several (returns a list, in the given order).
        scenario: the forget request, e.g. ``"random:0.1"`` (the challenge's 10 %) or ``"class-subset:3:100"``.
        n_models: N models per side (the challenge used 512; 16 or more for a usable estimate).
        results: the JSONL results file (resumable).
        train_seed, request_seed: the one original model and forget request.
        gold_seed, unlearn_seed: first seeds of the N gold trainings and the N unlearning runs.
        **runner_kwargs: ``store``, ``workers``, ``ray_address``, ``imports``, ``tags``... (see :class:`Runner`).
    """
    single = isinstance(methods, (str, MethodSpec))
    if isinstance(methods, (str, MethodSpec)):
        specs = [MethodSpec.parse(methods)]
    else:
        specs = [MethodSpec.parse(m) for m in methods]
    cells = forget_quality_cells(
        specs,
        scenario=scenario,
        n_models=n_models,
        train_seed=train_seed,
        request_seed=request_seed,
        gold_seed=gold_seed,
        unlearn_seed=unlearn_seed,
    )
    runner = Runner(config, results=results, **runner_kwargs)
    rows = runner.run(cells)
    if runner.errors:
        raise RuntimeError(
            f"{len(runner.errors)} forget-quality cells failed, e.g. {runner.errors[0].get('error')}; see {results}"
        )
    by_method = {r.method: r for r in forget_quality_from_rows(rows)}
    ordered = [by_method[s.display] for s in specs]
    return ordered[0] if single else ordered


__all__ = [
    "FQ_OPTIONS",
    "ForgetQualityResult",
    "forget_quality_benchmark",
    "forget_quality_cells",
    "forget_quality_from_rows",
]
