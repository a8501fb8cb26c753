"""Twin Machine Unlearning (TMU): aligned unlearning through a twin problem whose gold model is known.

Registered as ``"tmu"`` (:class:`TMU`). The stages are public, pure-ish functions so that each can be tested and
reused: :mod:`.twin` (twin set, twin model, twin labels), :mod:`.features` (NF, AF, CF, robust scaling),
:mod:`.predictor` (the generalisation-label MLP) and :mod:`.method` (the pipeline and the aligned fine-tuning).
Scoring a run against a gold model (label accuracy, feature ablation) is evaluation, in
:mod:`oblivio.experiments.analyses`. See docs/tmu.md.

Example:
    >>> from oblivio.methods import create_method                      # doctest: +SKIP
    >>> tmu = create_method("tmu", noise_sigma=0.1)                    # doctest: +SKIP
    >>> unlearned = tmu(original, forget=f, retain=r, holdout=h)       # doctest: +SKIP
    >>> tmu.info["predicted_easy"], tmu.info["predicted_hard"]         # doctest: +SKIP
"""

from .aligned import agreement_fraction, choose_hard, noise_soft_targets, runner_up_targets, true_class_margin
from .features import (
    FEATURE_NAMES,
    RobustScaler,
    af_feature,
    attack_divergence,
    fresh_copy,
    nearest_distance,
    nf_feature,
    per_sample_loss,
    pgd_attack,
    train_curriculum_model,
)
from .method import TMU
from .predictor import GeneralisationPredictor, make_mlp, train_predictor
from .twin import TwinSet, augment_images, build_twin_sets, generalisation_labels, train_twin_model, twin_size

__all__ = [
    "agreement_fraction",
    "choose_hard",
    "runner_up_targets",
    "true_class_margin",
    "FEATURE_NAMES",
    "GeneralisationPredictor",
    "RobustScaler",
    "TMU",
    "TwinSet",
    "af_feature",
    "attack_divergence",
    "augment_images",
    "build_twin_sets",
    "fresh_copy",
    "generalisation_labels",
    "make_mlp",
    "nearest_distance",
    "nf_feature",
    "noise_soft_targets",
    "per_sample_loss",
    "pgd_attack",
    "train_curriculum_model",
    "train_predictor",
    "train_twin_model",
    "twin_size",
]
