"""TMU's twin-work entry (what :class:`~oblivio.methods.tmu.cache.TwinCache` keeps): restore it, store it, and
rebind its NF reference set to a request's own data.

An entry holds the twin labels and features, the scaler, the predictor's weights, the curriculum model's weights,
the twin models' margins on ``D_tw`` and the NF reference set (by id). See :func:`.twin_work.twin_work` for how one is
made and docs/tmu.md ("Cost and reuse") for when reuse is sound.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...data.base import ImageDataset
from .features import RobustScaler, fresh_copy
from .predictor import GeneralisationPredictor, make_mlp

__all__ = ["rebind_reference", "restore_entry", "storable"]


def restore_entry(
    entry: dict, model: nn.Module, *, hidden: Sequence[int]
) -> tuple[GeneralisationPredictor, RobustScaler, nn.Module | None]:
    """The predictor, the scaler and the curriculum model (None without CF) of ``entry``."""
    p = entry["predictor"]
    mlp = None
    if p["state"] is not None:
        mlp = make_mlp(int(p["in_features"]), hidden=hidden)
        mlp.load_state_dict(p["state"])
        mlp.eval()
    predictor = GeneralisationPredictor(
        mlp=mlp,
        threshold=float(p["threshold"]),
        constant=p["constant"],
        train_accuracy=float(p["train_accuracy"]),
        easy_rate=float(p["easy_rate"]),
    )
    scaler = RobustScaler(lo=entry["scaler"]["lo"], hi=entry["scaler"]["hi"])
    curriculum = None
    if entry.get("curriculum") is not None:
        curriculum = fresh_copy(model)
        curriculum.load_state_dict(entry["curriculum"])
        curriculum.eval()
    return predictor, scaler, curriculum


def storable(entry: dict) -> dict:
    """The entry without the in-memory reference dataset (images are re-read from ``D`` by id on a hit)."""
    out = dict(entry)
    out["nf_reference"] = {k: v for k, v in entry["nf_reference"].items() if k != "dataset"}
    return out


def rebind_reference(entry: dict, retain: ImageDataset, forget: ImageDataset) -> dict:
    """A shallow copy of a cached ``entry`` whose NF reference images are read, by id, from this request's
    ``D_r ∪ D_f`` (a child version lacks its parent's forgotten samples: those references are dropped, with their
    rows of ``M_o``'s cached reference features)."""
    entry = dict(entry)  # what follows must not change the cached entry
    replay = retain.concat(forget, name="train")
    pos_by_id = {int(i): p for p, i in enumerate(replay.ids.tolist())}  # type: ignore[union-attr]
    ref_ids = entry["nf_reference"]["ids"]
    have = torch.tensor([int(i) in pos_by_id for i in ref_ids.tolist()], dtype=torch.bool)
    ref = replay.subset(
        torch.tensor([pos_by_id[int(i)] for i in ref_ids[have].tolist()], dtype=torch.long), name="train:nf-reference"
    )
    entry["nf_reference"] = {"ids": ref.ids, "labels": ref.labels, "dataset": ref}
    if entry.get("original_features") is not None:
        entry["original_features"] = entry["original_features"][have]
    return entry
