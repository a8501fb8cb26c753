"""TMU steps 2-3, the paper's generalisation predictor: NF / AF / CF features of the twin and the original problem,
the scaler and the MLP predictor.

Only runs that read the predictor compute these (``TMU.uses_predictor``: the paper's score ``hard_score="predictor"``,
or the margin rule with ``paper_rule_check=True``). Issue 15's default decides by ``M_o``'s true-class margin and
skips them, which is about half of a cold request's CPU time (docs/tmu.md, "Cost").

The functions take the :class:`~oblivio.methods.tmu.method.TMU` instance first (its hyper-parameters and its stage
meter), as :func:`oblivio.methods.tmu.aligned.run_aligned_step` does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ...data.base import ImageDataset
from ...data.loader import stratified_sample
from ...training.evaluate import predict_features
from .features import RobustScaler, af_feature, nearest_distance, per_sample_loss, train_curriculum_model
from .predictor import train_predictor
from .twin import TwinSet

# ``tmu`` below is a TMU instance (typed Any: importing .method here would be an import cycle)
TMU = Any

__all__ = ["forget_features", "reference_features", "twin_predictor_work"]


def twin_predictor_work(
    tmu: TMU,
    model: nn.Module,
    forget: ImageDataset,
    replay: ImageDataset,
    twins: list[TwinSet],
    twin_models: list[nn.Module],
    ref: ImageDataset,
    labels_tw: torch.Tensor,
    *,
    seed: int,
    progress: bool,
) -> dict:
    """The twin problems' raw features (one curriculum model for both problems), the scaler and the predictor, as
    twin-cache entry fields (``twin_features_raw``, ``scaler``, ``predictor``, ``curriculum``)."""
    curriculum = None
    if "cf" in tmu.features:
        with tmu._stage("curriculum"):
            # cf_fraction of D (class-stratified), every D image of the forget classes, and the twin set(s):
            # each forget-class image and each twin image is seen once, whichever samples a request forgets
            ordered = replay.subset(torch.argsort(replay.ids), name="train")  # type: ignore[arg-type]
            part = torch.as_tensor(stratified_sample(ordered, tmu.cf_fraction, seed=seed))
            in_profile = torch.isin(ordered.labels, torch.unique(forget.labels))
            pick = torch.unique(torch.cat([part, torch.nonzero(in_profile).squeeze(1)]))
            cf_set = ordered.subset(pick)
            for tw in twins:
                cf_set = cf_set.concat(tw.data)
            curriculum = train_curriculum_model(
                model,
                cf_set,
                epochs=tmu.cf_epochs,
                lr=tmu.cf_lr,
                batch_size=tmu.cf_batch_size,
                seed=seed,
                progress=progress,
            )
    with tmu._stage("twin_features"):
        # twin problem: model M_t, forget set D_tw, remain set ref ⊂ D_r ∪ D_f
        raw_tw = torch.cat(
            [
                _feature_columns(tmu, m_t, tw.data, functools.partial(_features_and_labels, m_t, ref), curriculum, seed)
                for m_t, tw in zip(twin_models, twins, strict=True)
            ]
        )
        scaler = RobustScaler.fit(raw_tw)
    with tmu._stage("predictor"):
        predictor = train_predictor(
            scaler.transform(raw_tw),
            labels_tw,
            hidden=tmu.predictor_hidden,
            lr=tmu.predictor_lr,
            epochs=tmu.predictor_epochs,
            batch_size=tmu.predictor_batch_size,
            balance=tmu.balance,
            seed=seed,
        )
    return {
        "twin_features_raw": raw_tw,
        "scaler": {"lo": scaler.lo, "hi": scaler.hi},
        "predictor": {
            "state": predictor.mlp.state_dict() if predictor.mlp is not None else None,
            "in_features": int(raw_tw.shape[1]),
            "threshold": float(predictor.threshold),
            "constant": predictor.constant,
            "train_accuracy": float(predictor.train_accuracy),
            "easy_rate": float(predictor.easy_rate),
        },
        "curriculum": curriculum.state_dict() if curriculum is not None else None,
    }


def forget_features(
    tmu: TMU, model: nn.Module, forget: ImageDataset, entry: dict, curriculum: nn.Module | None, seed: int
) -> torch.Tensor:
    """Raw features of the original problem (``M_o``, ``D_f``, remain set: the reference set minus ``D_f``).

    ``M_o``'s features of the reference set are ``entry["original_features"]`` (:func:`reference_features`)."""

    def remain() -> tuple[torch.Tensor, torch.Tensor]:
        ref = entry["nf_reference"]
        keep = ~torch.isin(ref["ids"], forget.ids)  # type: ignore[arg-type]
        return entry["original_features"][keep], ref["labels"][keep]

    return _feature_columns(tmu, model, forget, remain, curriculum, seed)


def reference_features(tmu: TMU, model: nn.Module, entry: dict) -> None:
    """``M_o``'s features of the NF reference set, into the entry: reused when the entry was made with this very
    model, else computed once (a separate stage, so stage costs do not nest)."""
    model_hash = tmu._model_hash(model)
    if "nf" in tmu.features and entry.get("original_features_model") != model_hash:
        with tmu._stage("original_reference_features"):
            entry["original_features"] = predict_features(model, entry["nf_reference"]["dataset"])
            entry["original_features_model"] = model_hash


def _features_and_labels(model: nn.Module, data: ImageDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """``model``'s features of ``data`` and ``data``'s labels (the twin problem's NF remain set, when NF asks)."""
    return predict_features(model, data), data.labels


def _feature_columns(
    tmu: TMU,
    model: nn.Module,
    data: ImageDataset,
    remain: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    curriculum: nn.Module | None,
    seed: int,
) -> torch.Tensor:
    """The feature columns of ``data`` in ``tmu.features`` order, one place for the twin and the original problem;
    ``remain()`` gives the NF remain set's features and labels (called only when NF is used)."""
    cols = []
    for name in tmu.features:
        if name == "nf":
            data_features = predict_features(model, data)  # before the remain set's, as always
            remain_features, remain_labels = remain()
            cols.append(nearest_distance(data_features, data.labels, remain_features, remain_labels, k=tmu.nf_k))
        elif name == "af":
            cols.append(
                af_feature(
                    model,
                    data,
                    eps=tmu.af_eps,
                    steps=tmu.af_steps,
                    random_start=tmu.af_random_start,
                    form=tmu.af_form,
                    seed=seed,
                )
            )
        else:
            cols.append(per_sample_loss(curriculum, data))  # type: ignore[arg-type]
    return torch.stack(cols, 1)
