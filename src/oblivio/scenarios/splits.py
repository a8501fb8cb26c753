"""Resolving a forget request on a training set into exact, recorded ids (:class:`ForgetSplit`), and separating
forget / retain / holdout / test (:class:`UnlearningSplits`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..data.base import DatasetSplits, ImageDataset
from ..data.loader import stratified_sample
from ..utils import indices_hash
from .ids import read_indices_file, validate_ids
from .specs import (
    ATTRIBUTE_RULE,
    ClassSubset,
    Groups,
    Indices,
    IndicesFile,
    RandomSamples,
    ScenarioError,
    ScenarioSpec,
    WholeClass,
    parse_scenario,
    spec_to_string,
)


@dataclass
class ForgetSplit:
    """The exact outcome of a forget request on a training set.

    Attributes:
        forget_ids: sorted sample ids of ``D_f``.
        forget_pos: their positions in the training set.
        retain_pos: positions of ``D_r = D \\ D_f``.
        spec: the request.
        seed: the seed it was drawn with.
    """

    forget_ids: np.ndarray
    forget_pos: np.ndarray
    retain_pos: np.ndarray
    spec: ScenarioSpec
    seed: int
    groups: np.ndarray | None = None
    """Group requests: the sorted ids of the groups forgotten (every sample of each)."""
    rule: str | None = None
    """Attribute-weighted group requests: how the groups were drawn (rule, power, end), recorded with the ids."""

    @property
    def key(self) -> str:
        """A short hash of the forget ids (the gold model's cache key)."""
        return indices_hash(self.forget_ids)

    def describe(self) -> str:
        return f"{spec_to_string(self.spec)} (seed {self.seed}, {len(self.forget_ids)} samples)"

    def to_dict(self) -> dict:
        out = {
            "spec": spec_to_string(self.spec),
            "seed": self.seed,
            "forget_ids": [int(i) for i in self.forget_ids],
            "key": self.key,
        }
        if self.groups is not None:
            out["groups"] = [int(g) for g in self.groups]
        if self.rule is not None:
            out["rule"] = self.rule
        return out


@dataclass
class UnlearningSplits:
    """Everything a run needs, already separated.

    ``forget`` / ``retain`` / ``holdout`` are what a method may see; ``test`` is for evaluation only.
    ``holdout`` is a part of the official test split, disjoint from ``test``, that methods needing unseen
    images of the same distribution may use (TMU's twin set, two-stage's validation "saving point").
    """

    forget: ImageDataset
    retain: ImageDataset
    holdout: ImageDataset
    test: ImageDataset
    split: ForgetSplit

    @property
    def train(self) -> ImageDataset:
        return self.retain.concat(self.forget, name="train")


def resolve_class(dataset: ImageDataset, cls: int | str) -> int:
    """A class index from an index or a (case-insensitive) class name."""
    if isinstance(cls, (int, np.integer)):
        if not 0 <= int(cls) < dataset.num_classes:
            raise ScenarioError(
                f"unknown class {cls}: {dataset.name} has classes 0..{dataset.num_classes - 1} "
                f"({', '.join(dataset.classes)})"
            )
        return int(cls)
    lowered = [c.lower() for c in dataset.classes]
    if str(cls).lower() in lowered:
        return lowered.index(str(cls).lower())
    raise ScenarioError(f"unknown class {cls!r}; valid classes: {', '.join(dataset.classes)} (or their indices)")


def make_forget_split(
    dataset: ImageDataset,
    spec: ScenarioSpec | str,
    *,
    seed: int = 0,
    group_attributes: Mapping[int, float] | None = None,
) -> ForgetSplit:
    """Resolve a request on ``dataset`` (the training set ``D``) into exact ids.

    ``group_attributes`` (``{group id: attribute in [0, 1]}``, a dataset's ``info["group_attributes"]``) is read by
    attribute-weighted group requests (``group-frac:0.02:low``) only.

    Example:
        >>> from oblivio.data import load_dataset
        >>> train = load_dataset("digits").train
        >>> s = make_forget_split(train, "class-subset:3:10", seed=0)
        >>> len(s.forget_ids), len(s.retain_pos) == len(train) - 10
        (10, True)
    """
    if isinstance(spec, str):
        spec = parse_scenario(spec)
    rng = np.random.default_rng(seed)
    labels = dataset.labels.numpy()
    chosen_groups, rule = None, None
    if isinstance(spec, ClassSubset):
        k = resolve_class(dataset, spec.cls)
        pool = np.flatnonzero(labels == k)
        if spec.count <= 0:
            raise ScenarioError(f"class-subset count must be positive, got {spec.count}")
        if spec.count >= len(pool):
            raise ScenarioError(
                f"class {dataset.classes[k]!r} has {len(pool)} training samples; a subset must be "
                f"smaller (asked {spec.count}); use class:{k} to forget the whole class"
            )
        pos = rng.choice(pool, size=spec.count, replace=False)
    elif isinstance(spec, WholeClass):
        k = resolve_class(dataset, spec.cls)
        pos = np.flatnonzero(labels == k)
        if len(pos) == 0:
            raise ScenarioError(f"class {dataset.classes[k]!r} has no training samples")
    elif isinstance(spec, RandomSamples):
        n = len(dataset)
        if not math.isfinite(spec.amount):
            raise ScenarioError(f"random forget amount must be a finite fraction or count, got {spec.amount}")
        count = int(round(spec.amount * n)) if 0 < spec.amount < 1 else int(spec.amount)
        if spec.amount <= 0 or count <= 0:
            raise ScenarioError(
                f"random forget amount must be a fraction in (0, 1) or a positive count, got {spec.amount}"
            )
        if count >= n:
            raise ScenarioError(f"random forget of {count} samples covers the whole training set ({n})")
        pos = rng.choice(n, size=count, replace=False)
    elif isinstance(spec, Groups):
        if dataset.groups is None:
            raise ScenarioError(
                f"{dataset.name} has no group column; group requests need one "
                "(image folders: groups.csv; arrays: groups_train)"
            )
        groups = dataset.groups.numpy()
        all_groups = np.unique(groups)
        if spec.fraction is not None:
            if not 0 < spec.fraction < 1:
                raise ScenarioError(f"group fraction must be in (0, 1), got {spec.fraction}")
            n_pick = int(round(spec.fraction * len(all_groups)))
            if n_pick == 0:
                raise ScenarioError(
                    f"group fraction {spec.fraction:g} of {len(all_groups)} groups selects no group "
                    f"(rounds to 0); use at least {0.5 / len(all_groups):.3g}, or name the groups (group:ID,...)"
                )
            p = None
            if spec.weights is not None and spec.toward is not None:
                raise ScenarioError("give group weights or an attribute end (toward), not both")
            if spec.weights is not None:
                p = _group_probabilities(np.asarray(spec.weights, dtype=float), len(all_groups), n_pick)
            elif spec.toward is not None:
                w = attribute_weights(all_groups, group_attributes, toward=spec.toward, power=spec.power)
                p = _group_probabilities(w, len(all_groups), n_pick)
                rule = f"{ATTRIBUTE_RULE}: w = {'(1 - a)' if spec.toward == 'low' else 'a'}^{spec.power:g}"
            chosen = rng.choice(all_groups, size=n_pick, replace=False, p=p)
        else:
            chosen = np.asarray(spec.groups, dtype=np.int64)
            if chosen.size == 0:
                raise ScenarioError("no groups given")
            unknown = np.setdiff1d(chosen, all_groups)
            if unknown.size:
                raise ScenarioError(f"unknown group ids {unknown[:10].tolist()}")
            if len(np.unique(chosen)) != len(chosen):
                raise ScenarioError("duplicate group ids in the request")
        pos = np.flatnonzero(np.isin(groups, chosen))
        chosen_groups = np.sort(np.asarray(chosen, dtype=np.int64))
        if len(pos) >= len(dataset):
            raise ScenarioError("the chosen groups cover the whole training set")
    elif isinstance(spec, (IndicesFile, Indices)):
        ids = read_indices_file(spec.path) if isinstance(spec, IndicesFile) else np.asarray(spec.ids, dtype=np.int64)
        ids = validate_ids(dataset, ids)
        pos = dataset.positions_of_ids(ids).numpy()
    else:
        raise ScenarioError(f"not a scenario spec: {spec!r}")
    pos = np.sort(np.asarray(pos, dtype=np.int64))
    if pos.size == 0:
        raise ScenarioError("the forget request selects no samples")
    if pos.size >= len(dataset):
        raise ScenarioError("the forget request covers the whole training set")
    mask = np.ones(len(dataset), dtype=bool)
    mask[pos] = False
    forget_ids = np.sort(dataset.ids.numpy()[pos])  # type: ignore[union-attr]
    return ForgetSplit(
        forget_ids=forget_ids,
        forget_pos=pos,
        retain_pos=np.flatnonzero(mask),
        spec=spec,
        seed=seed,
        groups=chosen_groups,
        rule=rule,
    )


def _group_probabilities(w: np.ndarray, n_groups: int, n_pick: int) -> np.ndarray:
    """Draw probabilities from group weights, with the errors a bad weight vector deserves."""
    if w.shape != (n_groups,) or not np.isfinite(w).all() or (w < 0).any():
        raise ScenarioError(
            f"group weights must be {n_groups} finite non-negative numbers, one per group (sorted ids); "
            f"got {w.shape[0] if w.ndim == 1 else w.shape} values"
        )
    if w.sum() <= 0:
        raise ScenarioError("group weights are all zero: no group can be drawn")
    if np.count_nonzero(w) < n_pick:
        raise ScenarioError(
            f"only {np.count_nonzero(w)} groups have a non-zero weight but the request draws {n_pick}; "
            "lower the fraction or give more groups a weight"
        )
    return w / w.sum()


def attribute_weights(
    groups: np.ndarray, attributes: Mapping[int, float] | None, *, toward: str, power: float = 4.0
) -> np.ndarray:
    """Draw weights of ``groups`` from their attribute ``a`` in [0, 1]: ``(1 - a)^power`` (``toward="low"``) or
    ``a^power`` (``"high"``): the ``"power"`` rule of attribute-weighted group requests.

    Raises:
        ScenarioError: no attributes, a group without one, or an attribute outside [0, 1].

    Example:
        >>> attribute_weights(np.array([0, 1]), {0: 0.0, 1: 0.5}, toward="low", power=2).tolist()
        [1.0, 0.25]
    """
    if not attributes:
        raise ScenarioError(
            "this request is weighted by a group attribute but the dataset has none "
            "(info['group_attributes']: fmnist-identities has one; image folders: group_attributes.csv; "
            "npz: group_attributes); use group-frac:FRACTION for random groups"
        )
    try:
        a = np.asarray([float(attributes[int(g)]) for g in groups], dtype=float)
    except KeyError as exc:
        raise ScenarioError(f"group {exc.args[0]} has no attribute; give every group one") from None
    if not np.isfinite(a).all() or (a < 0).any() or (a > 1).any():
        raise ScenarioError("group attributes must be numbers in [0, 1] (rescale them first)")
    if toward not in ("low", "high"):
        raise ScenarioError(f"toward must be 'low' or 'high', got {toward!r}")
    return (1.0 - a) ** power if toward == "low" else a**power


def split_test(
    test: ImageDataset, *, holdout_fraction: float = 0.5, seed: int = 0
) -> tuple[ImageDataset, ImageDataset]:
    """Split the official test set into (holdout for methods, test for evaluation), class-stratified."""
    if not 0 < holdout_fraction < 1:
        raise ScenarioError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    hold = stratified_sample(test, holdout_fraction, seed=seed + 7919)
    mask = np.ones(len(test), dtype=bool)
    mask[hold] = False
    return test.subset(hold, name=f"{test.name}:holdout"), test.subset(np.flatnonzero(mask), name=f"{test.name}:eval")


def make_unlearning_splits(
    splits: DatasetSplits, spec: ScenarioSpec | str | ForgetSplit, *, seed: int = 0, holdout_fraction: float = 0.5
) -> UnlearningSplits:
    """Resolve ``spec`` on ``splits.train`` and separate forget / retain / holdout / test."""
    split = (
        spec
        if isinstance(spec, ForgetSplit)
        else make_forget_split(splits.train, spec, seed=seed, group_attributes=splits.info.get("group_attributes"))
    )
    holdout, test = split_test(splits.test, holdout_fraction=holdout_fraction)
    forget = splits.train.subset(split.forget_pos, name=f"{splits.name}:forget")
    retain = splits.train.subset(split.retain_pos, name=f"{splits.name}:retain")
    return UnlearningSplits(forget=forget, retain=retain, holdout=holdout, test=test, split=split)


__all__ = [
    "ForgetSplit",
    "attribute_weights",
    "UnlearningSplits",
    "make_forget_split",
    "make_unlearning_splits",
    "resolve_class",
    "split_test",
]
