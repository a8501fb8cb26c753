"""The worker side of the benchmark runner: run one cell (see :mod:`oblivio.experiments.runner`) and write its row.

Also the worker entry points that process pools and Ray pickle by module path (:func:`_cell_task`, :func:`_prepare`,
:func:`_init_worker`, :func:`_ray_entry`), the per-process caches of experiments and original models, and the
thread settings that make the same cell give bit-identical numbers on every backend.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import platform
import socket
import time
import traceback
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

from .. import __version__
from ..utils import config_hash, git_commit, git_source_state, to_jsonable
from .config import ExperimentConfig
from .grid import GOLD_METHOD, ORIGINAL_METHOD, PSEUDO_METHODS, RESULT_SCHEMA, Cell, gold_distribution_seeds
from .rows import _clean, _now

log = logging.getLogger("oblivio.runner")

BULKY_INFO_KEYS: frozenset[str] = frozenset({"twin_features_raw", "forget_features_raw"})
"""``method.info`` entries not copied into result rows (unscaled duplicates of stored features)."""
LABEL_ABLATION_SETS: tuple[tuple[str, ...], ...] = (
    ("nf",),
    ("af",),
    ("cf",),
    ("nf", "af"),
    ("nf", "cf"),
    ("af", "cf"),
    ("nf", "af", "cf"),
)
"""Feature subsets of TMU's label-accuracy ablation (``EvalOptions.ablation``; TMU Table 4)."""


# ---------------------------------------------------------------------------------------------- worker side
_WORKER_STATE: dict[str, Any] = {"initialised": False}
_EXPERIMENTS: OrderedDict[tuple, Any] = OrderedDict()
_ORIGINALS: OrderedDict[tuple, Any] = OrderedDict()


def _set_threads(threads: int) -> None:
    """Use ``threads`` threads in torch's intra-op pool and in every BLAS / OpenMP pool already loaded (numpy,
    scikit-learn): a float reduction split over a different number of threads sums in another order, so the same
    cell gives other numbers (measured: issue 9). threadpoolctl (a scikit-learn dependency) reaches the pools that
    an environment variable set after import no longer can."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(int(threads))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(threads))


@contextlib.contextmanager
def _threads_in_process(threads: int | None) -> Iterator[None]:
    """:func:`_set_threads` for the duration of an in-process run, then the caller's settings back."""
    if not threads:
        yield
        return
    from threadpoolctl import threadpool_limits

    before_env, before_torch = os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()
    with threadpool_limits(limits=int(threads)):
        torch.set_num_threads(int(threads))
        os.environ["OMP_NUM_THREADS"] = str(threads)
        try:
            yield
        finally:
            torch.set_num_threads(before_torch)
            if before_env is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = before_env


def thread_counts() -> dict[str, Any]:
    """The thread counts that can change a result: torch intra-op / inter-op, and each BLAS / OpenMP pool
    (``{"openblas": 1, "openmp": 1}``...), for provenance.

    Example:
        >>> sorted(thread_counts())[:2]
        ['blas_openmp', 'torch_interop_threads']
    """
    pools: dict[str, int] = {}
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            name = str(pool.get("internal_api") or pool.get("user_api"))
            pools[name] = max(pools.get(name, 0), int(pool.get("num_threads") or 0))
    except Exception:  # noqa: BLE001 - provenance must not fail a finished cell
        pools = {}
    return {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "blas_openmp": dict(sorted(pools.items())),
    }


def _init_worker(threads: int | None, imports: Sequence[str]) -> None:
    """Per-process setup: torch / BLAS threads and the plugin modules that register extra methods."""
    if threads:
        _set_threads(int(threads))
    for name in imports:
        importlib.import_module(name)
    _WORKER_STATE["initialised"] = True


def _experiment(config: ExperimentConfig, store: str | None, device: str | None):
    from .pipeline import Experiment

    key = (config_hash(to_jsonable(config)), store, device)
    if key not in _EXPERIMENTS:
        _EXPERIMENTS[key] = Experiment(config, store=store, device=device, progress=False)
        while len(_EXPERIMENTS) > 4:
            _EXPERIMENTS.popitem(last=False)
    return _EXPERIMENTS[key]


def _original(exp, seed: int):
    """The original model with its training record (a :class:`~oblivio.experiments.pipeline.TrainedModel`)."""
    key = (id(exp), seed)
    if key not in _ORIGINALS:
        _ORIGINALS[key] = exp.original_with_meta(seed=seed)
        while len(_ORIGINALS) > 2:
            _ORIGINALS.popitem(last=False)
    return _ORIGINALS[key]


def _forget_class(exp, spec) -> tuple[int | None, str | None]:
    """The forget class (index and name) of a class-based request, else (None, None)."""
    from ..scenarios import resolve_class

    cls = getattr(spec, "cls", None)
    if cls is None:
        return None, None
    k = resolve_class(exp.data.train, cls)
    return k, exp.data.train.classes[k]


def _forget_scores(model, forget) -> list[float]:
    from ..metrics.forget_quality import logit_scaled_confidence
    from ..training.evaluate import predict_logits

    return logit_scaled_confidence(predict_logits(model, forget).double(), forget.labels).tolist()


def _label_accuracy(ctx) -> dict:
    """Generalization-label accuracy of a method that predicts which ``D_f`` samples the gold model gets right.

    ``label_accuracy``, ``label_accuracy_null`` (the fair null: the expected label accuracy of a random subset of
    the same size), ``label_kappa`` (Cohen's κ against the gold labels) and ``gold_easy_rate``, when the method's
    ``info`` holds ``predicted_labels`` (TMU, :class:`~oblivio.methods.tmu.info.TMUInfo`) for every forget sample.
    """
    import numpy as np

    from ..methods.tmu.info import PREDICTED_LABELS
    from ..metrics.alignment import cohen_kappa, random_subset_agreement
    from .analyses import label_accuracy

    predicted = ctx.info.get(PREDICTED_LABELS)
    if predicted is None or len(predicted) != len(ctx.forget):
        return {}
    gold_labels = _gold_labels(ctx.logits("gold", "forget"), ctx.forget)
    return {
        "label_accuracy": label_accuracy(predicted, gold_labels),
        "label_accuracy_null": random_subset_agreement(predicted, gold_labels.numpy()),
        "label_kappa": cohen_kappa(np.asarray(predicted).astype(int), gold_labels.numpy().astype(int)),
        "gold_easy_rate": float(gold_labels.float().mean()),
    }


def _gold_labels(gold_logits, forget) -> torch.Tensor:
    """``[M_g(x) == y]`` on ``D_f`` as a long tensor (1 = easy: the gold model gets it right)."""
    return (torch.from_numpy(gold_logits).argmax(1) == forget.labels).long()


def _label_ablation(info: dict, gold, forget, *, seed: int) -> dict | None:
    """``{feature_set: label_accuracy}`` of TMU's feature ablation, when the run stored its features."""
    from ..methods.tmu.info import PREDICTED_LABELS, TWIN_FEATURES

    predicted = info.get(PREDICTED_LABELS)
    if predicted is None or len(predicted) != len(forget) or TWIN_FEATURES not in info:
        return None
    from ..training.evaluate import predict_logits
    from .analyses import feature_ablation

    gold_labels = _gold_labels(predict_logits(gold, forget).double().numpy(), forget)
    try:
        return feature_ablation(info, gold_labels, feature_sets=LABEL_ABLATION_SETS, seed=seed)
    except ValueError as exc:  # the run did not compute every feature
        log.warning("label-accuracy ablation skipped: %s", exc)
        return None


def _label_accuracy_extra():
    from ..metrics.extras import Extra

    return Extra("label-accuracy", _label_accuracy, needs=("gold",))


AMORTISED_REQUESTS: tuple[int, ...] = (1, 10, 100)
"""Requests over which a method's one-off evidence cost (K-fold training) is spread in ``rte_cpu_amortised_<R>``."""


def _provide_evidence(exp, method, train_seed: int) -> dict | None:
    """Fill a TMU variant's ``evidence`` (issue 23) from the store: the K-fold held-out outputs and / or the original's
    training dynamics (both computed once per original). Returns the one-off cost of that evidence (the K-fold models'
    training, CPU seconds and wall seconds; the dynamics cost nothing) or None when the method reads none."""
    need = method.needed_evidence() if hasattr(method, "needed_evidence") else ()
    if not need:
        return None
    from ..methods.tmu.evidence import HeldOutEvidence

    ev = HeldOutEvidence()
    cost = {"cpu_seconds": 0.0, "seconds": 0.0, "kfold_models": 0}
    if "kfold" in need:
        folds = int(method.evidence_folds)
        held = exp.kfold_evidence(seed=train_seed, folds=folds)
        ev.ids, ev.kfold_logits, ev.folds = held["ids"], held["logits"], folds
        for k in range(folds):
            meta = exp.store_meta("kfold", {**exp.config.model_key(), "seed": train_seed, "kfold": folds, "fold": k})
            cost["cpu_seconds"] += float(meta.get("train_cpu_seconds") or 0.0)
            cost["seconds"] += float(meta.get("train_seconds") or 0.0)
        cost["kfold_models"] = folds
    if "dynamics" in need:
        ev.dynamics = exp.original_dynamics(seed=train_seed, recompute=True)
    method.evidence = ev
    return cost


def amortised_cost(info: dict, evidence_cost: dict, reference) -> dict:
    """The method's CPU cost per request with its one-off evidence spread over R requests, against the gold
    training's: ``rte_cpu_amortised_<R>`` = (method CPU s + evidence CPU s / R) / gold CPU s, R in
    :data:`AMORTISED_REQUESTS`."""
    ref = getattr(reference, "cpu_seconds", None)
    own = info.get("cpu_seconds")
    if not ref or own is None:
        return {}
    out = {"evidence_cpu_seconds": evidence_cost["cpu_seconds"]}
    for r in AMORTISED_REQUESTS:
        out[f"rte_cpu_amortised_{r}"] = (float(own) + evidence_cost["cpu_seconds"] / r) / float(ref)
    return out


PER_IMAGE_PREFIX = "per_image_"
"""Keys of the ``gold-distribution`` extra that hold one value per forget image; the runner moves them from the
row's ``metrics`` into ``row["per_image"]``."""


def _gold_distribution_extra(golds: list, seeds: list[int]):
    """The ``gold-distribution`` extra (issue 23) over the given gold models (:mod:`oblivio.metrics.gold_distribution`):
    for the model and, when given, the original: expected agreement E (and its integer on the n·G grid), δ to the mean
    gold accuracy, activation distance to the gold models' mean output; E* and the mean gold accuracy; per image, the
    number of gold models right and whether the model (and the original) is right, as strings of digits."""
    from ..metrics.extras import Extra
    from ..metrics.gold_distribution import best_expected_agreement, gold_distribution_metrics, gold_right_counts
    from ..training.evaluate import predict_logits

    def fn(ctx) -> dict:
        y = ctx.forget.labels.numpy()
        logits = [predict_logits(g, ctx.forget, batch_size=ctx.batch_size).double().numpy() for g in golds]
        counts = gold_right_counts([z.argmax(1) == y for z in logits])
        out: dict = {
            "gold_models": len(golds),
            "gold_mean_acc_forget": float(counts.sum()) / (len(golds) * len(y)),
            "expected_agreement_best": best_expected_agreement(counts / len(golds)),
            **gold_distribution_metrics(ctx.logits("model", "forget"), logits, y),
            f"{PER_IMAGE_PREFIX}gold_seeds": list(seeds),
            f"{PER_IMAGE_PREFIX}gold_right_counts": "".join(str(int(k)) for k in counts),
            f"{PER_IMAGE_PREFIX}forget_correct": "".join(
                "1" if c else "0" for c in ctx.logits("model", "forget").argmax(1) == y
            ),
        }
        if ctx.original is not None:
            out.update(gold_distribution_metrics(ctx.logits("original", "forget"), logits, y, prefix="original_"))
            out[f"{PER_IMAGE_PREFIX}original_forget_correct"] = "".join(
                "1" if c else "0" for c in ctx.logits("original", "forget").argmax(1) == y
            )
        return out

    return Extra("gold-distribution", fn)


def _prepare(payload: dict) -> dict:
    """Train (or load) the original and gold models one cell needs; run before the cells in parallel backends."""
    config, store, device = payload["config"], payload["store"], payload["device"]
    exp = _experiment(config, store, device)
    t0 = time.perf_counter()
    try:
        if payload["kind"] == "original":
            exp.original(seed=payload["seed"])
        else:
            split = exp.forget_split(payload["scenario"], seed=payload["request"])
            exp.gold(split, seed=payload["seed"])
    except Exception as exc:  # the cells that need this model record the error themselves
        log.warning("preparing %s model failed: %s", payload["kind"], exc)
        return {"ok": False, "error": repr(exc)}
    return {"ok": True, "seconds": time.perf_counter() - t0}


def run_cell(
    config: ExperimentConfig,
    cell: Cell,
    *,
    store: str | os.PathLike | None = None,
    device: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> dict:
    """Run one cell in this process and return its result row (raises on failure).

    Args:
        config: the experiment (dataset, model, recipe) the original and gold models come from.
        cell: scenario, method, seeds and evaluation options.
        store: the checkpoint store folder (None: the default store).
        device: where models live (None: CUDA when present).
        tags: extra JSON-able fields copied into the row (e.g. ``{"benchmark": "tmu-table1"}``).

    Returns:
        The row: ``key``, ``status``, ``scenario``, ``forget_class``, ``n_forget``, ``method``, ``method_name``,
        ``hparams``, ``seeds``, ``options``, ``info``, ``metrics``, ``cost``, ``scores`` (when asked), ``tags``
        and ``provenance``.
    """
    from ..methods import create_method
    from ..metrics.cost_ratio import RunCost
    from ..metrics.report import evaluate_unlearning

    started, t_wall = _now(), time.perf_counter()
    store = str(store) if store is not None else None
    exp = _experiment(config, store, device)
    seeds = cell.seeds
    split = exp.forget_split(cell.scenario, seed=seeds.request)
    splits = exp.unlearning_splits(split)
    original = _original(exp, seeds.train)
    gold = exp.gold_with_meta(split, seed=seeds.gold)
    gold_meta = gold.meta

    if cell.method.name in PSEUDO_METHODS and cell.method.hparams:
        raise ValueError(
            f"the {cell.method.name!r} pseudo-method takes no hyper-parameters, got {dict(cell.method.hparams)}"
        )
    if cell.method.name == ORIGINAL_METHOD:
        other = exp.original_with_meta(seed=seeds.unlearn)
        unlearned, ref = other.model, other.cost
        hparams: dict = {}
        info = {
            "seconds": 0.0,
            "cpu_seconds": 0.0,
            "forward_samples": 0,
            "backward_samples": 0,
            "epochs": other.meta.get("epochs"),
            "train_cpu_seconds": ref.cpu_seconds,
            "note": "an original model (trained on all of D, D_f included) with the unlearning seed: forgets nothing",
        }
    elif cell.method.name == GOLD_METHOD:
        if seeds.unlearn == seeds.gold:
            raise ValueError(
                f"the {GOLD_METHOD!r} pseudo-method needs Seeds.unlearn != Seeds.gold "
                f"(both {seeds.gold}): it compares two gold models"
            )
        second = exp.gold_with_meta(split, seed=seeds.unlearn)
        unlearned, ref = second.model, second.cost
        hparams = {}
        info = {
            "seconds": ref.seconds,
            "cpu_seconds": ref.cpu_seconds,
            "forward_samples": ref.forward_samples,
            "backward_samples": ref.backward_samples,
            "epochs": second.meta.get("epochs"),
            "note": "second gold model (retrained from scratch on D_r) with the unlearning seed",
        }
    else:
        method = create_method(cell.method.name, **_with_recipe_class_weights(config, cell.method))
        hparams = method.hparams()
        evidence_cost = _provide_evidence(exp, method, seeds.train)
        unlearned = method(
            original.model,
            forget=splits.forget,
            retain=splits.retain,
            holdout=splits.holdout,
            seed=seeds.unlearn,
            progress=False,
        )
        info = {k: v for k, v in method.info.items() if k not in BULKY_INFO_KEYS}
        if evidence_cost is not None:
            info["evidence_cost"] = evidence_cost

    random_model = exp.build_model(seed=seeds.eval) if cell.options.zrf else None
    # one assembly point: the original model as the "do nothing" reference (issue 11), TTA, TMU's label accuracy
    # and the cost against the gold training (RTE on wall and CPU seconds, sample-pass ratio; the gold's whole
    # training, resumed or not, and CPU seconds and sample-passes are robust to a busy machine)
    extras = ["original", *(["tta"] if cell.options.tta else []), _label_accuracy_extra(), "cost"]
    if cell.options.gold_models:  # issue 23: the gold distribution (G gold models, trained once through the store)
        g_seeds = gold_distribution_seeds(seeds.gold, cell.options.gold_models)
        extras.append(_gold_distribution_extra([exp.gold(split, seed=g) for g in g_seeds], g_seeds))
    metrics = evaluate_unlearning(
        unlearned,
        forget=splits.forget,
        retain=splits.retain,
        test=splits.test,
        gold=gold.model,
        random_model=random_model,
        mia=cell.options.mia,
        seed=seeds.eval,
        extras=extras,
        original=original.model,
        info=info,
        cost=RunCost.from_mapping(info),
        reference_cost=gold.cost,
    )
    per_image = {k[len(PER_IMAGE_PREFIX) :]: metrics.pop(k) for k in list(metrics) if k.startswith(PER_IMAGE_PREFIX)}
    cost = {
        **metrics.pop_group("cost"),
        "original_train_seconds": original.train_seconds,
        "gold_epochs": gold_meta.get("epochs"),
    }
    if info.get("evidence_cost"):
        cost.update(amortised_cost(info, info["evidence_cost"], gold.cost))
    label_ablation = (
        _label_ablation(info, gold.model, splits.forget, seed=seeds.eval) if cell.options.ablation else None
    )
    scores = None
    if cell.options.scores:
        scores = {
            "forget": _forget_scores(unlearned, splits.forget),
            "gold_forget": _forget_scores(gold.model, splits.forget),
        }

    forget_class, forget_class_name = _forget_class(exp, split.spec)
    row = {
        "key": cell.key(config),
        "status": "ok",
        "schema": RESULT_SCHEMA,
        "scenario": cell.scenario,
        "forget_class": forget_class,
        "forget_class_name": forget_class_name,
        "n_forget": len(splits.forget),
        "n_retain": len(splits.retain),
        "method": cell.method.display,
        "method_name": cell.method.name,
        "hparams": hparams,
        "seeds": seeds.as_dict(),
        "options": cell.options.key(),
        "info": info,
        "metrics": dict(metrics),
        "cost": cost,
        "tags": dict(tags or {}),
        "provenance": {
            **_provenance(config, exp),
            "started_at": started,
            "finished_at": _now(),
            "wall_seconds": time.perf_counter() - t_wall,
            "forget_ids_hash": split.key,
            "gold_meta": {k: gold_meta.get(k) for k in ("epochs", "train_seconds", "git_commit", "torch_threads")},
            "original_torch_threads": original.meta.get("torch_threads"),
        },
    }
    if per_image:
        row["per_image"] = per_image
    if scores is not None:
        row["scores"] = scores
    if label_ablation is not None:
        row["label_ablation"] = label_ablation
    return _clean(row)


def _with_recipe_class_weights(config: ExperimentConfig, spec) -> dict:
    """The method's hyper-parameters, plus the recipe's ``class_weights`` for a method that takes them (SPEC §9:
    methods that fine-tune on ``D_r`` use the recipe's class weights) when the recipe has any and the spec does not
    set its own."""
    from dataclasses import fields as dc_fields

    from ..methods.base import METHODS

    hparams = dict(spec.hparams)
    weights = config.recipe.class_weights
    if weights == "none" or "class_weights" in hparams:
        return hparams
    if any(f.name == "class_weights" and f.init for f in dc_fields(METHODS.get(spec.name))):
        hparams["class_weights"] = weights
    return hparams


def _provenance(config: ExperimentConfig, exp) -> dict:
    if "git_commit" not in _WORKER_STATE:
        _WORKER_STATE["git_commit"] = git_commit(os.path.dirname(__file__))
    return {
        "config": to_jsonable(config),
        "config_hash": config_hash(to_jsonable(config)),
        "class_weights": to_jsonable(config.recipe.class_weights),  # the recipe's (left out of config while "none")
        "oblivio_version": __version__,
        "git_commit": _WORKER_STATE["git_commit"],
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(exp.device),
        **thread_counts(),
        # uncommitted edits of the package at the time this cell ran (HEAD alone does not name the code then)
        **git_source_state(os.path.dirname(os.path.dirname(__file__))),
    }


def _cell_task(payload: dict) -> dict:
    """Worker entry: run one cell; a failure becomes an ``error`` row (unless the driver asked to raise)."""
    cell: Cell = payload["cell"]
    try:
        return run_cell(payload["config"], cell, store=payload["store"], device=payload["device"], tags=payload["tags"])
    except Exception as exc:
        if payload["on_error"] == "raise":
            raise
        return _clean(
            {
                "key": cell.key(payload["config"]),
                "status": "error",
                "scenario": cell.scenario,
                "method": cell.method.display,
                "method_name": cell.method.name,
                "seeds": cell.seeds.as_dict(),
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
                "tags": dict(payload["tags"] or {}),
                "provenance": {"host": socket.gethostname(), "finished_at": _now(), "oblivio_version": __version__},
            }
        )


def _ray_entry(fn_name: str, payload: dict, threads: int | None, imports: tuple[str, ...]) -> dict:
    if not _WORKER_STATE["initialised"]:
        _init_worker(threads, imports)
    return {"_cell": _cell_task, "_prepare": _prepare}[fn_name](payload)


__all__ = ["BULKY_INFO_KEYS", "LABEL_ABLATION_SETS", "run_cell", "thread_counts"]
