"""The benchmark runner: a (scenario × method × seed) grid of unlearning runs, resumable, local or on Ray.

One *cell* is one run: resolve a forget request, load (or train once, through the checkpoint store) the original
model ``M_o`` and the gold model ``M_g``, run one unlearning method, score the result with
:func:`oblivio.metrics.evaluate_unlearning`, and write one JSON line. Every cell carries its own seeds, kept apart:

* ``train``: the original model's training seed (weight init and data order);
* ``gold``: the gold model's training seed (another seed = another sample of the gold distribution);
* ``unlearn``: the seed handed to the unlearning method;
* ``eval``: the seed of the evaluation (membership-inference splits, the random-init model of ZRF);
* ``request``: the seed that picks the forget samples (``class-subset:3:100`` draws 100 of class 3 with it).

Results are appended to a JSONL file as cells finish, one line per cell, each with a ``key`` (a hash of the
config, scenario, method, hyper-parameters, seeds and evaluation options). A rerun skips every cell whose key is
already in the file with ``status == "ok"``, so an interrupted benchmark resumes where it stopped.

Cells run in-process (``workers=1``, the default), in a local process pool (``workers=N``: spawned processes,
``threads_per_worker`` torch threads each), or on Ray (``ray_address="local"`` starts a local instance, any other
value is passed to ``ray.init(address=...)``; install with ``pip install oblivio[ray]``). On a multi-machine Ray
cluster the checkpoint store must be a shared folder. The driver is the only writer of the results file.

The pseudo-method ``"gold"`` stands for "retrain from scratch": its model is a second gold model (trained with
the cell's ``unlearn`` seed), so its row measures how far two gold models are from each other, the floor any
aligned method can reach.

Example:
    >>> from oblivio.experiments.runner import Grid, Runner
    >>> grid = Grid(scenarios=["class-subset:3:20"], methods=["gold"], seeds=[0])  # doctest: +SKIP
    >>> rows = Runner("tiny", results="results.jsonl", store="/tmp/store").run(grid)  # doctest: +SKIP
    >>> rows[0]["metrics"]["delta_forget"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import json
import logging
import math
import os
import platform
import socket
import time
import traceback
import contextlib
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping, Sequence

import torch

from .. import __version__
from ..utils import config_hash, git_commit, git_source_state, json_safe, to_jsonable
from .config import ExperimentConfig, get_preset

log = logging.getLogger("oblivio.runner")

GOLD_METHOD = "gold"
"""Pseudo-method name: the "unlearned" model is a second gold model (seed ``Seeds.unlearn``)."""
UNLEARN_SEED_OFFSET = 10_000
"""``Seeds.for_replicate(i)`` uses ``unlearn = 10_000 + i`` so that unlearning never reuses a training seed."""
EVAL_SEED_OFFSET = 20_000
"""``Seeds.for_replicate(i)`` uses ``eval = 20_000 + i``."""
BULKY_INFO_KEYS: frozenset[str] = frozenset({"twin_features_raw", "forget_features_raw"})
"""``method.info`` entries not copied into result rows (unscaled duplicates of stored features)."""
LABEL_ABLATION_SETS: tuple[tuple[str, ...], ...] = (("nf",), ("af",), ("cf",), ("nf", "af"), ("nf", "cf"),
                                                    ("af", "cf"), ("nf", "af", "cf"))
"""Feature subsets of TMU's label-accuracy ablation (``EvalOptions.ablation``; TMU Table 4)."""
RESULT_SCHEMA = 1
"""Version of the row layout written to the results file."""

OnError = Literal["record", "raise"]


# ---------------------------------------------------------------------------------------------- grid
@dataclass(frozen=True)
class Seeds:
    """The separate seeds of one cell (see the module docstring).

    Example:
        >>> Seeds.for_replicate(2)
        Seeds(train=2, gold=2, unlearn=10002, eval=20002, request=2)
    """

    train: int = 0
    gold: int = 0
    unlearn: int = UNLEARN_SEED_OFFSET
    eval: int = EVAL_SEED_OFFSET
    request: int = 0

    @classmethod
    def for_replicate(cls, i: int, *, base: int = 0, request: int | None = None) -> "Seeds":
        """Replicate ``i`` of a benchmark: train / gold / request ``base + i``; unlearn and eval offset from them.

        Args:
            i: replicate index (0, 1, ...).
            base: the experiment's base training seed (``ExperimentConfig.seed``).
            request: a fixed forget-request seed for every replicate (default: ``base + i``).
        """
        s = base + i
        return cls(train=s, gold=s, unlearn=UNLEARN_SEED_OFFSET + s, eval=EVAL_SEED_OFFSET + s,
                   request=s if request is None else request)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class MethodSpec:
    """A method to run: its registry ``name``, its ``hparams`` and a display ``label`` (default: the name).

    Example:
        >>> MethodSpec.parse({"name": "finetune", "hparams": {"epochs": 2}, "label": "ft-2"}).display
        'ft-2'
    """

    name: str
    hparams: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None

    @property
    def display(self) -> str:
        return self.label or self.name

    @classmethod
    def parse(cls, obj: "MethodSpec | str | Mapping[str, Any]") -> "MethodSpec":
        """A spec from a spec, a name, or ``{"name": ..., "hparams": {...}, "label": ...}``."""
        if isinstance(obj, MethodSpec):
            return obj
        if isinstance(obj, str):
            return cls(obj)
        if isinstance(obj, Mapping) and "name" in obj:
            unknown = set(obj) - {"name", "hparams", "label"}
            if unknown:
                raise ValueError(f"method spec has unknown keys {sorted(unknown)}; valid: name, hparams, label")
            return cls(str(obj["name"]), dict(obj.get("hparams") or {}), obj.get("label"))
        raise TypeError(f"cannot make a method spec from {obj!r}; give a name, a MethodSpec or a dict with 'name'")

    def key(self) -> dict:
        return {"name": self.name, "hparams": to_jsonable(dict(self.hparams)), "label": self.display}


@dataclass(frozen=True)
class EvalOptions:
    """What to compute after unlearning.

    Args:
        mia: the membership-inference metrics of :func:`evaluate_unlearning` (they fit small sklearn models).
        zrf: ZRF against a random-init model of the same architecture (seeded by ``Seeds.eval``).
        tta: forget-set accuracy under test-time augmentation (two-stage Table 4), for ``M_u`` and ``M_g``.
        scores: store the per-example logit-scaled confidences on ``D_f`` of ``M_u`` and ``M_g`` (forget quality).
        ablation: for methods that report generalization-label predictions (TMU's ``info["predicted_labels"]``),
            also retrain the predictor on each feature subset and score it against the gold labels (TMU Table 4).
            The label accuracy of the run itself is always computed when the predictions are there.
    """

    mia: bool = True
    zrf: bool = True
    tta: bool = False
    scores: bool = False
    ablation: bool = False


@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    scenario: str
    method: MethodSpec
    seeds: Seeds
    options: EvalOptions = EvalOptions()

    def key(self, config: ExperimentConfig) -> str:
        """A stable hash of everything that determines this cell's result."""
        return config_hash({"schema": RESULT_SCHEMA, "config": to_jsonable(config), "scenario": self.scenario,
                            "method": self.method.key(), "seeds": self.seeds.as_dict(),
                            "options": dataclasses.asdict(self.options)})

    def describe(self) -> str:
        s = self.seeds
        return (f"{self.scenario} | {self.method.display} | train {s.train} gold {s.gold} unlearn {s.unlearn} "
                f"eval {s.eval} request {s.request}")


@dataclass
class Grid:
    """The cartesian product scenarios × seeds × methods.

    Args:
        scenarios: forget requests in their string form (``"class-subset:3:100"``, ``"random:0.05"``...).
        methods: names, :class:`MethodSpec` s or dicts.
        seeds: replicate indices (expanded with :meth:`Seeds.for_replicate`) or explicit :class:`Seeds`.
        options: evaluation options shared by every cell.
        base_seed: added to replicate indices (the experiment's base training seed).
        request_seed: one forget-request seed for every replicate (default: one per replicate).

    Example:
        >>> g = Grid(scenarios=["class:1", "class:2"], methods=["a", "b", "c"], seeds=[0, 1])
        >>> len(g.cells())
        12
    """

    scenarios: Sequence[str]
    methods: Sequence["MethodSpec | str | Mapping[str, Any]"]
    seeds: Sequence["int | Seeds"] = (0,)
    options: EvalOptions = EvalOptions()
    base_seed: int = 0
    request_seed: int | None = None

    def cells(self) -> list[Cell]:
        if not self.scenarios:
            raise ValueError("a grid needs at least one scenario")
        if not self.methods:
            raise ValueError("a grid needs at least one method")
        methods = [MethodSpec.parse(m) for m in self.methods]
        labels = [m.display for m in methods]
        if len(set(labels)) != len(labels):
            raise ValueError(f"method labels must be unique in a grid, got {labels}; give variants a label")
        seeds = [s if isinstance(s, Seeds) else Seeds.for_replicate(int(s), base=self.base_seed,
                                                                    request=self.request_seed) for s in self.seeds]
        if not seeds:
            raise ValueError("a grid needs at least one seed")
        return [Cell(str(sc), m, s, self.options) for sc in self.scenarios for s in seeds for m in methods]


# ---------------------------------------------------------------------------------------------- results file
def read_results(path: str | os.PathLike, *, only_ok: bool = True) -> list[dict]:
    """Rows of a results JSONL file (missing file: no rows; a torn last line is skipped with a warning)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s:%d is not valid JSON (an interrupted write?); skipped", path, n)
            continue
        if not only_ok or row.get("status") == "ok":
            rows.append(row)
    return rows


def _clean(obj: Any) -> Any:
    """JSON-safe row values (NaN and inf become null; anything else unknown as its ``repr``)."""
    return json_safe(obj, fallback=repr)


def _append_row(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(_clean(row), sort_keys=True, allow_nan=False)
    with open(path, "a+b") as fh:
        if fh.tell() > 0:  # a torn last line (interrupted write) must not swallow this row
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                line = "\n" + line
        fh.write((line + "\n").encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------- worker side
_WORKER_STATE: dict[str, Any] = {"initialised": False}
_EXPERIMENTS: "OrderedDict[tuple, Any]" = OrderedDict()
_ORIGINALS: "OrderedDict[tuple, torch.nn.Module]" = OrderedDict()


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
    return {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "blas_openmp": dict(sorted(pools.items()))}


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
    key = (id(exp), seed)
    if key not in _ORIGINALS:
        _ORIGINALS[key] = exp.original(seed)
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


def _model_meta(model) -> dict:
    return dict(getattr(model, "oblivio_meta", {}) or {})


def _forget_scores(model, forget) -> list[float]:
    from ..metrics.forget_quality import logit_scaled_confidence
    from ..training.evaluate import predict_logits

    return logit_scaled_confidence(predict_logits(model, forget).double(), forget.labels).tolist()


def _label_metrics(info: dict, gold, forget, metrics: dict, *, ablation: bool, seed: int) -> dict | None:
    """Generalization-label accuracy of a method that predicts which ``D_f`` samples the gold model gets right.

    Adds ``label_accuracy``, ``label_accuracy_null`` (the fair null: the expected label accuracy of a random subset
    of the same size), ``label_kappa`` (Cohen's κ against the gold labels) and ``gold_easy_rate`` to ``metrics`` when
    ``info`` holds ``predicted_labels`` (TMU);
    returns ``{feature_set: label_accuracy}`` when ``ablation`` is asked and the run stored its features.
    """
    predicted = info.get("predicted_labels")
    if predicted is None or len(predicted) != len(forget):
        return None
    import numpy as np

    from ..training.evaluate import predict_logits

    gold_labels = (predict_logits(gold, forget).argmax(1) == forget.labels).long()
    from ..metrics.alignment import cohen_kappa, random_subset_agreement

    metrics["label_accuracy"] = float(np.mean(np.asarray(predicted) == gold_labels.numpy()))
    metrics["label_accuracy_null"] = random_subset_agreement(predicted, gold_labels.numpy())
    metrics["label_kappa"] = cohen_kappa(np.asarray(predicted).astype(int), gold_labels.numpy().astype(int))
    metrics["gold_easy_rate"] = float(gold_labels.float().mean())
    if not ablation or "twin_features" not in info:
        return None
    from ..methods.tmu.report import feature_ablation

    try:
        return feature_ablation(info, gold_labels, feature_sets=LABEL_ABLATION_SETS, seed=seed)
    except ValueError as exc:  # the run did not compute every feature
        log.warning("label-accuracy ablation skipped: %s", exc)
        return None


def _prepare(payload: dict) -> dict:
    """Train (or load) the original and gold models one cell needs; run before the cells in parallel backends."""
    config, store, device = payload["config"], payload["store"], payload["device"]
    exp = _experiment(config, store, device)
    t0 = time.perf_counter()
    try:
        if payload["kind"] == "original":
            exp.original(payload["seed"])
        else:
            split = exp.forget_split(payload["scenario"], seed=payload["request"])
            exp.gold(split, payload["seed"])
    except Exception as exc:  # the cells that need this model record the error themselves
        log.warning("preparing %s model failed: %s", payload["kind"], exc)
        return {"ok": False, "error": repr(exc)}
    return {"ok": True, "seconds": time.perf_counter() - t0}


def run_cell(config: ExperimentConfig, cell: Cell, *, store: str | os.PathLike | None = None,
             device: str | None = None, tags: Mapping[str, Any] | None = None) -> dict:
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
    from ..metrics.cost import rte
    from ..metrics.report import evaluate_unlearning
    from ..training import accuracy

    started, t_wall = _now(), time.perf_counter()
    store = str(store) if store is not None else None
    exp = _experiment(config, store, device)
    seeds = cell.seeds
    split = exp.forget_split(cell.scenario, seed=seeds.request)
    splits = exp.unlearning_splits(split)
    original = _original(exp, seeds.train)
    gold = exp.gold(split, seeds.gold)
    gold_meta = _model_meta(gold)

    if cell.method.name == GOLD_METHOD:
        if cell.method.hparams:
            raise ValueError(f"the {GOLD_METHOD!r} pseudo-method takes no hyper-parameters, got {dict(cell.method.hparams)}")
        if seeds.unlearn == seeds.gold:
            raise ValueError(f"the {GOLD_METHOD!r} pseudo-method needs Seeds.unlearn != Seeds.gold "
                             f"(both {seeds.gold}): it compares two gold models")
        unlearned = exp.gold(split, seeds.unlearn)
        ref_meta = _model_meta(unlearned)
        hparams: dict = {}
        info = {"seconds": ref_meta.get("train_seconds"), "cpu_seconds": ref_meta.get("train_cpu_seconds"),
                "forward_samples": ref_meta.get("train_forward_samples"),
                "backward_samples": ref_meta.get("train_backward_samples"), "epochs": ref_meta.get("epochs"),
                "note": "second gold model (retrained from scratch on D_r) with the unlearning seed"}
    else:
        method = create_method(cell.method.name, **dict(cell.method.hparams))
        hparams = method.hparams()
        unlearned = method(original, forget=splits.forget, retain=splits.retain, holdout=splits.holdout,
                           seed=seeds.unlearn, progress=False)
        info = {k: v for k, v in method.info.items() if k not in BULKY_INFO_KEYS}

    random_model = exp.build_model(seeds.eval) if cell.options.zrf else None
    metrics = evaluate_unlearning(unlearned, forget=splits.forget, retain=splits.retain, test=splits.test,
                                  gold=gold, random_model=random_model, mia=cell.options.mia, seed=seeds.eval)
    for name, ds in (("forget", splits.forget), ("retain", splits.retain), ("test", splits.test)):
        metrics[f"original_acc_{name}"] = accuracy(original, ds)
    if len(splits.forget):  # the "do nothing" reference of sample agreement (issue 11)
        from ..metrics.alignment import sample_agreement
        from ..training.evaluate import predict_logits

        metrics["original_sample_agreement"] = sample_agreement(
            predict_logits(original, splits.forget).double().numpy(),
            predict_logits(gold, splits.forget).double().numpy(), splits.forget.labels.numpy())
    if cell.options.tta:
        from ..metrics.tta import tta_accuracy

        metrics.update({f"tta_{k}": v for k, v in tta_accuracy(unlearned, splits.forget).items()})
        metrics.update({f"gold_tta_{k}": v for k, v in tta_accuracy(gold, splits.forget).items()})
        metrics["chance"] = 1.0 / exp.data.num_classes
    label_ablation = _label_metrics(info, gold, splits.forget, metrics, ablation=cell.options.ablation,
                                    seed=seeds.eval)
    scores = None
    if cell.options.scores:
        scores = {"forget": _forget_scores(unlearned, splits.forget), "gold_forget": _forget_scores(gold, splits.forget)}

    method_seconds = info.get("seconds")
    gold_seconds = gold_meta.get("train_seconds")
    cost = {"method_seconds": method_seconds, "gold_train_seconds": gold_seconds,
            "original_train_seconds": _model_meta(original).get("train_seconds"),
            "gold_epochs": gold_meta.get("epochs"),
            "rte": rte(method_seconds, gold_seconds) if method_seconds is not None and gold_seconds else None}
    # CPU seconds (all threads) and sample-passes: robust to a busy machine (gold: its whole training, resumed or not)
    method_cpu, gold_cpu = info.get("cpu_seconds"), gold_meta.get("train_cpu_seconds")
    cost.update({"method_cpu_seconds": method_cpu, "gold_train_cpu_seconds": gold_cpu,
                 "rte_cpu": rte(method_cpu, gold_cpu) if method_cpu is not None and gold_cpu else None,
                 "method_forward_samples": info.get("forward_samples"),
                 "method_backward_samples": info.get("backward_samples"),
                 "gold_train_forward_samples": gold_meta.get("train_forward_samples"),
                 "gold_train_backward_samples": gold_meta.get("train_backward_samples")})
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
        "options": dataclasses.asdict(cell.options),
        "info": info,
        "metrics": metrics,
        "cost": cost,
        "tags": dict(tags or {}),
        "provenance": {**_provenance(config, exp), "started_at": started, "finished_at": _now(),
                       "wall_seconds": time.perf_counter() - t_wall, "forget_ids_hash": split.key,
                       "gold_meta": {k: gold_meta.get(k) for k in ("epochs", "train_seconds", "git_commit",
                                                                   "torch_threads")},
                       "original_torch_threads": _model_meta(original).get("torch_threads")},
    }
    if scores is not None:
        row["scores"] = scores
    if label_ablation is not None:
        row["label_ablation"] = label_ablation
    return _clean(row)


def _provenance(config: ExperimentConfig, exp) -> dict:
    if "git_commit" not in _WORKER_STATE:
        _WORKER_STATE["git_commit"] = git_commit(os.path.dirname(__file__))
    return {"config": to_jsonable(config), "config_hash": config_hash(to_jsonable(config)),
            "oblivio_version": __version__, "git_commit": _WORKER_STATE["git_commit"], "host": socket.gethostname(),
            "pid": os.getpid(), "python": platform.python_version(), "torch": torch.__version__,
            "device": str(exp.device), **thread_counts(),
            # uncommitted edits of the package at the time this cell ran (HEAD alone does not name the code then)
            **git_source_state(os.path.dirname(os.path.dirname(__file__)))}


def _cell_task(payload: dict) -> dict:
    """Worker entry: run one cell; a failure becomes an ``error`` row (unless the driver asked to raise)."""
    cell: Cell = payload["cell"]
    try:
        return run_cell(payload["config"], cell, store=payload["store"], device=payload["device"],
                        tags=payload["tags"])
    except Exception as exc:
        if payload["on_error"] == "raise":
            raise
        return _clean({"key": cell.key(payload["config"]), "status": "error", "scenario": cell.scenario,
                       "method": cell.method.display, "method_name": cell.method.name,
                       "seeds": cell.seeds.as_dict(), "error": f"{type(exc).__name__}: {exc}",
                       "traceback": traceback.format_exc(), "tags": dict(payload["tags"] or {}),
                       "provenance": {"host": socket.gethostname(), "finished_at": _now(),
                                      "oblivio_version": __version__}})


def _ray_entry(fn_name: str, payload: dict, threads: int | None, imports: tuple[str, ...]) -> dict:
    if not _WORKER_STATE["initialised"]:
        _init_worker(threads, imports)
    return {"_cell": _cell_task, "_prepare": _prepare}[fn_name](payload)


# ---------------------------------------------------------------------------------------------- backends
def _require_ray():
    try:
        import ray
    except ImportError as exc:
        raise ImportError("running on Ray needs the optional dependency: pip install 'oblivio[ray]'") from exc
    return ray


def _map_in_process(fn: Callable[[dict], dict], payloads: list[dict]) -> Iterator[tuple[int, dict]]:
    for i, p in enumerate(payloads):
        yield i, fn(p)


def _map_pool(pool: ProcessPoolExecutor, fn: Callable[[dict], dict], payloads: list[dict]) -> Iterator[tuple[int, dict]]:
    futures = {pool.submit(fn, p): i for i, p in enumerate(payloads)}
    for fut in as_completed(futures):
        yield futures[fut], fut.result()


def _map_ray(fn_name: str, payloads: list[dict], *, threads: int | None, imports: Sequence[str],
             num_cpus: float, num_gpus: float) -> Iterator[tuple[int, dict]]:
    ray = _require_ray()
    remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_calls=0)(_ray_entry)
    refs = {remote.remote(fn_name, p, threads, tuple(imports)): i for i, p in enumerate(payloads)}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            yield refs[ref], ray.get(ref)


# ---------------------------------------------------------------------------------------------- runner
class Runner:
    """Runs cells of a :class:`Grid` for one experiment config and appends result rows to a JSONL file.

    Args:
        config: an :class:`ExperimentConfig` or preset name (``"cpu"``, ``"tiny"``...).
        results: the JSONL results file (created or appended to; its finished cells are skipped).
        store: checkpoint store folder for original and gold models (None: the default store).
        workers: cells at a time in a local process pool; 1 runs them in this process.
        threads_per_worker: torch and BLAS threads per pool / Ray worker, and in this process while it runs cells
            in-process (default: CPU cores // workers, at least 1, for a pool or Ray; in-process, the caller's
            settings). Same seeds and same thread count give bit-identical metrics on every backend; the counts
            are recorded in each row's provenance.
        ray_address: run on Ray: ``"local"`` starts a local instance, anything else goes to ``ray.init(address=...)``.
            An already initialised Ray session is reused as is.
        ray_num_cpus: CPUs Ray reserves per cell (default ``threads_per_worker``).
        ray_num_gpus: GPUs Ray reserves per cell (e.g. 1, or 0.5 to share one).
        device: model device in every worker (None: CUDA when present).
        imports: modules every worker imports first (plugins that register methods with ``register_method``).
        tags: JSON-able fields copied into every row (``{"benchmark": ...}``).
        on_error: ``"record"`` writes an ``error`` row (not counted as finished, so a rerun retries it) and goes
            on; ``"raise"`` stops at the first failure.
    """

    def __init__(self, config: "ExperimentConfig | str", *, results: str | os.PathLike,
                 store: str | os.PathLike | None = None, workers: int = 1, threads_per_worker: int | None = None,
                 ray_address: str | None = None, ray_num_cpus: float | None = None, ray_num_gpus: float = 0,
                 device: str | None = None, imports: Sequence[str] = (), tags: Mapping[str, Any] | None = None,
                 on_error: OnError = "record") -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if on_error not in ("record", "raise"):
            raise ValueError(f"on_error must be 'record' or 'raise', got {on_error!r}")
        self.config = get_preset(config)
        self.results = Path(results)
        self.store = str(store) if store is not None else None
        self.workers = workers
        self.threads = threads_per_worker or (max(1, (os.cpu_count() or 1) // workers)
                                              if (workers > 1 or ray_address) else None)
        self.ray_address = ray_address
        self.ray_num_cpus = ray_num_cpus if ray_num_cpus is not None else float(self.threads or 1)
        self.ray_num_gpus = ray_num_gpus
        self.device = device
        self.imports = tuple(imports)
        self.tags = dict(tags or {})
        self.on_error = on_error
        self.new_rows: list[dict] = []
        self.errors: list[dict] = []

    @property
    def backend(self) -> str:
        return "ray" if self.ray_address else ("pool" if self.workers > 1 else "in-process")

    def finished_keys(self) -> set[str]:
        return {r["key"] for r in read_results(self.results)}

    def pending(self, cells: Iterable[Cell]) -> list[Cell]:
        """The cells without a finished row in the results file."""
        done = self.finished_keys()
        seen: set[str] = set()
        out = []
        for c in cells:
            k = c.key(self.config)
            if k not in done and k not in seen:
                seen.add(k)
                out.append(c)
        return out

    def run(self, grid: "Grid | Sequence[Cell]") -> list[dict]:
        """Run the cells that are not finished yet; return the finished rows of ALL the grid's cells.

        Rows come back in grid order. Failed cells are in ``self.errors`` (and in the file, with ``status:
        "error"``), not in the returned list.
        """
        cells = grid.cells() if isinstance(grid, Grid) else list(grid)
        todo = self.pending(cells)
        log.info("%d cells, %d finished already, %d to run (%s)", len(cells), len(cells) - len(todo), len(todo),
                 self.backend)
        self.new_rows, self.errors = [], []
        if todo:
            self._execute(todo)
        by_key = {r["key"]: r for r in read_results(self.results)}
        return [by_key[k] for k in dict.fromkeys(c.key(self.config) for c in cells) if k in by_key]

    # -------------------------------------------------------------------------------------- internals
    def _payload(self, **kw: Any) -> dict:
        return {"config": self.config, "store": self.store, "device": self.device, "tags": self.tags,
                "on_error": self.on_error, **kw}

    def _prepare_payloads(self, cells: Sequence[Cell]) -> list[dict]:
        jobs: dict[tuple, dict] = {}
        for c in cells:
            s = c.seeds
            jobs.setdefault(("original", s.train), self._payload(kind="original", seed=s.train))
            jobs.setdefault(("gold", c.scenario, s.request, s.gold),
                            self._payload(kind="gold", scenario=c.scenario, request=s.request, seed=s.gold))
            if c.method.name == GOLD_METHOD:
                jobs.setdefault(("gold", c.scenario, s.request, s.unlearn),
                                self._payload(kind="gold", scenario=c.scenario, request=s.request, seed=s.unlearn))
        return list(jobs.values())

    @contextlib.contextmanager
    def _backend(self) -> Iterator[Callable[[str, list[dict]], Iterator[tuple[int, dict]]]]:
        """Yields ``map(fn_name, payloads) -> (index, result)`` in completion order, for the chosen backend."""
        fns = {"_cell": _cell_task, "_prepare": _prepare}
        if self.ray_address:
            ray = _require_ray()
            started = False
            if not ray.is_initialized():
                address = None if self.ray_address == "local" else self.ray_address
                ray.init(address=address, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
                started = True
            try:
                yield lambda name, payloads: _map_ray(name, payloads, threads=self.threads, imports=self.imports,
                                                      num_cpus=self.ray_num_cpus, num_gpus=self.ray_num_gpus)
            finally:
                if started:
                    ray.shutdown()
        elif self.workers > 1:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
            with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
                                     initargs=(self.threads, self.imports)) as pool:
                yield lambda name, payloads: _map_pool(pool, fns[name], payloads)
        else:
            for name in self.imports:
                importlib.import_module(name)
            with _threads_in_process(self.threads):  # threads_per_worker holds in-process too (issue 9)
                yield lambda name, payloads: _map_in_process(fns[name], payloads)

    def _execute(self, cells: list[Cell]) -> None:
        with self._backend() as run_map:
            if self.backend != "in-process":
                # Train the shared original / gold models first, in parallel, so that cells do not queue on the
                # store's file locks behind one another.
                prepare = self._prepare_payloads(cells)
                t0 = time.perf_counter()
                for _ in run_map("_prepare", prepare):
                    pass
                log.info("original and gold models ready (%d) in %.1fs", len(prepare), time.perf_counter() - t0)
            payloads = [self._payload(cell=c) for c in cells]
            for n, (i, row) in enumerate(run_map("_cell", payloads), 1):
                row.setdefault("provenance", {})["backend"] = self.backend
                _append_row(self.results, row)
                if row.get("status") == "ok":
                    self.new_rows.append(row)
                    m = row.get("metrics", {})
                    log.info("[%d/%d] %s: acc_forget %.3f (gold %.3f), acc_test %.3f, %.1fs", n, len(cells),
                             cells[i].describe(), _num(m.get("acc_forget")), _num(m.get("gold_acc_forget")),
                             _num(m.get("acc_test")), _num(row["provenance"].get("wall_seconds")))
                else:
                    self.errors.append(row)
                    log.error("[%d/%d] %s failed: %s", n, len(cells), cells[i].describe(), row.get("error"))


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) else math.nan


def run_grid(config: "ExperimentConfig | str", grid: "Grid | Sequence[Cell]", *, results: str | os.PathLike,
             **runner_kwargs: Any) -> list[dict]:
    """``Runner(config, results=results, **runner_kwargs).run(grid)``."""
    return Runner(config, results=results, **runner_kwargs).run(grid)


__all__ = ["Cell", "EvalOptions", "GOLD_METHOD", "Grid", "MethodSpec", "Runner", "Seeds", "read_results",
           "run_cell", "run_grid"]
