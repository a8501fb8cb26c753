"""The grid of the benchmark runner: the seeds, method specs and evaluation options of one cell, and the grid of cells.

A cell's :meth:`Cell.key` hashes everything that determines its result; the runner (:mod:`oblivio.experiments.runner`)
skips cells whose key already has a finished row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..utils import config_hash, json_safe, to_jsonable
from .config import ExperimentConfig

GOLD_METHOD = "gold"
"""Pseudo-method name: the "unlearned" model is a second gold model (seed ``Seeds.unlearn``)."""
ORIGINAL_METHOD = "original"
"""Pseudo-method name: the "unlearned" model is an original model trained on all of ``D`` with seed
``Seeds.unlearn`` (a model that forgot nothing; over many seeds, the distribution of models that saw ``D_f``)."""
PSEUDO_METHODS = (GOLD_METHOD, ORIGINAL_METHOD)
UNLEARN_SEED_OFFSET = 10_000
"""``Seeds.for_replicate(i)`` uses ``unlearn = 10_000 + i`` so that unlearning never reuses a training seed."""
EVAL_SEED_OFFSET = 20_000
"""``Seeds.for_replicate(i)`` uses ``eval = 20_000 + i``."""
RESULT_SCHEMA = 1
"""Version of the row layout written to the results file."""
GOLD_DISTRIBUTION_STRIDE = 1_000
"""The G gold models of ``EvalOptions.gold_models`` use gold seeds ``gold + 1000·j``, j = 0..G−1 (j = 0 is the cell's
own gold model; the ``gold`` pseudo-method's second gold, seed ``unlearn``, stays out of the set: it is the held-out
gold whose expected agreement is the floor)."""


def gold_distribution_seeds(gold_seed: int, n_models: int) -> list[int]:
    """The gold seeds of a unit's gold distribution (see :data:`GOLD_DISTRIBUTION_STRIDE`).

    Example:
        >>> gold_distribution_seeds(300, 4)
        [300, 1300, 2300, 3300]
    """
    if n_models < 1:
        raise ValueError(f"need at least one gold model, got {n_models}")
    return [int(gold_seed) + GOLD_DISTRIBUTION_STRIDE * j for j in range(int(n_models))]


# ---------------------------------------------------------------------------------------------- grid
@dataclass(frozen=True)
class Seeds:
    """The separate seeds of one cell (see the docstring of :mod:`oblivio.experiments.runner`).

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
    def for_replicate(cls, i: int, *, base: int = 0, request: int | None = None) -> Seeds:
        """Replicate ``i`` of a benchmark: train / gold / request ``base + i``; unlearn and eval offset from them.

        Args:
            i: replicate index (0, 1, ...).
            base: the experiment's base training seed (``ExperimentConfig.seed``).
            request: a fixed forget-request seed for every replicate (default: ``base + i``).
        """
        s = base + i
        return cls(
            train=s,
            gold=s,
            unlearn=UNLEARN_SEED_OFFSET + s,
            eval=EVAL_SEED_OFFSET + s,
            request=s if request is None else request,
        )

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
    def parse(cls, obj: MethodSpec | str | Mapping[str, Any]) -> MethodSpec:
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
        """What identifies the method in a cell key: name, explicit hyper-parameters, label and the *resolved*
        hyper-parameters (defaults included), so that a changed default never reuses an old row on resume."""
        out = {"name": self.name, "hparams": to_jsonable(dict(self.hparams)), "label": self.display}
        from ..methods import create_method, list_methods

        # an unknown name (a plugin not imported in this process: the Runner imports its plugins before computing
        # keys) or invalid hyper-parameters fail when the cell runs, where on_error can record them
        if self.name not in PSEUDO_METHODS and self.name in list_methods():
            try:
                out["resolved"] = json_safe(create_method(self.name, **dict(self.hparams)).hparams(), fallback=repr)
            except (TypeError, ValueError) as exc:
                out["resolved_error"] = f"{type(exc).__name__}: {exc}"
        return out


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
        gold_models: G > 0: also score against G gold models (seeds :func:`gold_distribution_seeds`, trained once
            through the store): expected agreement E and its best value E*, δ to the mean gold accuracy, the
            activation distance to the gold models' mean output, for the model and for the original (issue 23,
            :mod:`oblivio.metrics.gold_distribution`). 0 (default): not computed, and left out of the cell key.
    """

    mia: bool = True
    zrf: bool = True
    tta: bool = False
    scores: bool = False
    ablation: bool = False
    gold_models: int = 0

    def __post_init__(self) -> None:
        if not 0 <= int(self.gold_models) <= 9:
            raise ValueError(
                f"gold_models must be 0 (off) to 9 (per-image counts are stored as one digit), got {self.gold_models}"
            )

    def key(self) -> dict:
        """The options as they enter a cell key: fields added after the first rows (``gold_models``) only when they
        differ from their default, so that earlier rows keep their keys (a resumed run skips them)."""
        out = dataclasses.asdict(self)
        if out["gold_models"] == 0:
            del out["gold_models"]
        return out


@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    scenario: str
    method: MethodSpec
    seeds: Seeds
    options: EvalOptions = EvalOptions()

    def key(self, config: ExperimentConfig) -> str:
        """A stable hash of everything that determines this cell's result."""
        return config_hash(
            {
                "schema": RESULT_SCHEMA,
                "config": to_jsonable(config),
                "scenario": self.scenario,
                "method": self.method.key(),
                "seeds": self.seeds.as_dict(),
                "options": self.options.key(),
            }
        )

    def describe(self) -> str:
        s = self.seeds
        return (
            f"{self.scenario} | {self.method.display} | train {s.train} gold {s.gold} unlearn {s.unlearn} "
            f"eval {s.eval} request {s.request}"
        )


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
    methods: Sequence[MethodSpec | str | Mapping[str, Any]]
    seeds: Sequence[int | Seeds] = (0,)
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
        seeds = [
            s if isinstance(s, Seeds) else Seeds.for_replicate(int(s), base=self.base_seed, request=self.request_seed)
            for s in self.seeds
        ]
        if not seeds:
            raise ValueError("a grid needs at least one seed")
        return [Cell(str(sc), m, s, self.options) for sc in self.scenarios for s in seeds for m in methods]


__all__ = [
    "Cell",
    "EvalOptions",
    "EVAL_SEED_OFFSET",
    "GOLD_DISTRIBUTION_STRIDE",
    "GOLD_METHOD",
    "Grid",
    "ORIGINAL_METHOD",
    "PSEUDO_METHODS",
    "MethodSpec",
    "RESULT_SCHEMA",
    "Seeds",
    "UNLEARN_SEED_OFFSET",
    "gold_distribution_seeds",
]
