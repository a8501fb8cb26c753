"""Forget requests -> exact index splits (SPEC §2).

A scenario is reproducible from ``(dataset, spec, seed)`` and records the exact sample ids it chose. Specs are
dataclasses (or strings for the CLI):

==================  ===========================================  =====================================
string              dataclass                                    forgets
==================  ===========================================  =====================================
``class-subset:3:100``  ``ClassSubset(cls=3, count=100)``        100 random training samples of class 3
``class:3``         ``WholeClass(cls=3)``                        every training sample of class 3
``random:0.1``      ``RandomSamples(amount=0.1)``                10% of the training set (or a count)
``group:4,7``       ``Groups(groups=(4, 7))``                    every sample of groups 4 and 7
``group-frac:0.02`` ``Groups(fraction=0.02)``                    2% of the groups, drawn at random
``indices:FILE``    ``IndicesFile(path=FILE)``                   the sample ids listed in FILE
==================  ===========================================  =====================================

Invalid requests (unknown class, count larger than the class, out-of-range or duplicate ids, empty or
whole-dataset forget sets) raise :class:`ScenarioError` with the reason and the fix.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from .data.base import DatasetSplits, ImageDataset
from .data.loader import stratified_sample
from .utils import indices_hash


class ScenarioError(ValueError):
    """A forget request cannot be served as asked."""


# ---------------------------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class ClassSubset:
    """``count`` random training samples of class ``cls`` (a class index or name). TMU protocol: count = 100."""

    cls: int | str
    count: int = 100
    kind: str = field(default="class-subset", init=False)


@dataclass(frozen=True)
class WholeClass:
    """Every training sample of class ``cls``."""

    cls: int | str
    kind: str = field(default="class", init=False)


@dataclass(frozen=True)
class RandomSamples:
    """A fraction (``0 < amount < 1``) or a count (``amount >= 1``) of training samples, across all classes."""

    amount: float = 0.1
    kind: str = field(default="random", init=False)


@dataclass(frozen=True)
class Groups:
    """All samples of the given ``groups`` ids, or of a random ``fraction`` of the groups.

    ``weights`` (optional, with ``fraction``): one non-negative weight per group, in the order of the sorted group
    ids; groups are drawn with probability proportional to it, which makes the request non-IID (as in the 004
    study's deletion biased toward young identities).
    """

    groups: tuple[int, ...] = ()
    fraction: float | None = None
    weights: tuple[float, ...] | None = None
    kind: str = field(default="group", init=False)


@dataclass(frozen=True)
class IndicesFile:
    """Sample ids from a file: one per line (``.txt``), a JSON list, a ``.npy`` array, or a CSV's first column."""

    path: str
    kind: str = field(default="indices", init=False)


@dataclass(frozen=True)
class Indices:
    """Sample ids given directly (the Python-API form of a deletion request)."""

    ids: tuple[int, ...]
    kind: str = field(default="ids", init=False)


ScenarioSpec = Union[ClassSubset, WholeClass, RandomSamples, Groups, IndicesFile, Indices]


# ---------------------------------------------------------------------------------------------- result
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

    @property
    def key(self) -> str:
        """A short hash of the forget ids (the gold model's cache key)."""
        return indices_hash(self.forget_ids)

    def describe(self) -> str:
        return f"{spec_to_string(self.spec)} (seed {self.seed}, {len(self.forget_ids)} samples)"

    def to_dict(self) -> dict:
        return {
            "spec": spec_to_string(self.spec),
            "seed": self.seed,
            "forget_ids": [int(i) for i in self.forget_ids],
            "key": self.key,
        }


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


# ---------------------------------------------------------------------------------------------- parsing
def parse_scenario(text: str) -> ScenarioSpec:
    """Parse the CLI form (``class-subset:3:100``, ``class:Shirt``, ``random:0.1``, ``group:1,2``,
    ``group-frac:0.02``, ``indices:path.txt``)."""
    kind, _, rest = text.strip().partition(":")
    kind = kind.lower().replace("_", "-")
    parts = rest.split(":") if rest else []
    try:
        if kind == "class-subset":
            if not 1 <= len(parts) <= 2:
                raise ValueError
            return ClassSubset(_class_token(parts[0]), int(parts[1]) if len(parts) == 2 else 100)
        if kind == "class":
            if len(parts) != 1:
                raise ValueError
            return WholeClass(_class_token(parts[0]))
        if kind == "random":
            if len(parts) != 1:
                raise ValueError
            amount = float(parts[0])
            if not math.isfinite(amount):
                raise ScenarioError(f"random forget amount must be a finite fraction or count, got {parts[0]!r}")
            return RandomSamples(amount)
        if kind == "group":
            return Groups(groups=tuple(int(g) for g in parts[0].split(",") if g.strip()))
        if kind == "group-frac":
            fraction = float(parts[0])
            if not math.isfinite(fraction):
                raise ScenarioError(f"group fraction must be a finite number in (0, 1), got {parts[0]!r}")
            return Groups(fraction=fraction)
        if kind == "indices":
            return IndicesFile(rest)
    except ScenarioError:
        raise
    except (ValueError, IndexError):
        raise ScenarioError(f"cannot parse scenario {text!r}; {_FORMS}") from None
    raise ScenarioError(f"unknown scenario kind {kind!r}; {_FORMS}")


_FORMS = ("valid forms: class-subset:CLASS[:COUNT], class:CLASS, random:FRACTION_OR_COUNT, group:ID[,ID...], "
          "group-frac:FRACTION, indices:FILE")


def _class_token(tok: str) -> int | str:
    tok = tok.strip()
    return int(tok) if tok.lstrip("-").isdigit() else tok


def spec_to_string(spec: ScenarioSpec) -> str:
    """The CLI form of a spec (inverse of :func:`parse_scenario`)."""
    if isinstance(spec, ClassSubset):
        return f"class-subset:{spec.cls}:{spec.count}"
    if isinstance(spec, WholeClass):
        return f"class:{spec.cls}"
    if isinstance(spec, RandomSamples):
        return f"random:{spec.amount:g}"
    if isinstance(spec, Groups):
        return f"group-frac:{spec.fraction:g}" if spec.fraction is not None else "group:" + ",".join(map(str, spec.groups))
    if isinstance(spec, IndicesFile):
        return f"indices:{spec.path}"
    if isinstance(spec, Indices):
        return f"ids:{len(spec.ids)}:{indices_hash(spec.ids)}"
    raise ScenarioError(f"not a scenario spec: {spec!r}")


def spec_to_dict(spec: ScenarioSpec) -> dict:
    d = asdict(spec)
    d["kind"] = spec.kind
    return d


# ---------------------------------------------------------------------------------------------- resolving
def resolve_class(dataset: ImageDataset, cls: int | str) -> int:
    """A class index from an index or a (case-insensitive) class name."""
    if isinstance(cls, (int, np.integer)):
        if not 0 <= int(cls) < dataset.num_classes:
            raise ScenarioError(f"unknown class {cls}: {dataset.name} has classes 0..{dataset.num_classes - 1} "
                                f"({', '.join(dataset.classes)})")
        return int(cls)
    lowered = [c.lower() for c in dataset.classes]
    if str(cls).lower() in lowered:
        return lowered.index(str(cls).lower())
    raise ScenarioError(f"unknown class {cls!r}; valid classes: {', '.join(dataset.classes)} (or their indices)")


_INT_TOKEN = re.compile(r"-?[0-9]+")


def read_indices_file(path: str | os.PathLike) -> np.ndarray:
    """Read sample ids from a ``.txt`` / ``.json`` / ``.npy`` / ``.csv`` file; only integers are ids.

    * ``.txt`` (and any other suffix): one id per line; ``#`` starts a comment; every other line must be an
      integer (``12``, ``-3``), else the error names the line.
    * ``.csv``: the first column; the first line is a header only when its first cell is not a number at all
      (``id``, ``sample_id``); a first cell that looks like a mistyped number (``5.0``, ``1O``, ``+18``) is an error.
    * ``.json``: a list of JSON integers (or ``{"ids": [...]}``); ``true``, ``8.0`` or ``"8"`` are errors.
    * ``.npy``: a one-dimensional array of an integer dtype.

    Raises:
        ScenarioError: the file is missing, unreadable or holds anything that is not an integer id.
    """
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"indices file {path} does not exist")
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
            if not isinstance(arr, np.ndarray):  # an .npz archive behind a .npy name
                arr.close()
                raise ValueError("expected a single .npy array, found an .npz archive")
            if arr.dtype.kind not in "iu":
                raise ScenarioError(f"{path}: sample ids must be integers (an integer array), got dtype {arr.dtype} "
                                    "(save them with an integer dtype, e.g. np.save(path, ids.astype(np.int64)))")
            if arr.ndim != 1:
                raise ScenarioError(f"{path}: sample ids must be a one-dimensional array, got shape {arr.shape}")
        elif path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                data = data.get("ids", data.get("indices"))
            if not isinstance(data, list):
                raise ValueError("expected a JSON list of ids (or {\"ids\": [...]})")
            bad = [(i, v) for i, v in enumerate(data) if isinstance(v, bool) or not isinstance(v, int)]
            if bad:
                i, v = bad[0]
                raise ScenarioError(f"{path}: item {i} of the list is {json.dumps(v)}, not an integer id "
                                    f"({len(bad)} such item(s)); only JSON integers are ids")
            try:
                arr = np.asarray([int(v) for v in data], dtype=np.int64)
            except OverflowError:
                raise ScenarioError(f"{path}: sample ids out of range (they must fit in 64 bits)") from None
        else:
            csv = path.suffix.lower() == ".csv"
            tokens = []
            for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                tok = line.split(",")[0].strip() if csv else line
                if not _INT_TOKEN.fullmatch(tok):
                    if csv and not tokens and _is_header(tok):
                        continue  # a CSV header line (a name, not a number)
                    raise ScenarioError(f"{path}, line {line_no}: {tok[:40]!r} is not an integer sample id"
                                        + (" (a .csv header must be a name such as 'id')" if csv and not tokens
                                           else ""))
                tokens.append(tok)
            arr = np.asarray([int(t) for t in tokens], dtype=np.int64) if tokens else np.zeros(0, np.int64)
    except ScenarioError:
        raise
    except OverflowError:
        raise ScenarioError(f"{path}: sample ids out of range (they must fit in 64 bits)") from None
    except (ValueError, UnicodeDecodeError, json.JSONDecodeError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ScenarioError(f"cannot read sample ids from {path}: {exc}") from exc
    return np.asarray(arr).astype(np.int64).reshape(-1)


def _is_header(token: str) -> bool:
    """A CSV header cell: a name with a letter and nothing that could be a mistyped number (``1O``, ``5.0``)."""
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_ .-]*", token))


def check_ids_known(known_ids: np.ndarray, ids: Sequence[int] | np.ndarray, *, name: str = "the dataset") -> np.ndarray:
    """Check a user's id list against the sorted ids of a training set; returns the sorted unique ids.

    Needs only the ids, not the images (the deletion service keeps them in a cached id index).

    Raises:
        ScenarioError: empty list, duplicates, unknown ids, or the whole training set.
    """
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    known = np.asarray(known_ids, dtype=np.int64).reshape(-1)
    if ids.size == 0:
        raise ScenarioError("the forget request is empty: give at least one sample id")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dups = uniq[counts > 1][:10].tolist()
        raise ScenarioError(f"duplicate sample ids in the forget request: {dups}; list each sample once")
    unknown = np.setdiff1d(uniq, known)
    if unknown.size:
        lo, hi = int(known.min()), int(known.max())
        raise ScenarioError(f"sample ids out of range or unknown: {unknown[:10].tolist()} "
                            f"({name} has ids {lo}..{hi})")
    if uniq.size >= known.size:
        raise ScenarioError("the forget request covers the whole training set: nothing would be left to retain; "
                            "train a new model instead")
    return uniq


def validate_ids(dataset: ImageDataset, ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """Check a user's id list against the training set; returns the sorted ids.

    Raises:
        ScenarioError: empty list, duplicates, unknown ids, or the whole training set.
    """
    return check_ids_known(dataset.ids.numpy(), ids, name=dataset.name)  # type: ignore[union-attr]


def make_forget_split(dataset: ImageDataset, spec: ScenarioSpec | str, *, seed: int = 0) -> ForgetSplit:
    """Resolve a request on ``dataset`` (the training set ``D``) into exact ids.

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
    if isinstance(spec, ClassSubset):
        k = resolve_class(dataset, spec.cls)
        pool = np.flatnonzero(labels == k)
        if spec.count <= 0:
            raise ScenarioError(f"class-subset count must be positive, got {spec.count}")
        if spec.count >= len(pool):
            raise ScenarioError(f"class {dataset.classes[k]!r} has {len(pool)} training samples; a subset must be "
                                f"smaller (asked {spec.count}); use class:{k} to forget the whole class")
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
            raise ScenarioError(f"random forget amount must be a fraction in (0, 1) or a positive count, got {spec.amount}")
        if count >= n:
            raise ScenarioError(f"random forget of {count} samples covers the whole training set ({n})")
        pos = rng.choice(n, size=count, replace=False)
    elif isinstance(spec, Groups):
        if dataset.groups is None:
            raise ScenarioError(f"{dataset.name} has no group column; group requests need one "
                                "(image folders: groups.csv; arrays: groups_train)")
        groups = dataset.groups.numpy()
        all_groups = np.unique(groups)
        if spec.fraction is not None:
            if not 0 < spec.fraction < 1:
                raise ScenarioError(f"group fraction must be in (0, 1), got {spec.fraction}")
            n_pick = max(1, int(round(spec.fraction * len(all_groups))))
            p = None
            if spec.weights is not None:
                w = np.asarray(spec.weights, dtype=float)
                if w.shape != all_groups.shape or (w < 0).any() or w.sum() <= 0:
                    raise ScenarioError(f"group weights must be {len(all_groups)} non-negative numbers, one per group")
                p = w / w.sum()
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
    return ForgetSplit(forget_ids=forget_ids, forget_pos=pos, retain_pos=np.flatnonzero(mask), spec=spec, seed=seed)


def split_test(test: ImageDataset, *, holdout_fraction: float = 0.5, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    """Split the official test set into (holdout for methods, test for evaluation), class-stratified."""
    if not 0 < holdout_fraction < 1:
        raise ScenarioError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    hold = stratified_sample(test, holdout_fraction, seed=seed + 7919)
    mask = np.ones(len(test), dtype=bool)
    mask[hold] = False
    return test.subset(hold, name=f"{test.name}:holdout"), test.subset(np.flatnonzero(mask), name=f"{test.name}:eval")


def make_unlearning_splits(splits: DatasetSplits, spec: ScenarioSpec | str | ForgetSplit, *, seed: int = 0,
                           holdout_fraction: float = 0.5) -> UnlearningSplits:
    """Resolve ``spec`` on ``splits.train`` and separate forget / retain / holdout / test."""
    split = spec if isinstance(spec, ForgetSplit) else make_forget_split(splits.train, spec, seed=seed)
    holdout, test = split_test(splits.test, holdout_fraction=holdout_fraction)
    forget = splits.train.subset(split.forget_pos, name=f"{splits.name}:forget")
    retain = splits.train.subset(split.retain_pos, name=f"{splits.name}:retain")
    return UnlearningSplits(forget=forget, retain=retain, holdout=holdout, test=test, split=split)
