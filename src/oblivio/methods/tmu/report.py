"""Pure helpers that score a TMU run against a gold model (for benchmarks; a method never sees the gold model).

* :func:`tmu_report`: generalisation-label accuracy of the predictor against the true gold labels
  ``[M_g(x) == y]`` on ``D_f`` (TMU Table 4), and the alignment of the unlearned model with the gold model
  (``δ`` and the L2 activation distance, TMU Tables 1-3).
* :func:`feature_ablation`: retrain the predictor on the twin features a run stored in ``method.info`` using
  each feature subset (NF only, AF only, CF only, all) and score each against the gold labels.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch
from torch import nn

from ...data.base import ImageDataset
from ...metrics.alignment import activation_distance, delta
from ...training.evaluate import predict_logits
from .features import FEATURE_NAMES
from .predictor import train_predictor
from .twin import generalisation_labels

__all__ = ["DEFAULT_ABLATION", "feature_ablation", "label_accuracy", "tmu_report"]

DEFAULT_ABLATION: tuple[tuple[str, ...], ...] = (("nf",), ("af",), ("cf",), FEATURE_NAMES)


def label_accuracy(predicted: Sequence[int] | torch.Tensor, gold: Sequence[int] | torch.Tensor) -> float:
    """Fraction of samples whose predicted generalisation label equals the gold one.

    Example:
        >>> label_accuracy([1, 0, 1, 1], [1, 1, 1, 0])
        0.5
    """
    p, g = torch.as_tensor(predicted).long().reshape(-1), torch.as_tensor(gold).long().reshape(-1)
    if p.shape != g.shape:
        raise ValueError(f"{p.numel()} predicted labels but {g.numel()} gold labels")
    return float((p == g).float().mean()) if p.numel() else float("nan")


def _aligned_gold_labels(method_info: dict, gold_model: nn.Module, forget: ImageDataset) -> torch.Tensor:
    ids = method_info.get("forget_ids")
    if ids is not None and list(ids) != forget.ids.tolist():  # type: ignore[union-attr]
        raise ValueError("the forget set's ids differ from those of the TMU run (pass the same forget set, same order)")
    return generalisation_labels(gold_model, forget)


def tmu_report(method_info: dict, *, gold_model: nn.Module, original_model: nn.Module, unlearned_model: nn.Module,
               forget: ImageDataset) -> dict[str, Any]:
    """Score one TMU run against the gold model.

    Args:
        method_info: ``method.info`` after the run (needs ``predicted_labels`` and ``forget_ids``).
        gold_model: ``M_g`` (retrained without ``D_f``).
        original_model: ``M_o``.
        unlearned_model: ``M_u``, the output of the run.
        forget: ``D_f``, in the order the method saw it.

    Returns:
        A dict: ``label_accuracy`` (predicted vs ``[M_g(x) == y]``), ``gold_easy_rate``, ``predicted_easy_rate``,
        ``acc_forget_{original,gold,unlearned}``, ``delta`` (``|ACC_Df(M_u) − ACC_Df(M_g)|``),
        ``activation_distance_l2`` (``M_u`` vs ``M_g`` on ``D_f``) and ``activation_distance_l2_original``.
    """
    gold_labels = _aligned_gold_labels(method_info, gold_model, forget)
    predicted = torch.as_tensor(method_info["predicted_labels"]).long()
    y = forget.labels
    logits_g = predict_logits(gold_model, forget)
    logits_u = predict_logits(unlearned_model, forget)
    logits_o = predict_logits(original_model, forget)
    acc = {name: float((z.argmax(1) == y).float().mean()) for name, z in
           (("original", logits_o), ("gold", logits_g), ("unlearned", logits_u))}
    return {
        "label_accuracy": label_accuracy(predicted, gold_labels),
        "gold_easy_rate": float(gold_labels.float().mean()),
        "predicted_easy_rate": float(predicted.float().mean()),
        "acc_forget_original": acc["original"],
        "acc_forget_gold": acc["gold"],
        "acc_forget_unlearned": acc["unlearned"],
        "delta": delta(acc["unlearned"], acc["gold"]),
        "activation_distance_l2": activation_distance(logits_u.numpy(), logits_g.numpy(), norm="l2"),
        "activation_distance_l2_original": activation_distance(logits_o.numpy(), logits_g.numpy(), norm="l2"),
    }


def feature_ablation(method_info: dict, gold_labels: Sequence[int] | torch.Tensor, *,
                     feature_sets: Iterable[Sequence[str]] = DEFAULT_ABLATION, seed: int = 0,
                     **predictor_kwargs: Any) -> dict[str, float]:
    """Label accuracy of predictors retrained on feature subsets of one TMU run (TMU Table 4's ablation).

    The run's stored twin features, twin labels and forget features (already robustly scaled) are reused, so the
    expensive twin model and features are computed once; only the small MLP is retrained per subset.

    Args:
        method_info: ``method.info`` of a run with every feature of the subsets (the default run has all three).
        gold_labels: ``[M_g(x) == y]`` on ``D_f`` (:func:`oblivio.methods.tmu.generalisation_labels`).
        feature_sets: subsets to try; keys of the result join names with ``+`` (``"nf"``, ``"nf+af+cf"``).
        seed: predictor seed.
        **predictor_kwargs: passed to :func:`oblivio.methods.tmu.train_predictor` (e.g. ``balance="weights"``).

    Returns:
        ``{"nf": acc, "af": acc, "cf": acc, "nf+af+cf": acc}`` (or the subsets asked for).
    """
    names = list(method_info["features"])
    x_tw = torch.as_tensor(method_info["twin_features"], dtype=torch.float32)
    y_tw = torch.as_tensor(method_info["twin_labels"]).long()
    x_f = torch.as_tensor(method_info["forget_features"], dtype=torch.float32)
    out = {}
    for subset in feature_sets:
        missing = [f for f in subset if f not in names]
        if missing:
            raise ValueError(f"the run computed features {names}; {missing} are missing (run with features={FEATURE_NAMES})")
        cols = [names.index(f) for f in subset]
        predictor = train_predictor(x_tw[:, cols], y_tw, seed=seed, **predictor_kwargs)
        out["+".join(subset)] = label_accuracy(predictor.predict(x_f[:, cols]), gold_labels)
    return out
