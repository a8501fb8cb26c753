"""data -> scenario -> (original, gold: cached) -> method -> metrics.

:class:`Experiment` is the Python API behind ``oblivio train / forget / evaluate / demo``.

Example:
    >>> from oblivio.experiments import Experiment
    >>> exp = Experiment("tiny", store="/tmp/oblivio-doctest-store", progress=False)
    >>> original = exp.original()
    >>> splits = exp.unlearning_splits("class-subset:3:10", seed=0)
    >>> len(splits.forget)
    10
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..data import DATASETS, StreamingDataset, TorchSplits, check_dataset_options, stratified_sample
from ..data.base import DatasetSplits, ImageDataset
from ..metrics.cost_ratio import RunCost
from ..models import Classifier, create_model
from ..scenarios import ForgetSplit, ScenarioSpec, UnlearningSplits, make_forget_split, make_unlearning_splits
from ..training import TrainFunction, accuracy, predict_logits, train_model
from ..training.dynamics import DynamicsSummary, TrainingDynamics
from ..utils import atomic_torch_save, git_commit, resolve_device, safe_torch_load
from .config import ExperimentConfig, get_preset
from .store import CheckpointStore

log = logging.getLogger("oblivio.experiments")

DYNAMICS_FILE = "dynamics.pt"
"""The training-dynamics record kept beside an original's ``model.pt`` in the store (issue 23)."""
KFOLD_SEED_OFFSET = 50_000
"""K-fold model ``k`` of an original with seed ``s`` trains with seed ``s + 50_000 + k``."""


def kfold_assignment(labels: torch.Tensor, *, folds: int, seed: int) -> np.ndarray:
    """A class-stratified random partition of ``len(labels)`` positions into ``folds`` folds: ``fold_of[i]``.

    Example:
        >>> f = kfold_assignment(torch.tensor([0] * 6 + [1] * 4), folds=2, seed=0)
        >>> sorted(np.bincount(f).tolist()), [int((f[:6] == k).sum()) for k in (0, 1)]
        ([5, 5], [3, 3])
    """
    y = torch.as_tensor(labels).numpy()
    rng = np.random.default_rng([int(seed), 23, int(folds)])
    fold_of = np.empty(y.size, dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        pos = rng.permutation(np.flatnonzero(y == c))
        fold_of[pos] = (np.arange(pos.size) + offset) % folds
        offset += pos.size
    return fold_of


@dataclass(frozen=True)
class TrainedModel:
    """A model from the checkpoint store and what its training recorded (its ``meta.json``).

    Returned by :meth:`Experiment.original_with_meta` and :meth:`Experiment.gold_with_meta`; ``original()`` and
    ``gold()`` return the bare module.

    Attributes:
        model: the trained module, in eval mode.
        meta: the stored record: ``train_seconds`` (wall), ``train_cpu_seconds``, ``train_forward_samples``,
            ``train_backward_samples`` (the whole training, a resumed one included), ``epochs``, ``history``,
            ``n_train``, ``oblivio_version``, ``git_commit``, ``torch_threads``, ``key``, ``kind``... (models
            stored by older versions lack some).
    """

    model: nn.Module
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def train_seconds(self) -> float | None:
        """Wall seconds the training took (None when not recorded)."""
        return self.meta.get("train_seconds")

    @property
    def cost(self) -> RunCost:
        """The training's wall and CPU seconds and sample-passes (the reference of RTE for a gold model)."""
        return RunCost.from_mapping(self.meta, prefix="train_")


def _jsonable_weights(spec):
    return list(spec) if isinstance(spec, tuple) else spec


class Experiment:
    """One dataset + model + recipe, with its original model and any number of gold models, cached.

    Args:
        config: an :class:`ExperimentConfig` or a preset name (``"cpu"``, ``"paper"``, ``"tiny"``).
        store: a :class:`CheckpointStore`, a folder, or None for the default store.
        device: where models live (default: CUDA when present, else CPU).
        progress: show progress bars.
        stream: how the data is read: ``"auto"`` (a dataset registered as torch ``Dataset`` s, :class:`TorchSplits`,
            is streamed when larger than ``memory_budget``), ``True`` (every dataset is read batch by batch through
            the streaming path, in-memory ones by index) or ``False`` (read into memory). Not part of any store
            key: the same data gives the same models either way (docs/own-model-and-data.md).
        memory_budget: bytes (or ``"4GB"``) for ``"auto"`` (default: :func:`oblivio.data.default_memory_budget`).
        num_workers: loader processes reading streamed batches (default: the ``TorchSplits``' own, else 0).
    """

    def __init__(
        self,
        config: ExperimentConfig | str = "cpu",
        *,
        store: CheckpointStore | str | os.PathLike | None = None,
        device: torch.device | str | None = None,
        progress: bool = True,
        stream: bool | str = "auto",
        memory_budget: int | str | None = None,
        num_workers: int | None = None,
    ) -> None:
        self.config = get_preset(config)
        self.stream, self.memory_budget, self.num_workers = stream, memory_budget, num_workers
        self.store = store if isinstance(store, CheckpointStore) else CheckpointStore(store)
        self.device = resolve_device(device)  # unknown / meta / absent devices refused here, before any data
        self.progress = progress

    # ------------------------------------------------------------------ data
    @functools.cached_property
    def data(self) -> DatasetSplits:
        """The dataset splits (``train`` is ``D``, subsampled when ``config.train_size`` is set), in memory or
        streamed (see ``stream``)."""
        check_dataset_options(self.config.dataset, self.config.dataset_options)  # before the loader runs
        splits = DATASETS.create(self.config.dataset, **self.config.dataset_options)
        if isinstance(splits, TorchSplits):
            splits = splits.resolve(stream=self.stream, memory_budget=self.memory_budget, num_workers=self.num_workers)
        elif self.stream is True or str(self.stream).lower() in ("on", "true", "yes", "1"):
            # A StreamingDataset stands in for an ImageDataset (the same reading interface; see data/stream.py).
            train_s, test_s = (
                cast(ImageDataset, StreamingDataset.from_memory(ds, num_workers=self.num_workers or 0))
                for ds in (splits.train, splits.test)
            )
            splits = DatasetSplits(train_s, test_s, name=splits.name, info=splits.info)
        if self.config.train_size is not None and self.config.train_size < len(splits.train):
            pos = stratified_sample(splits.train, self.config.train_size, seed=0)
            splits = DatasetSplits(
                splits.train.subset(pos, name=splits.train.name),
                splits.test,
                name=splits.name,
                info={**splits.info, "train_size": self.config.train_size},
            )
        return splits

    def forget_split(self, spec: ScenarioSpec | str, *, seed: int = 0) -> ForgetSplit:
        return make_forget_split(
            self.data.train, spec, seed=seed, group_attributes=self.data.info.get("group_attributes")
        )

    def unlearning_splits(self, spec: ScenarioSpec | str | ForgetSplit, *, seed: int = 0) -> UnlearningSplits:
        """forget / retain / holdout / test for a request (see :func:`oblivio.scenarios.make_unlearning_splits`)."""
        return make_unlearning_splits(self.data, spec, seed=seed, holdout_fraction=self.config.holdout_fraction)

    # ------------------------------------------------------------------ models
    def build_model(self, *, seed: int | None = None) -> Classifier:
        """A freshly initialised model (weights seeded by ``seed``, default the config's)."""
        seed = self.config.seed if seed is None else seed
        mean, std = self._norm_stats
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = create_model(
                self.config.model,
                num_classes=self.data.num_classes,
                in_channels=self.data.image_shape[0],
                image_size=self.data.image_shape[1:],
                mean=mean,
                std=std,
                **self.config.model_options,
            )
        return model.to(self.device)

    @functools.cached_property
    def _norm_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self.data.train.stats()

    def _train(self, kind: str, key: dict, train_set, seed: int, *, dynamics: bool = False) -> TrainedModel:
        def train(model: nn.Module, resume_path) -> dict:
            t0 = time.perf_counter()
            # issue 23: an original records its training dynamics from the steps' own logits (no extra pass, the
            # same weights: tested), kept beside the model as dynamics.pt
            # (not for a user's training function: it runs its own loop, without callbacks)
            record = dynamics and not isinstance(self.config.recipe, TrainFunction)
            recorder = TrainingDynamics(len(train_set), ids=train_set.ids) if record else None
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                result = train_model(
                    model,
                    train_set,
                    recipe=self.config.recipe,
                    seed=seed,
                    checkpoint=resume_path,
                    progress=self.progress,
                    desc=kind,
                    callbacks=[recorder] if recorder is not None else (),
                )
            extra: dict[str, Any] = {}
            if recorder is not None:
                summary = recorder.summary()
                atomic_torch_save(summary.to_state(), Path(resume_path).parent / DYNAMICS_FILE)
                extra["dynamics"] = {"file": DYNAMICS_FILE, "complete": summary.complete, "epochs": summary.epochs}
            cost = result.cost  # cumulative over a resumed training's earlier runs (kept in the resume checkpoint)
            return {
                **extra,
                "train_seconds": cost.get("wall_seconds", time.perf_counter() - t0),
                "train_cpu_seconds": cost.get("cpu_seconds"),
                "train_forward_samples": cost.get("forward_samples"),
                "train_backward_samples": cost.get("backward_samples"),
                "resumed_from": result.resumed_from,
                "this_run_seconds": time.perf_counter() - t0,
                "epochs": result.epochs_run,
                "history": result.history,
                "n_train": len(train_set),
                "class_weights": _jsonable_weights(self.config.recipe.class_weights),
                "oblivio_version": __version__,
                "git_commit": git_commit(os.path.dirname(__file__)),
                "torch_threads": torch.get_num_threads(),
            }  # a model trained on another count differs (issue 9)

        stored = self.store.get_or_train(kind, key, lambda: self.build_model(seed=seed), train)
        stored.model.eval()
        if not stored.cached:
            log.info("trained %s model in %.1fs", kind, stored.meta.get("train_seconds", 0.0))
        return TrainedModel(stored.model, dict(stored.meta))

    def store_key(self, **extra: Any) -> dict:
        """The checkpoint-store key of a model: the config's ``model_key()`` and ``extra`` (seed, forget ids), plus
        ``"data": "streamed"`` when the training data is streamed. Streamed data runs its transform on every read,
        so a random augmentation makes the model differ from one trained on the data read into memory once (on
        deterministic data the two agree within float tolerance). Keys of data read into memory are unchanged."""
        key = {**self.config.model_key(), **extra}
        if getattr(self.data.train, "is_streaming", False):
            key["data"] = "streamed"
        return key

    def original(self, *, seed: int | None = None) -> nn.Module:
        """The original model ``M_o`` trained on ``D`` (trained once, then loaded from the store)."""
        return self.original_with_meta(seed=seed).model

    def original_with_meta(self, *, seed: int | None = None) -> TrainedModel:
        """:meth:`original` with its stored training record (:class:`TrainedModel`)."""
        seed = self.config.seed if seed is None else seed
        key = self.store_key(seed=seed)
        return self._train("original", key, self.data.train, seed, dynamics=True)

    def original_dynamics(self, *, seed: int | None = None, recompute: bool = False) -> DynamicsSummary | None:
        """The training dynamics recorded while the original trained (issue 23; :mod:`oblivio.training.dynamics`).

        Originals trained since issue 23 keep them in the store (``dynamics.pt`` beside ``model.pt``). For an older
        original, ``recompute=True`` trains it once more with the recorder, checks that the weights equal the stored
        ones bit for bit (the recipe is deterministic on one machine and thread count) and stores the record;
        otherwise None.

        Raises:
            RuntimeError: the retrained weights differ from the stored model's (another machine or thread count
                trained it): its dynamics cannot be recovered, and the error says so rather than store wrong ones.
        """
        seed = self.config.seed if seed is None else seed
        key = self.store_key(seed=seed)
        stored = self.original_with_meta(seed=seed)
        path = self.store.folder("original", key) / DYNAMICS_FILE
        if path.is_file():
            return DynamicsSummary.from_state(safe_torch_load(path))
        if not recompute:
            return None
        model = self.build_model(seed=seed)
        recorder = TrainingDynamics(len(self.data.train), ids=self.data.train.ids)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            train_model(
                model, self.data.train, recipe=self.config.recipe, seed=seed, progress=self.progress,
                desc="original (dynamics)", callbacks=[recorder],
            )  # fmt: skip
        a, b = model.state_dict(), stored.model.state_dict()
        if not all(torch.equal(a[k].to(b[k].device), b[k]) for k in a):
            raise RuntimeError(
                f"retraining original seed {seed} with the dynamics recorder gave other weights than the stored model "
                f"(trained with {stored.meta.get('torch_threads')} threads, oblivio "
                f"{stored.meta.get('oblivio_version')}); its dynamics cannot be recovered here: retrain the original "
                "(delete its store folder) instead"
            )
        summary = recorder.summary()
        atomic_torch_save(summary.to_state(), path)
        return summary

    def kfold_models(self, *, seed: int | None = None, folds: int = 5) -> list[tuple[nn.Module, torch.Tensor]]:
        """K models, each trained once (through the store) with the original's recipe on ``D`` without one fold:
        ``[(model_k, ids of fold k)]`` (issue 23: held-out evidence for TMU's decision).

        The folds are a class-stratified random partition of ``D``'s ids seeded by ``seed``; model ``k`` trains
        with seed ``seed + KFOLD_SEED_OFFSET + k``. Cost: ``K`` trainings on ``(K − 1)/K`` of ``D``, once per
        original; every later request reads them.
        """
        seed = self.config.seed if seed is None else seed
        if folds < 2:
            raise ValueError(f"folds must be >= 2, got {folds}")
        fold_of = kfold_assignment(self.data.train.labels, folds=folds, seed=seed)
        train_ids = self.data.train.ids
        assert train_ids is not None  # ImageDataset sets ids in __post_init__
        out = []
        for k in range(folds):
            key = {**self.store_key(seed=seed), "kfold": folds, "fold": k}
            train_pos = np.flatnonzero(fold_of != k)
            train_set = self.data.train.subset(train_pos, name=f"{self.data.name}:kfold{k}")
            trained = self._train("kfold", key, train_set, seed + KFOLD_SEED_OFFSET + k)
            out.append((trained.model, train_ids[torch.as_tensor(np.flatnonzero(fold_of == k))]))
        return out

    def kfold_evidence(self, *, seed: int | None = None, folds: int = 5) -> dict[str, torch.Tensor]:
        """Held-out logits for every image of ``D``: each from the K-fold model that did not train on it
        (:meth:`kfold_models`). ``{"ids": [N], "logits": [N, C], "folds": K}``, cached in the store."""
        seed = self.config.seed if seed is None else seed
        key = {**self.store_key(seed=seed), "kfold": folds, "evidence": 1}
        path = self.store.folder("kfold-evidence", key) / "evidence.pt"
        if path.is_file():
            return safe_torch_load(path)
        train_ids = self.data.train.ids
        assert train_ids is not None  # ImageDataset sets ids in __post_init__
        ids: list[torch.Tensor] = []
        logits: list[torch.Tensor] = []
        for model, fold_ids in self.kfold_models(seed=seed, folds=folds):
            pos = torch.as_tensor(np.flatnonzero(np.isin(train_ids.numpy(), fold_ids.numpy())))
            part = self.data.train.subset(pos, name="kfold-held-out")
            assert part.ids is not None
            ids.append(part.ids)
            logits.append(predict_logits(model, part).float())
        ids_t, logits_t = torch.cat(ids), torch.cat(logits)
        order = torch.argsort(ids_t)
        out = {"ids": ids_t[order], "logits": logits_t[order], "folds": torch.tensor(folds)}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(out, path)
        return out

    def gold(
        self, split: ForgetSplit | ScenarioSpec | str, *, seed: int | None = None, request_seed: int = 0
    ) -> nn.Module:
        """The gold model ``M_g``: the same recipe from scratch on ``D_r`` (cached by forget ids and seed)."""
        return self.gold_with_meta(split, seed=seed, request_seed=request_seed).model

    def gold_with_meta(
        self, split: ForgetSplit | ScenarioSpec | str, *, seed: int | None = None, request_seed: int = 0
    ) -> TrainedModel:
        """:meth:`gold` with its stored training record (:class:`TrainedModel`; its ``cost`` is the reference of
        RTE)."""
        seed = self.config.seed if seed is None else seed
        if not isinstance(split, ForgetSplit):
            split = self.forget_split(split, seed=request_seed)
        key = self.store_key(seed=seed, forget=split.key)
        retain = self.data.train.subset(split.retain_pos, name=f"{self.data.name}:retain")
        return self._train("gold", key, retain, seed)

    def gold_seconds(self, split: ForgetSplit, *, seed: int | None = None) -> float | None:
        """Wall time the stored gold model took to train (for the cost ratio), if known."""
        return self.gold_with_meta(split, seed=seed).train_seconds

    def gold_cost(self, split: ForgetSplit, *, seed: int | None = None) -> dict[str, Any]:
        """The stored gold model's whole training cost (a resumed training included): ``train_seconds`` (wall),
        ``train_cpu_seconds``, ``train_forward_samples``, ``train_backward_samples`` (None where not recorded:
        models stored before these were kept)."""
        meta = self.gold_with_meta(split, seed=seed).meta
        return {
            k: meta.get(k)
            for k in ("train_seconds", "train_cpu_seconds", "train_forward_samples", "train_backward_samples")
        }

    def store_meta(self, kind: str, key: dict) -> dict[str, Any]:
        """The stored ``meta.json`` of a model (``{}`` when it has none)."""
        path = self.store.folder(kind, key) / "meta.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def twin_cache(self):
        """TMU's twin cache in this experiment's checkpoint store (``<store>/tmu-twins``): set it as a TMU
        instance's ``twin_cache`` to reuse twin work across requests of the same class profile and size."""
        from ..methods.tmu.cache import FileTwinCache

        return FileTwinCache(self.store.root / "tmu-twins")

    def summary(self, model: nn.Module, splits: UnlearningSplits) -> dict[str, float]:
        """Accuracy on forget / retain / test."""
        return {
            "acc_forget": accuracy(model, splits.forget),
            "acc_retain": accuracy(model, splits.retain),
            "acc_test": accuracy(model, splits.test),
        }

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {
            "dataset": c.dataset,
            "train_size": len(self.data.train),
            "model": c.model,
            "model_options": c.model_options,
            "recipe": c.recipe.name,
            "epochs": c.recipe.epochs,
            "seed": c.seed,
            **({"class_weights": c.recipe.class_weights} if c.recipe.class_weights != "none" else {}),
        }
