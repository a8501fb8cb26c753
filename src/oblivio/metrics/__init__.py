"""Metrics of unlearning: pure functions (arrays in, numbers out) and thin model-level wrappers.

* :mod:`.alignment` - accuracy, δ, sample agreement and Cohen's κ, activation distance (L2 / L1), JS divergence, ZRF.
* :mod:`.mia` - starting-kit loss logistic-regression MIA, SalUn MIA-efficacy, modified entropy, ROC helpers.
* :mod:`.forget_quality` - NeurIPS 2023 forget quality (logit-scaled confidence, per-example ε, F, final score).
* :mod:`.ulira` - U-LiRA (Hayes et al. 2024).
* :mod:`.tta` - accuracy under test-time augmentation.
* :mod:`.cost` - timing and RTE.
* :mod:`.cost_ratio` - :class:`RunCost` and :func:`cost_ratios`: a run's cost relative to retraining.
* :mod:`.report` - :func:`evaluate_unlearning`, everything for one model (and its gold model) as a flat dict.

See ``docs/metrics.md`` for the exact definitions.

Example:
    >>> import numpy as np
    >>> from oblivio.metrics import js_divergence, activation_distance
    >>> z = np.array([[1.0, 2.0, 3.0]])
    >>> js_divergence(z, z), activation_distance(z, z)
    (0.0, 0.0)
"""

from __future__ import annotations

from .alignment import (
    ActivationNorm,
    accuracy_from_logits,
    activation_distance,
    cohen_kappa,
    delta,
    js_divergence,
    random_subset_agreement,
    sample_agreement,
    sample_kappa,
    zrf_score,
)
from .cost import Timer, rte
from .cost_ratio import RunCost, cost_ratios
from .forget_quality import (
    ForgetQualityResult,
    epsilon_to_score,
    final_score,
    forget_quality,
    logit_scaled_confidence,
    n_bins,
    per_example_epsilon,
)
from .mia import (
    LossLRMIAResult,
    SalunMIAResult,
    loss_mia_lr,
    modified_entropy,
    per_example_cross_entropy,
    roc_auc,
    salun_mia_efficacy,
    tpr_at_fpr,
    true_class_confidence,
)
from .report import evaluate_unlearning
from .tta import TTA_VIEWS, tta_accuracy
from .ulira import ULiRAResult, best_balanced_accuracy, ulira, ulira_accuracy, ulira_log_likelihood_ratio

__all__ = [
    "ActivationNorm",
    "accuracy_from_logits",
    "activation_distance",
    "delta",
    "js_divergence",
    "zrf_score",
    "cohen_kappa",
    "random_subset_agreement",
    "sample_agreement",
    "sample_kappa",
    "Timer",
    "rte",
    "RunCost",
    "cost_ratios",
    "ForgetQualityResult",
    "epsilon_to_score",
    "final_score",
    "forget_quality",
    "logit_scaled_confidence",
    "n_bins",
    "per_example_epsilon",
    "LossLRMIAResult",
    "SalunMIAResult",
    "loss_mia_lr",
    "modified_entropy",
    "per_example_cross_entropy",
    "roc_auc",
    "salun_mia_efficacy",
    "tpr_at_fpr",
    "true_class_confidence",
    "evaluate_unlearning",
    "TTA_VIEWS",
    "tta_accuracy",
    "ULiRAResult",
    "best_balanced_accuracy",
    "ulira",
    "ulira_accuracy",
    "ulira_log_likelihood_ratio",
]
