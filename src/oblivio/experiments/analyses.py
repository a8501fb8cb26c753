"""Evaluation analyses that need what a method may never see: a gold model, its labels, a scratch model.

They live with the experiments (STYLE: "evaluation analyses live with experiments, not with methods"); the
methods they score know nothing of them.

* :func:`saving_point_comparison`: two-stage retraining against a model trained from scratch with the same
  best-on-validation rule (the two-stage paper's Tables 3 and 4).
* :func:`tmu_report`: TMU's generalisation-label accuracy against the true gold labels ``[M_g(x) == y]`` on
  ``D_f`` (TMU Table 4), and the alignment of the unlearned model with the gold model (``δ`` and the L2 activation
  distance, TMU Tables 1-3).
* :func:`feature_ablation`: retrain TMU's predictor on the twin features a run stored in ``method.info`` using
  each feature subset (NF only, AF only, CF only, all) and score each against the gold labels.
* :func:`label_accuracy`: the agreement of predicted and gold generalisation labels.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..data.base import ImageDataset
from ..methods.common import reinitialise
from ..methods.tmu.features import FEATURE_NAMES
from ..methods.tmu.predictor import train_predictor
from ..methods.tmu.twin import generalisation_labels
from ..methods.two_stage import TwoStage, validation_split
from ..metrics.alignment import activation_distance, delta
from ..metrics.tta import tta_accuracy
from ..training.evaluate import accuracy, predict_logits
from ..training.loop import KeepBest
from ..training.train import train_model

DEFAULT_ABLATION: tuple[tuple[str, ...], ...] = (("nf",), ("af",), ("cf",), FEATURE_NAMES)
"""The feature subsets :func:`feature_ablation` tries by default: each feature alone, then all three."""


# ---------------------------------------------------------------------------------------------- two-stage
@dataclass
class SavingPointComparison:
    """Two-stage retraining against a scratch model (SPEC §4.5; the paper's Tables 3 and 4).

    Attributes:
        two_stage_saving_point: 1-based epoch of the two-stage model's best validation accuracy.
        scratch_saving_point: the same for a model retrained from scratch with the full recipe.
        two_stage_epochs: retraining epochs the two-stage method ran.
        scratch_epochs: epochs the scratch model ran.
        two_stage_val_acc: validation accuracy at the two-stage saving point.
        scratch_val_acc: validation accuracy at the scratch saving point.
        two_stage_tta: accuracy on ``D_f`` of the two-stage model under each test-time view.
        scratch_tta: the same for the scratch model.
        chance: ``1 / C``.
        neutralisation_epochs: epochs stage 1 took.
        label_map: the contrastive label map.
        validation: ``"holdout"`` or ``"retain-split"``.
        two_stage_seconds: wall time of the two-stage method.
        scratch_seconds: wall time of the scratch training.
    """

    two_stage_saving_point: int
    scratch_saving_point: int
    two_stage_epochs: int
    scratch_epochs: int
    two_stage_val_acc: float
    scratch_val_acc: float
    two_stage_tta: dict[str, float]
    scratch_tta: dict[str, float]
    chance: float
    neutralisation_epochs: int
    label_map: dict[int, int]
    validation: str
    two_stage_seconds: float
    scratch_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def saving_point_comparison(
    original: nn.Module,
    *,
    forget: ImageDataset,
    retain: ImageDataset,
    holdout: ImageDataset | None = None,
    method: TwoStage | None = None,
    seed: int = 0,
    progress: bool = False,
) -> tuple[nn.Module, nn.Module, SavingPointComparison]:
    """Run two-stage retraining and a scratch model side by side; compare saving points and forget accuracy.

    The scratch model is the original architecture re-initialised (seeded by ``seed``) and trained with the full
    pre-training recipe of ``method`` on the same retraining data, with the same best-on-validation checkpoint
    (the same validation set: ``holdout`` or the same seeded share of ``D_r``). Both models' accuracy on ``D_f`` is
    measured under test-time augmentation (:func:`oblivio.metrics.tta.tta_accuracy`) to be compared with chance.

    Args:
        original: the original model ``M_o`` (not modified).
        forget: ``D_f``.
        retain: ``D_r``.
        holdout: optional validation images (unseen, same distribution).
        method: a configured :class:`~oblivio.methods.two_stage.TwoStage` (default hyper-parameters when ``None``).
        seed: seed of both runs.
        progress: progress bars.

    Returns:
        ``(two_stage_model, scratch_model, comparison)``.
    """
    method = method or TwoStage()
    unlearned = method(original, forget=forget, retain=retain, holdout=holdout, seed=seed, progress=progress)
    info = method.info
    train_set, val_set, val_source = validation_split(retain, holdout, fraction=method.val_fraction, seed=seed)
    scratch = copy.deepcopy(original)
    keep = KeepBest(lambda m: accuracy(m, val_set), name="val_acc")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        reinitialise(scratch)
        result = train_model(
            scratch, train_set, recipe=method.recipe, seed=seed, callbacks=[keep], progress=progress, desc="scratch"
        )
    scratch.eval()
    report = SavingPointComparison(
        two_stage_saving_point=int(info["saving_point"]),
        scratch_saving_point=keep.best_epoch,
        two_stage_epochs=int(info["retrain_epochs"]),
        scratch_epochs=result.epochs_run,
        two_stage_val_acc=float(info["best_val_acc"]),
        scratch_val_acc=keep.best_value,
        two_stage_tta=tta_accuracy(unlearned, forget),
        scratch_tta=tta_accuracy(scratch, forget),
        chance=1.0 / forget.num_classes,
        neutralisation_epochs=int(info["neutralisation_epochs"]),
        label_map=dict(info["label_map"]),
        validation=val_source,
        two_stage_seconds=float(info["seconds"]),
        scratch_seconds=result.seconds,
    )
    return unlearned, scratch, report


# ---------------------------------------------------------------------------------------------- TMU
def label_accuracy(predicted: Sequence[int] | torch.Tensor, gold: Sequence[int] | torch.Tensor) -> float:
    """Fraction of samples whose predicted generalisation label equals the gold one (NaN when there are none).

    The one label accuracy: the runner's ``label-accuracy`` extra writes it into a row's
    ``metrics["label_accuracy"]``, :func:`tmu_report` and :func:`feature_ablation` return it. Computed in float64
    (the exact ``matches / n``), as rows have always held it.

    Example:
        >>> label_accuracy([1, 0, 1, 1], [1, 1, 1, 0])
        0.5
    """
    p, g = torch.as_tensor(predicted).long().reshape(-1), torch.as_tensor(gold).long().reshape(-1)
    if p.shape != g.shape:
        raise ValueError(f"{p.numel()} predicted labels but {g.numel()} gold labels")
    return float((p == g).double().mean()) if p.numel() else float("nan")


def _aligned_gold_labels(method_info: dict, gold_model: nn.Module, forget: ImageDataset) -> torch.Tensor:
    ids = method_info.get("forget_ids")
    if ids is not None and list(ids) != forget.ids.tolist():  # type: ignore[union-attr]
        raise ValueError("the forget set's ids differ from those of the TMU run (pass the same forget set, same order)")
    return generalisation_labels(gold_model, forget)


def tmu_report(
    method_info: dict,
    *,
    gold_model: nn.Module,
    original_model: nn.Module,
    unlearned_model: nn.Module,
    forget: ImageDataset,
) -> dict[str, Any]:
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
    acc = {
        name: float((z.argmax(1) == y).float().mean())
        for name, z in (("original", logits_o), ("gold", logits_g), ("unlearned", logits_u))
    }
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


def feature_ablation(
    method_info: dict,
    gold_labels: Sequence[int] | torch.Tensor,
    *,
    feature_sets: Iterable[Sequence[str]] = DEFAULT_ABLATION,
    seed: int = 0,
    **predictor_kwargs: Any,
) -> dict[str, float]:
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
    names = list(method_info.get("features") or [])
    if not names or "twin_features" not in method_info:
        raise ValueError(
            "the run computed no features (TMU's margin rule skips them): run it with "
            "paper_rule_check=True, or a predictor-rule variant such as tmu.predictor"
        )
    x_tw = torch.as_tensor(method_info["twin_features"], dtype=torch.float32)
    y_tw = torch.as_tensor(method_info["twin_labels"]).long()
    x_f = torch.as_tensor(method_info["forget_features"], dtype=torch.float32)
    out = {}
    for subset in feature_sets:
        missing = [f for f in subset if f not in names]
        if missing:
            raise ValueError(
                f"the run computed features {names}; {missing} are missing (run with features={FEATURE_NAMES})"
            )
        cols = [names.index(f) for f in subset]
        predictor = train_predictor(x_tw[:, cols], y_tw, seed=seed, **predictor_kwargs)
        out["+".join(subset)] = label_accuracy(predictor.predict(x_f[:, cols]), gold_labels)
    return out


__all__ = [
    "DEFAULT_ABLATION",
    "SavingPointComparison",
    "feature_ablation",
    "label_accuracy",
    "saving_point_comparison",
    "tmu_report",
]
