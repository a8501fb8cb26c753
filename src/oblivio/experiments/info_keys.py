"""The ``info`` keys and hyper-parameter names that the report and the plots read from result rows.

Shared by :mod:`oblivio.experiments.report` and :mod:`oblivio.experiments.plots` (so that neither imports the other).
"""

from __future__ import annotations

SAVING_POINT_KEYS: tuple[str, ...] = ("saving_point", "saving_point_epoch", "epochs_to_saving_point", "best_epoch",
                                      "retrain_best_epoch")
"""``info`` keys of the two-stage method read as "epochs to the saving point" (first one present wins)."""
NEUTRALISATION_KEYS: tuple[str, ...] = ("neutralisation_epochs", "neutralization_epochs", "neutralise_epochs",
                                        "neutralize_epochs")
"""``info`` keys read as the number of neutralisation epochs."""
NEUTRALISED_ACC_KEYS: tuple[str, ...] = ("forget_acc_neutralised", "forget_acc_neutralized")
"""``info`` keys read as the forget accuracy right after neutralisation."""
LABEL_ACCURACY_KEYS: tuple[str, ...] = ("label_accuracy", "predictor_label_accuracy")
"""``info`` keys of TMU read as the predictor's label accuracy against the gold labels."""
ABLATION_KEYS: tuple[str, ...] = ("label_accuracy_by_features", "ablation", "feature_ablation")
"""``info`` keys of TMU holding ``{feature_set: label_accuracy}`` (or ``{feature_set: {"label_accuracy": x}}``)."""
FEATURES_HPARAMS: tuple[str, ...] = ("features", "feature_set")
"""Hyper-parameters of TMU naming the feature set of a run."""
MISLABEL_HPARAMS: tuple[str, ...] = ("mislabel", "label_mode", "mislabel_mode")
"""Hyper-parameters of the two-stage method naming minimum / maximum mislabel."""


__all__ = ["ABLATION_KEYS", "FEATURES_HPARAMS", "LABEL_ACCURACY_KEYS", "MISLABEL_HPARAMS", "NEUTRALISATION_KEYS",
           "NEUTRALISED_ACC_KEYS", "SAVING_POINT_KEYS"]
