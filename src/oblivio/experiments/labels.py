"""Human labels for internal names, and the one unit convention of every report.

One mapping (:data:`LABELS`) from the internal keys the reports show (metrics, a method's ``info`` entries,
hyper-parameters, experiment fields) to words a reader understands; :func:`label` falls back to the key with its
underscores as spaces, so that a new key is readable before anyone labels it. The internal name is always shown
beside the label (in ``code``), so the label never hides what was measured.

Units: a fraction (an accuracy, δ, an agreement, an MIA accuracy) is shown in percent, and a header carries its
unit in parentheses: ``ACC_test (%)``, ``δ (points)``, ``seconds (s)``. :func:`with_unit` writes that header,
:func:`unit_of` says which unit a metric key has.

Hyper-parameters: :func:`hparam_rows` puts a run's hyper-parameters beside the method's defaults (its registered
dataclass), with the description from the method's docstring, and marks the values that differ.

Example:
    >>> label("twin_rule_agreement")
    "Decision rule's agreement with the twin set's gold labels"
    >>> label("some_new_key")
    'some new key'
    >>> with_unit("ACC_test", "%"), unit_of("gold_acc_forget"), unit_of("js_divergence")
    ('ACC_test (%)', '%', '')
    >>> fmt_value("acc_forget", 0.8125), fmt_value("delta_forget", 0.0625), fmt_value("js_divergence", 0.01234)
    ('81.25', '6.25', '0.01234')
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re
from typing import Any

LABELS: dict[str, str] = {
    # accuracies and alignment with the gold model (metrics.report.evaluate_unlearning)
    "acc_forget": "Accuracy on the forgotten samples (D_f)",
    "acc_retain": "Accuracy on the retained training samples (D_r)",
    "acc_test": "Accuracy on the test set (D_test)",
    "delta_forget": "δ: gap to the retrained model's accuracy on D_f",
    "sample_agreement": "Sample agreement with the retrained model on D_f",
    "sample_kappa": "Cohen's κ of that agreement",
    "activation_distance_l2": "Activation distance to the retrained model (L2)",
    "js_divergence": "Jensen-Shannon divergence to the retrained model",
    "mia_loss_lr_acc": "Membership inference, loss-based logistic regression (forget vs test): accuracy",
    "mia_loss_lr_auc": "Membership inference, loss-based logistic regression (forget vs test): AUC",
    "mia_loss_lr_tpr_at_1pct_fpr": "Membership inference, loss-based logistic regression: TPR at 1% FPR",
    "mia_salun_efficacy": "SalUn MIA-efficacy (SVC on true-class confidence, retain vs test, applied to forget)",
    "zrf_score": "ZRF score (1 - JS to a random model)",
    # the twin estimate of the ledger (ledger.verification.twin_estimate)
    "twin_est_gold_acc_forget": "Estimated accuracy of a retrained model on D_f (twin estimate)",
    "twin_est_delta_forget": "Estimated δ (twin estimate)",
    "twin_est_source": "Source of the estimate",
    "twin_predicted_easy": "Forget samples predicted easy (kept)",
    "twin_predicted_hard": "Forget samples predicted hard (unlearned)",
    # cost
    "seconds": "Wall time",
    "gold_seconds": "Wall time to retrain (gold)",
    "cost_ratio": "Cost relative to retraining (wall time ratio)",
    "cpu_seconds": "CPU time (all threads)",
    "forward_samples": "Forward sample-passes",
    "backward_samples": "Backward sample-passes",
    "n_forget": "Samples forgotten (D_f)",
    "n_retain": "Retained training samples (D_r)",
    "n_test": "Test samples",
    # a method's info (TMU: methods.tmu.info)
    "epochs": "Epochs",
    "predicted_easy": "Forget samples predicted easy (kept as they are)",
    "predicted_hard": "Forget samples predicted hard (unlearned)",
    "hard_fraction": "Share of D_f predicted hard",
    "twin_rule_agreement": "Decision rule's agreement with the twin set's gold labels",
    "twin_easy_rate": "Share of twin samples the twin gold model gets right",
    "twin_size": "Twin set size",
    "twin_target_accuracy": "Twin fine-tuning's target accuracy",
    "twin_cache_hit": "Twin work reused from the cache",
    "n_twins": "Twin problems",
    "unlearn_epochs": "Epochs of the aligned unlearning",
    "acc_forget_easy": "Accuracy on the predicted-easy forget samples",
    "acc_forget_hard": "Accuracy on the predicted-hard forget samples",
    "nf_reference_size_used": "Nearest-neighbour reference samples used",
    "predictor_train_accuracy": "Predictor accuracy on its twin training data",
    "note": "Note",
    # common hyper-parameters
    "lr": "Learning rate",
    "batch_size": "Batch size",
    "momentum": "Momentum",
    "weight_decay": "Weight decay",
    "optimizer": "Optimizer",
    "nesterov": "Nesterov momentum",
    "grad_clip": "Gradient-norm clip",
    "features": "Predictor features",
    "hard_mode": "How hard samples are unlearned",
    "hard_score": "Score that ranks forget samples",
    "hard_count": "How many forget samples are unlearned",
    "hard_targets": "Labels given to hard samples",
    "hard_selection": "Which samples are treated as hard",
    "twin_epochs": "Twin fine-tuning epoch cap",
    "twin_lr": "Twin fine-tuning learning rate",
    "twin_augment": "Twin set augmentation",
    # experiment
    "dataset": "Dataset",
    "dataset_options": "Dataset options",
    "train_size": "Training subsample size",
    "model": "Model",
    "model_options": "Model options",
    "recipe": "Training recipe",
    "seed": "Seed",
    "holdout_fraction": "Share of the test split given to methods as holdout",
}
"""Internal name -> human label. Labels say what a number is; units go in the table header (:func:`with_unit`)."""

PERCENT_KEYS = (
    "acc_",
    "delta_forget",
    "sample_agreement",
    "mia_loss_lr_acc",
    "mia_loss_lr_tpr_at_1pct_fpr",
    "mia_salun_efficacy",
    "twin_est_gold_acc_forget",
    "twin_est_delta_forget",
    "hard_fraction",
    "twin_rule_agreement",
    "twin_easy_rate",
    "twin_target_accuracy",
    "predictor_train_accuracy",
)
"""Keys (``acc_`` is a prefix) whose values are fractions, shown in percent everywhere."""

POINTS_KEYS = ("delta_forget", "twin_est_delta_forget")
"""Percent keys that are differences of two percentages: their unit is percentage points."""

SECONDS_KEYS = ("seconds", "gold_seconds", "cpu_seconds", "train_seconds")
RATIO_KEYS = ("cost_ratio", "rte", "rte_cpu")


def _base(key: str) -> str:
    for prefix in ("gold_", "original_"):
        if key.startswith(prefix) and not key.startswith("gold_seconds"):
            return key[len(prefix) :]
    return key


def is_percent(key: str) -> bool:
    """Whether the metric ``key`` (``gold_`` / ``original_`` prefixes allowed) is a fraction shown in percent."""
    key = _base(key)
    return any(key == p or (p.endswith("_") and key.startswith(p)) for p in PERCENT_KEYS)


def unit_of(key: str) -> str:
    """The unit a report shows ``key`` in: ``%``, ``points``, ``s``, ``×`` (a ratio) or ``''`` (a plain number)."""
    base = _base(key)
    if base in POINTS_KEYS:
        return "points"
    if is_percent(key):
        return "%"
    if base in SECONDS_KEYS:
        return "s"
    if base in RATIO_KEYS:
        return "×"
    return ""


def with_unit(header: str, unit: str) -> str:
    """``header (unit)``, the one header convention (``header`` alone when there is no unit)."""
    return f"{header} ({unit})" if unit else header


def label(key: str) -> str:
    """The human label of an internal name (``gold_`` / ``original_`` prefixes named); unknown keys get their
    underscores replaced by spaces."""
    if key in LABELS:
        return LABELS[key]
    base = _base(key)
    if base != key and base in LABELS:
        who = "retrained model (gold)" if key.startswith("gold_") else "original model"
        return f"{LABELS[base]}: {who}"
    return key.replace("_", " ")


def fmt_value(key: str, value: Any, *, digits: int = 2) -> str:
    """``value`` as a report shows it: fractions of percent keys times 100 with ``digits`` decimals, other floats
    with 4 significant digits, ``n/a`` for None / NaN, JSON for lists and dicts."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and is_percent(key):
        return f"{100 * value:.{digits}f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, sort_keys=True)
    return str(value)


# ---------------------------------------------------------------------------------------------- hyper-parameters
_ARG = re.compile(r"^(\s+)([A-Za-z_][A-Za-z0-9_]*(?:, [A-Za-z_][A-Za-z0-9_]*)*)(?: \([^)]*\))?: (.*)$")


def docstring_args(obj: Any) -> dict[str, str]:
    """``{name: description}`` from the ``Args:`` and ``Attributes:`` sections of ``obj``'s Google-style docstring
    (continuation lines joined, double backticks dropped; ``a, b: text`` describes both).

    Example:
        >>> class K:
        ...     '''Doc.
        ...
        ...     Args:
        ...         lr: learning rate
        ...             (constant).
        ...         a, b: two knobs.
        ...     '''
        >>> docstring_args(K)
        {'lr': 'learning rate (constant).', 'a': 'two knobs.', 'b': 'two knobs.'}
    """
    doc = inspect.getdoc(obj) or ""
    out: dict[str, str] = {}
    current: list[str] = []
    indent = None
    in_section = False
    for line in doc.splitlines():
        if line.strip() in ("Args:", "Attributes:"):
            in_section, current, indent = True, [], None
            continue
        if not in_section:
            continue
        if line.strip() and not line.startswith(" "):
            in_section = False  # the next section
            continue
        m = _ARG.match(line)
        if m and (indent is None or len(m.group(1)) == indent):
            indent = len(m.group(1))
            current = [n.strip() for n in m.group(2).split(",")]
            for name in current:
                out[name] = m.group(3).strip()
        elif current and line.strip():
            for name in current:
                out[name] += " " + line.strip()
    role = re.compile(r":[a-z]+:`~?([^`]*)`")  # Sphinx roles (:mod:`x`, :class:`~a.B`) become their text
    return {k: role.sub(r"\1", v).replace("``", "") for k, v in out.items()}


def method_defaults(name: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The registered method ``name``'s default hyper-parameters (JSON-normalised) and their docstring
    descriptions; ``(None, {})`` when ``name`` is not registered in this process."""
    from ..methods import METHODS, create_method
    from ..utils import json_safe

    if name not in METHODS:
        return None, {}
    method = create_method(name)
    docs: dict[str, str] = {}
    for cls in reversed(type(method).__mro__):
        if dataclasses.is_dataclass(cls):
            docs.update(docstring_args(cls))
    return json_safe(method.hparams()), docs


def hparam_rows(method: str, hparams: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """One row per hyper-parameter: ``key``, ``label``, ``value``, ``default``, ``changed``, ``description``.

    ``changed`` is True where the value differs from the registered method's default (None when the method is
    not registered here, so its defaults are unknown). Changed values come first. Returns the rows and whether
    the defaults were known.
    """
    from ..utils import json_safe

    defaults, docs = method_defaults(method)
    values = json_safe(hparams or {})
    rows = []
    for key in sorted(values):
        default = defaults.get(key) if defaults is not None else None
        changed = None if defaults is None or key not in defaults else values[key] != default
        rows.append(
            {
                "key": key,
                "label": label(key),
                "value": values[key],
                "default": default,
                "changed": changed,
                "description": docs.get(key, ""),
            }
        )
    rows.sort(key=lambda r: (r["changed"] is not True, r["key"]))
    return rows, defaults is not None


__all__ = [
    "LABELS",
    "PERCENT_KEYS",
    "docstring_args",
    "fmt_value",
    "hparam_rows",
    "is_percent",
    "label",
    "method_defaults",
    "unit_of",
    "with_unit",
]
