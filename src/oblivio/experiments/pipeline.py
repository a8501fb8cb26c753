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
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from .. import __version__
from ..data import DATASETS, StreamingDataset, TorchSplits, check_dataset_options, stratified_sample
from ..data.base import DatasetSplits, ImageDataset
from ..metrics.cost_ratio import RunCost
from ..models import Classifier, create_model
from ..scenarios import ForgetSplit, ScenarioSpec, UnlearningSplits, make_forget_split, make_unlearning_splits
from ..training import accuracy, train_model
from ..utils import git_commit, resolve_device
from .config import ExperimentConfig, get_preset
from .store import CheckpointStore

log = logging.getLogger("oblivio.experiments")


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

    def _train(self, kind: str, key: dict, train_set, seed: int) -> TrainedModel:
        def train(model: nn.Module, resume_path) -> dict:
            t0 = time.perf_counter()
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
                )
            cost = result.cost  # cumulative over a resumed training's earlier runs (kept in the resume checkpoint)
            return {
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
        return self._train("original", key, self.data.train, seed)

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
