"""One call that scores an unlearned model (and its gold model) on forget / retain / test: a flat dict.

Thin: it runs :func:`oblivio.training.evaluate.predict_logits` once per model per split and hands the logits to
the pure functions of :mod:`oblivio.metrics`. Keys name their variant; ``gold_*`` keys hold the gold model's
value of the same metric, which is the target an aligned method should match (not beat).
"""

from __future__ import annotations

import logging
import math

import numpy as np
from torch import nn

from ..data.base import ImageDataset
from ..training.evaluate import predict_logits
from .alignment import accuracy_from_logits, activation_distance, delta, js_divergence, sample_agreement, \
    sample_kappa, zrf_score
from .mia import loss_mia_lr, per_example_cross_entropy, salun_mia_efficacy, true_class_confidence

log = logging.getLogger("oblivio")

MIA_KEYS: tuple[str, ...] = (
    "mia_loss_lr_acc", "mia_loss_lr_auc", "mia_loss_lr_tpr_at_1pct_fpr", "mia_salun_efficacy",
)


def _split_logits(model: nn.Module, splits: dict[str, ImageDataset], batch_size: int) -> dict[str, np.ndarray]:
    return {name: predict_logits(model, ds, batch_size=batch_size).double().numpy() for name, ds in splits.items()}


def _model_block(logits: dict[str, np.ndarray], splits: dict[str, ImageDataset], *, mia: bool, seed: int) -> dict[str, float]:
    out = {f"acc_{name}": accuracy_from_logits(logits[name], splits[name].labels) for name in splits}
    if not mia:
        return out
    mia_values = dict.fromkeys(MIA_KEYS, math.nan)
    forget_losses = per_example_cross_entropy(logits["forget"], splits["forget"].labels)
    test_losses = per_example_cross_entropy(logits["test"], splits["test"].labels)
    try:
        res = loss_mia_lr(forget_losses, test_losses, seed=seed)
        mia_values.update(mia_loss_lr_acc=res.accuracy, mia_loss_lr_auc=res.auc,
                          mia_loss_lr_tpr_at_1pct_fpr=res.tpr_at_1pct_fpr)
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
) -> dict[str, float]:
    """Accuracy, alignment with the gold model and membership-inference metrics, as one flat dict.

    Keys (accuracies are fractions in [0, 1]):

    * always: ``acc_forget``, ``acc_retain``, ``acc_test``;
    * with ``mia``: ``mia_loss_lr_acc``, ``mia_loss_lr_auc``, ``mia_loss_lr_tpr_at_1pct_fpr`` (starting-kit
      loss logistic regression, forget vs test) and ``mia_salun_efficacy`` (SalUn's SVC on confidence);
    * with ``gold``: the same keys prefixed ``gold_`` for the gold model, plus ``delta_forget``
      (``|acc_forget - gold_acc_forget|``), ``sample_agreement`` (fraction of the forget set on which the model
      and gold are both right or both wrong), ``sample_kappa`` (Cohen's κ of those right/wrong outcomes),
      ``activation_distance_l2`` and ``js_divergence`` (softmax of the model vs the gold model on the forget set);
    * with ``random_model``: ``zrf_score`` (1 - mean JS to the random model on the forget set).

    Args:
        model: the unlearned model ``M_u``.
        forget: ``D_f``. retain: ``D_r`` (its first ``|D_test|`` samples train SalUn's SVC). test: ``D_test``.
        gold: the gold model ``M_g`` (retrained without ``D_f``), optional.
        random_model: a randomly initialised model of the same architecture, for ZRF, optional.
        mia: compute the membership-inference metrics (they fit small scikit-learn models).
        seed: seeds the MIA subsampling and splits.
        batch_size: images per forward pass.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from oblivio.data import ImageDataset
        >>> ds = ImageDataset(torch.rand(20, 1, 4, 4), torch.arange(20) % 2, ("a", "b"))
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        >>> res = evaluate_unlearning(net, forget=ds, retain=ds, test=ds, gold=net, mia=False)
        >>> res["delta_forget"], res["js_divergence"], res["sample_agreement"]
        (0.0, 0.0, 1.0)
    """
    splits = {"forget": forget, "retain": retain, "test": test}
    logits = _split_logits(model, splits, batch_size)
    out = _model_block(logits, splits, mia=mia, seed=seed)
    if gold is not None:
        gold_logits = _split_logits(gold, splits, batch_size)
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
        random_logits = predict_logits(random_model, forget, batch_size=batch_size).double().numpy()
        out["zrf_score"] = zrf_score(logits["forget"], random_logits) if len(forget) else math.nan
    return out


__all__ = ["evaluate_unlearning", "MIA_KEYS"]
