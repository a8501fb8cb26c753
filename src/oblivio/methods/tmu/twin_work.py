"""TMU steps 1-3 that a later request can reuse (:meth:`TMU._unlearn_stages` caches what this returns): twin sets
and twin models, twin labels and margins, and, for the predictor's rule, the features and the predictor
(:mod:`.predictor_work`). Split out of :mod:`.method` by job."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from ...data.base import ImageDataset
from ...training.evaluate import predict_logits
from ...utils import indices_hash
from .aligned import true_class_margin
from .features import nf_reference
from .predictor_work import twin_predictor_work
from .twin import (
    build_twin_sets,
    generalisation_labels,
    real_twin_capacity,
    train_twin_model,
    twin_shortfall,
    twin_size,
)

__all__ = ["twin_work"]

log = logging.getLogger("oblivio.methods.tmu")


def twin_work(
    self: Any,
    model: nn.Module,
    forget: ImageDataset,
    retain: ImageDataset,
    holdout: ImageDataset,
    seed: int,
    progress: bool,
) -> dict:
    """Steps 1-3 without the forget samples' own features: everything a later request of the same class
    profile and size can reuse (twin sets and models, their labels and features, scaler, predictor,
    curriculum model, ``M_o``'s features of the NF reference set)."""
    size = self.twin_size or twin_size(len(forget), len(retain))
    replay = retain.concat(forget, name="train")
    with self._stage("twin_sets"):
        # Extra twins only where the holdout has real images for them: augmented twins are harder than D_f.
        n_twins = 1 if self.n_twins == 1 else min(self.n_twins, real_twin_capacity(forget, holdout, size=size))
        twins = build_twin_sets(forget, holdout, size=size, n_twins=n_twins, seed=seed, augment=self.twin_augment)
        # NF neighbours: D's samples of the forget classes (a class-stratified sample above nf_reference_size)
        ref = nf_reference(forget.labels, replay, max_size=self.nf_reference_size, seed=seed)

    # 1. twin models and twin generalisation labels ([M_o(x) == y]: M_o is the twin problem's gold model)
    twin_models, twin_labels, twin_infos, twin_margins = [], [], [], []
    for i, tw in enumerate(twins):
        with self._stage("twin_models"):
            m_t, t_info = train_twin_model(
                model,
                retain=retain,
                forget=forget,
                twin=tw.data,
                epochs=self.twin_epochs,
                lr=self.twin_lr,
                batch_size=self.twin_batch_size,
                replay_fraction=self.twin_replay_fraction,
                target_accuracy=self.twin_target,
                seed=seed + 101 * i,
                check_every=self.twin_check_steps,
                progress=progress,
                class_weights=self.resolved_class_weights(retain),
            )
        twin_models.append(m_t)
        twin_infos.append(t_info)
        with self._stage("twin_labels"):  # and M_t's margin on its memorised D_tw: the twin of M_o's on D_f
            twin_margins.append(true_class_margin(predict_logits(m_t, tw.data), tw.data.labels).float())
            twin_labels.append(generalisation_labels(model, tw.data))
    labels_tw = torch.cat(twin_labels)
    twin_info = dict(
        twin_size=size,
        n_twins=n_twins,
        twin_augmented=[t.n_augmented for t in twins],
        twin_epochs=[t["epochs"] for t in twin_infos],
        twin_steps=[t.get("steps") for t in twin_infos],
        twin_accuracy=[t["twin_accuracy"] for t in twin_infos],
        twin_target_accuracy=twin_infos[0]["target_accuracy"],
        twin_reached=[t["reached"] for t in twin_infos],
        twin_easy_rate=float(labels_tw.float().mean()),
        nf_reference_size_used=len(ref),
    )

    # 2-3. features of the twin problems and the predictor (the margin rule reads neither)
    parts = (
        twin_predictor_work(
            self, model, forget, replay, twins, twin_models, ref, labels_tw, seed=seed, progress=progress
        )
        if self.uses_predictor
        else {}
    )
    del twin_models
    return {
        "info": twin_info,
        "twin_labels": labels_tw,
        "twin_margins": torch.cat(twin_margins),
        "twin_features_raw": None,
        "scaler": None,
        "predictor": None,
        "curriculum": None,
        **parts,
        "nf_reference": {"ids": ref.ids, "labels": ref.labels, "dataset": ref},
        "source_forget_ids": indices_hash(sorted(forget.ids.tolist())),  # type: ignore[union-attr]
        "cold_stages": {},
    }


def note_twin_shortfall(info: dict, forget: ImageDataset, holdout: ImageDataset, *, wanted: int) -> None:
    """When fewer twin problems ran than ``wanted`` (the holdout could not fill them), record why in ``info``
    (``n_twins_requested``, ``n_twins_note``) and log it as a warning (issue 24: said, not silent)."""
    if info.get("n_twins", wanted) < wanted:
        note = twin_shortfall(forget, holdout, size=info["twin_size"], wanted=wanted)
        info.update(n_twins_requested=wanted, n_twins_note=note)
        log.warning("tmu: %s", note)
