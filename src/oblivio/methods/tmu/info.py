"""The keys of TMU's ``method.info`` that code outside TMU reads: one declaration for writer and readers.

TMU (:mod:`oblivio.methods.tmu.method`) writes these keys; the runner (label accuracy, feature ablation), the
ledger (the twin estimate of the gold forget accuracy) and the reports read them by these names, never by trying
several spellings. ``info`` holds more keys (the twin features, per-twin lists...); only the ones read elsewhere are
declared here.

Example:
    >>> info: TMUInfo = {"predicted_easy": 7, "predicted_hard": 3}
    >>> info[PREDICTED_EASY] / (info[PREDICTED_EASY] + info[PREDICTED_HARD])
    0.7
"""

from __future__ import annotations

from typing import Any, TypedDict


class TMUInfo(TypedDict, total=False):
    """TMU's ``info`` keys read outside TMU (all optional: a run that stops early writes fewer)."""

    predicted_easy: int
    """Forget samples the decision rule labels easy (the gold model would still classify them correctly)."""
    predicted_hard: int
    """Forget samples the decision rule labels hard (the gold model would get them wrong): the ones unlearned."""
    predicted_labels: list[int]
    """Per forget sample, in ``forget_ids`` order: 1 = easy, 0 = hard (the rule of ``hard_score``/``hard_count``;
    for ``tmu.random-control``, the random permutation of it)."""
    hard_fraction: float
    """Share of ``D_f`` the rule called hard (absent under the paper's predictor rule, whose threshold decides)."""
    twin_rule_agreement: float
    """With ``hard_count="agreement"``: the rule's agreement with the twin set's gold labels at its chosen share."""
    paper_rule_labels: list[int]
    """Under any rule but the paper's, when the predictor was trained (``hard_score="predictor"`` or
    ``paper_rule_check=True``): what the paper's predictor rule would have decided (for comparison)."""
    forget_ids: list[int]
    """Sample ids of the forget set, in the order of ``predicted_labels``."""
    twin_cache_hit: bool
    """Whether the twin work (twin models, features, predictor training data) came from the twin cache."""
    stages: dict[str, dict[str, Any]]
    """Cost of each stage, ``{stage name: {"wall_seconds", "cpu_seconds", "forward_samples", "backward_samples"}}``."""
    unlearn_epochs: int
    """Epochs of the aligned unlearning (0 when nothing had to be unlearned)."""
    acc_forget_hard: float
    """Accuracy on the predicted-hard forget samples after unlearning (NaN when there are none)."""
    acc_forget_easy: float
    """Accuracy on the predicted-easy forget samples after unlearning (NaN when there are none)."""
    twin_easy_rate: float
    """Share of easy twin samples (the original model, the twin problem's gold model, gets them right)."""
    predictor_train_accuracy: float
    """The generalisation-label predictor's accuracy on its own (twin) training data (only when it was trained)."""
    features: list[str]
    """The feature set of the run, in column order (``"nf"``, ``"af"``, ``"cf"``); empty when no feature was computed
    (the margin rule without ``paper_rule_check``: then the three feature keys below are absent too)."""
    twin_features: list[list[float]]
    """The predictor's training inputs: twin-sample features, robustly scaled (columns as ``features``)."""
    twin_labels: list[int]
    """The predictor's training targets: 1 = the twin sample is easy, 0 = hard."""
    forget_features: list[list[float]]
    """Forget-sample features, scaled as ``twin_features`` (the predictor's inputs at decision time)."""


PREDICTED_EASY = "predicted_easy"
PREDICTED_HARD = "predicted_hard"
PREDICTED_LABELS = "predicted_labels"
HARD_FRACTION = "hard_fraction"
TWIN_RULE_AGREEMENT = "twin_rule_agreement"
PAPER_RULE_LABELS = "paper_rule_labels"
FORGET_IDS = "forget_ids"
TWIN_CACHE_HIT = "twin_cache_hit"
STAGES = "stages"
UNLEARN_EPOCHS = "unlearn_epochs"
ACC_FORGET_HARD = "acc_forget_hard"
ACC_FORGET_EASY = "acc_forget_easy"
TWIN_EASY_RATE = "twin_easy_rate"
PREDICTOR_TRAIN_ACCURACY = "predictor_train_accuracy"
FEATURES = "features"
TWIN_FEATURES = "twin_features"
TWIN_LABELS = "twin_labels"
FORGET_FEATURES = "forget_features"

TMU_INFO_KEYS: frozenset[str] = frozenset(TMUInfo.__annotations__)
"""Every declared key (a test checks that the constants above name declared keys)."""

PREDICTOR_INFO_KEYS: frozenset[str] = frozenset(
    {PAPER_RULE_LABELS, PREDICTOR_TRAIN_ACCURACY, TWIN_FEATURES, FORGET_FEATURES}
)
"""The keys written only when the predictor was trained (``hard_score="predictor"`` or ``paper_rule_check=True``)."""


__all__ = [
    "ACC_FORGET_EASY",
    "ACC_FORGET_HARD",
    "FEATURES",
    "FORGET_FEATURES",
    "FORGET_IDS",
    "HARD_FRACTION",
    "PAPER_RULE_LABELS",
    "PREDICTED_EASY",
    "PREDICTED_HARD",
    "PREDICTED_LABELS",
    "PREDICTOR_INFO_KEYS",
    "PREDICTOR_TRAIN_ACCURACY",
    "STAGES",
    "TMUInfo",
    "TMU_INFO_KEYS",
    "TWIN_CACHE_HIT",
    "TWIN_EASY_RATE",
    "TWIN_FEATURES",
    "TWIN_LABELS",
    "TWIN_RULE_AGREEMENT",
    "UNLEARN_EPOCHS",
]
