"""One call that scores an unlearned model (and its gold model) on forget / retain / test: a flat dict.

Thin: it runs :func:`oblivio.training.evaluate.predict_logits` once per model per split and hands the logits to
the pure functions of :mod:`oblivio.metrics`. Keys name their variant; ``gold_*`` keys hold the gold model's
value of the same metric, which is the target an aligned method should match (not beat). It is the one place where
a run's metrics are assembled: the CLI (``forget``, ``demo``), the runner's cells and the ledger add their groups
through ``extras=[...]`` (:mod:`oblivio.metrics.extras`) instead of their own code.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from torch import nn

from ..data.base import ImageDataset
from .alignment import (
    accuracy_from_logits,
    activation_distance,
    delta,
    js_divergence,
    sample_agreement,
    sample_kappa,
    zrf_score,
)
from .cost_ratio import RunCost
from .extras import BUILTIN_GROUPS, EvalContext, Extra, resolve_extra
from .mia import loss_mia_lr, per_example_cross_entropy, salun_mia_efficacy, true_class_confidence

log = logging.getLogger("oblivio")

MIA_KEYS: tuple[str, ...] = (
    "mia_loss_lr_acc",
    "mia_loss_lr_auc",
    "mia_loss_lr_tpr_at_1pct_fpr",
    "mia_salun_efficacy",
)


GOLD_COMPARISON_KEYS: tuple[str, ...] = (
    "delta_forget",
    "sample_agreement",
    "sample_kappa",
    "activation_distance_l2",
    "js_divergence",
)
"""Keys of the ``"gold-comparison"`` group besides the ``gold_*`` copies of the model's own metrics."""


class Evaluation(dict):
    """The flat dict of :func:`evaluate_unlearning`, which also records the keys each group added.

    Attributes:
        groups: ``{group name: keys}`` in the order the groups ran (``"accuracy"``, ``"mia"``, ``"gold-comparison"``,
            ``"zrf"``, then the extras).

    Example:
        >>> ev = Evaluation({"acc_forget": 0.5, "rte": 0.1}, groups={"accuracy": ("acc_forget",), "cost": ("rte",)})
        >>> ev.group("cost"), ev.pop_group("cost"), dict(ev)
        ({'rte': 0.1}, {'rte': 0.1}, {'acc_forget': 0.5})
    """

    def __init__(self, *args: Any, groups: Mapping[str, Sequence[str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.groups: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in (groups or {}).items()}

    def group(self, name: str) -> dict[str, Any]:
        """The keys and values one group added (``{}`` for a group that did not run)."""
        return {k: self[k] for k in self.groups.get(name, ()) if k in self}

    def pop_group(self, name: str) -> dict[str, Any]:
        """Remove one group's keys from the flat dict and return them (e.g. the ``"cost"`` group into a row's
        ``cost``)."""
        out = self.group(name)
        for k in out:
            del self[k]
        self.groups.pop(name, None)
        return out


def _model_block(
    logits: dict[str, np.ndarray], splits: dict[str, ImageDataset], *, mia: bool, seed: int
) -> dict[str, float]:
    out = {f"acc_{name}": accuracy_from_logits(logits[name], splits[name].labels) for name in splits}
    if not mia:
        return out
    mia_values = dict.fromkeys(MIA_KEYS, math.nan)
    forget_losses = per_example_cross_entropy(logits["forget"], splits["forget"].labels)
    test_losses = per_example_cross_entropy(logits["test"], splits["test"].labels)
    try:
        res = loss_mia_lr(forget_losses, test_losses, seed=seed)
        mia_values.update(
            mia_loss_lr_acc=res.accuracy, mia_loss_lr_auc=res.auc, mia_loss_lr_tpr_at_1pct_fpr=res.tpr_at_1pct_fpr
        )
    except ValueError as err:  # too few samples for a 10-split cross-validation
        log.warning("loss logistic-regression MIA skipped (NaN): %s", err)
    if len(splits["retain"]) and len(splits["test"]) and len(splits["forget"]):
        conf = {name: true_class_confidence(logits[name], splits[name].labels) for name in ("retain", "test", "forget")}
        mia_values["mia_salun_efficacy"] = salun_mia_efficacy(conf["retain"], conf["test"], conf["forget"]).efficacy
    out.update(mia_values)
    return out


def evaluate_unlearning(
    model: nn.Module,
    *,
    forget: ImageDataset,
    retain: ImageDataset,
    test: ImageDataset,
    gold: nn.Module | None = None,
    random_model: nn.Module | None = None,
    mia: bool = True,
    seed: int = 0,
    batch_size: int = 512,
    extras: Iterable[str | Extra] = (),
    original: nn.Module | None = None,
    info: Mapping[str, Any] | None = None,
    cost: RunCost | None = None,
    reference_cost: RunCost | None = None,
) -> Evaluation:
    """Accuracy, alignment with the gold model, membership inference and any extra groups, as one flat dict.

    Keys (accuracies are fractions in [0, 1]), by group (:attr:`Evaluation.groups`):

    * ``"accuracy"``, always: ``acc_forget``, ``acc_retain``, ``acc_test`` (and ``gold_acc_*`` with ``gold``);
    * ``"mia"``, with ``mia``: ``mia_loss_lr_acc``, ``mia_loss_lr_auc``, ``mia_loss_lr_tpr_at_1pct_fpr``
      (starting-kit loss logistic regression, forget vs test) and ``mia_salun_efficacy`` (SalUn's SVC on
      confidence), and their ``gold_mia_*`` with ``gold``;
    * ``"gold-comparison"``, with ``gold``: ``delta_forget`` (``|acc_forget - gold_acc_forget|``),
      ``sample_agreement`` (fraction of the forget set on which the model and gold are both right or both wrong),
      ``sample_kappa`` (Cohen's κ of those right/wrong outcomes), ``activation_distance_l2`` and ``js_divergence``
      (softmax of the model vs the gold model on the forget set);
    * ``"zrf"``, with ``random_model``: ``zrf_score`` (1 - mean JS to the random model on the forget set);
    * each of ``extras``, in order (:mod:`oblivio.metrics.extras`): e.g. ``"original"`` (the model before
      unlearning as a reference), ``"tta"``, ``"cost"`` (RTE on wall and CPU seconds and the sample-pass ratio
      against the gold training). An extra may not overwrite a key of an earlier group.

    Args:
        model: the unlearned model ``M_u``.
        forget: ``D_f``. retain: ``D_r`` (its first ``|D_test|`` samples train SalUn's SVC). test: ``D_test``.
        gold: the gold model ``M_g`` (retrained without ``D_f``), optional.
        random_model: a randomly initialised model of the same architecture, for ZRF, optional.
        mia: compute the membership-inference metrics (they fit small scikit-learn models).
        seed: seeds the MIA subsampling and splits.
        batch_size: images per forward pass.
        extras: more groups: registered names (:func:`oblivio.metrics.extras.list_extras`; the built-in group
            names are accepted too and check that their argument is given) or :class:`~oblivio.metrics.extras.Extra`
            objects.
        original: the model before unlearning (for the ``"original"`` extra).
        info: the method's ``info`` (for extras that read it).
        cost: the method's :class:`~oblivio.metrics.cost_ratio.RunCost`; reference_cost: the gold training's
            (for the ``"cost"`` extra).

    Returns:
        An :class:`Evaluation`: a ``dict`` that also knows which keys each group added.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from oblivio.data import ImageDataset
        >>> ds = ImageDataset(torch.rand(20, 1, 4, 4), torch.arange(20) % 2, ("a", "b"))
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        >>> res = evaluate_unlearning(net, forget=ds, retain=ds, test=ds, gold=net, mia=False)
        >>> res["delta_forget"], res["js_divergence"], res["sample_agreement"]
        (0.0, 0.0, 1.0)
        >>> res = evaluate_unlearning(net, forget=ds, retain=ds, test=ds, gold=net, mia=False, extras=["cost"],
        ...                           cost=RunCost(seconds=2.0), reference_cost=RunCost(seconds=20.0))
        >>> res.group("cost")["rte"], list(res.groups)
        (0.1, ['accuracy', 'gold-comparison', 'cost'])
    """
    wanted = [resolve_extra(e) if not (isinstance(e, str) and e in BUILTIN_GROUPS) else e for e in extras]
    builtin = {e for e in wanted if isinstance(e, str)}
    if "gold-comparison" in builtin and gold is None:
        raise ValueError("the 'gold-comparison' group needs gold=... (the model retrained without the forget set)")
    if "zrf" in builtin and random_model is None:
        raise ValueError("the 'zrf' group needs random_model=... (a random initialisation of the same architecture)")
    mia = mia or "mia" in builtin
    splits = {"forget": forget, "retain": retain, "test": test}
    ctx = EvalContext(
        model=model,
        splits=splits,
        gold=gold,
        original=original,
        random_model=random_model,
        info=dict(info or {}),
        cost=cost,
        reference_cost=reference_cost,
        seed=seed,
        batch_size=batch_size,
    )
    logits = {name: ctx.logits("model", name) for name in splits}
    out = _model_block(logits, splits, mia=mia, seed=seed)
    if gold is not None:
        gold_logits = {name: ctx.logits("gold", name) for name in splits}
        out.update({f"gold_{k}": v for k, v in _model_block(gold_logits, splits, mia=mia, seed=seed).items()})
        out["delta_forget"] = delta(out["acc_forget"], out["gold_acc_forget"])
        if len(forget):
            out["sample_agreement"] = sample_agreement(logits["forget"], gold_logits["forget"], forget.labels)
            out["sample_kappa"] = sample_kappa(logits["forget"], gold_logits["forget"], forget.labels)
            out["activation_distance_l2"] = activation_distance(logits["forget"], gold_logits["forget"], norm="l2")
            out["js_divergence"] = js_divergence(logits["forget"], gold_logits["forget"])
        else:
            out["sample_agreement"] = out["sample_kappa"] = math.nan
            out["activation_distance_l2"] = out["js_divergence"] = math.nan
    if random_model is not None:
        random_logits = ctx.logits("random_model", "forget")
        out["zrf_score"] = zrf_score(logits["forget"], random_logits) if len(forget) else math.nan
    groups = {
        "accuracy": tuple(k for k in out if k.startswith(("acc_", "gold_acc_"))),
        "mia": tuple(k for k in out if k.startswith(("mia_", "gold_mia_"))),
        "gold-comparison": tuple(k for k in GOLD_COMPARISON_KEYS if k in out),
        "zrf": ("zrf_score",) if "zrf_score" in out else (),
    }
    result = Evaluation(out, groups={name: keys for name, keys in groups.items() if keys})
    for extra in wanted:
        if isinstance(extra, str):  # a built-in group, already computed
            continue
        ctx.metrics = dict(result)
        values = extra(ctx)
        clash = sorted(set(values) & set(result))
        if clash:
            raise ValueError(f"metric extra {extra.name!r} returned keys that an earlier group set: {clash}")
        result.update(values)
        result.groups[extra.name] = tuple(values)
    return result


__all__ = ["Evaluation", "GOLD_COMPARISON_KEYS", "MIA_KEYS", "evaluate_unlearning"]
