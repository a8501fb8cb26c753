"""TMU's tables (Tables 1, 3 and 4, Figure 3 as a table) and the generalization-label accuracy against its null.

The label-accuracy tables read what :mod:`oblivio.experiments.cell` writes into a TMU row: ``metrics["label_accuracy"]``
(the predictor against the gold model's labels), ``label_ablation`` (``{"nf": acc, "nf+af": acc, ...}``, predictors
refitted on feature subsets of the run) and TMU's hyper-parameter ``features``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from .table import (
    CI_NOTE,
    GOLD_REFERENCE,
    STD_NOTE,
    Table,
    _by_class,
    _class_label,
    _finite,
    _gold_values,
    _m,
    _methods,
    fmt_mean_std,
    mean_std,
)


def tmu_table1(rows: Sequence[dict]) -> Table:
    """TMU Table 1: per forget class, gold ``ACC_test`` / ``ACC_Df``, each method's ``ACC_test`` / ``ACC_Df``.

    The ``mean`` row averages the per-class means (± std across classes); the ``δ`` row holds each method's
    ``|ACC_Df(M_u) − ACC_Df(M_g)|`` averaged over classes (± std across classes), under its ``ACC_Df`` column.
    """
    groups = _by_class(rows)
    methods = _methods(rows)
    cols = ["Forget class", f"{GOLD_REFERENCE} ACC_test (%)", f"{GOLD_REFERENCE} ACC_Df (%)"]
    for m in methods:
        cols += [f"{m} ACC_test (%)", f"{m} ACC_Df (%)"]
    body: list[list[str]] = []
    class_means: list[list[float]] = []
    deltas: dict[str, list[float]] = defaultdict(list)
    for k, grp in groups.items():
        line = [
            _class_label(rows, k),
            fmt_mean_std(_gold_values(grp, "gold_acc_test")),
            fmt_mean_std(_gold_values(grp, "gold_acc_forget")),
        ]
        means = [mean_std(_gold_values(grp, "gold_acc_test"))[0], mean_std(_gold_values(grp, "gold_acc_forget"))[0]]
        for m in methods:
            mr = [r for r in grp if r["method"] == m]
            line += [fmt_mean_std(_m(r, "acc_test") for r in mr), fmt_mean_std(_m(r, "acc_forget") for r in mr)]
            means += [mean_std(_m(r, "acc_test") for r in mr)[0], mean_std(_m(r, "acc_forget") for r in mr)[0]]
            d = mean_std(_m(r, "delta_forget") for r in mr)
            if d[2]:
                deltas[m].append(d[0])
        body.append(line)
        class_means.append(means)
    if len(body) > 1:
        arr = list(zip(*class_means, strict=True))
        body.append(["mean"] + [fmt_mean_std(col) for col in arr])
    if methods and body:
        delta_line = ["δ (points)", "", ""]
        for m in methods:
            delta_line += ["", fmt_mean_std(deltas.get(m, []))]
        body.append(delta_line)
    bold = set()
    candidates = [(mean_std(deltas[m])[0], m) for m in methods if m != "gold" and deltas.get(m)]
    if candidates:
        best = min(candidates)[1]
        bold.add((len(body) - 1, 3 + 2 * methods.index(best) + 1))
    return Table(
        "tmu-table1",
        "TMU Table 1: accuracy per forget class (gold reference vs. each method) and δ",
        cols,
        body,
        bold,
        [
            STD_NOTE,
            "The mean row averages per-class means (± std across classes). "
            "δ = |ACC_Df(M_u) − ACC_Df(M_g)| averaged over classes; lower is better, "
            "the best non-gold method in bold. 'gold' is a second gold model "
            "(another training seed): its δ is the floor.",
        ],
        group=2,
    )


def activation_distance_table(rows: Sequence[dict]) -> Table:
    """TMU Table 3: L2 activation distance to the gold model on ``D_f``, per forget class and method."""
    groups = _by_class(rows)
    methods = _methods(rows)
    body: list[list[str]] = []
    bold: set[tuple[int, int]] = set()
    means: dict[str, list[float]] = defaultdict(list)
    for k, grp in groups.items():
        line, vals = [_class_label(rows, k)], []
        for m in methods:
            v = [_m(r, "activation_distance_l2") for r in grp if r["method"] == m]
            line.append(fmt_mean_std(v, scale=1, digits=3))
            mu = mean_std(v)
            vals.append(mu[0] if m != "gold" and mu[2] else math.inf)
            if mu[2]:
                means[m].append(mu[0])
        if any(math.isfinite(v) for v in vals):
            bold.add((len(body), 1 + int(np.argmin(vals))))
        body.append(line)
    if len(body) > 1:
        body.append(["mean"] + [fmt_mean_std(means.get(m, []), scale=1, digits=3) for m in methods])
    return Table(
        "tmu-table3",
        "TMU Table 3: activation distance (L2 of softmax difference) to the gold model on D_f",
        ["Forget class"] + methods,
        body,
        bold,
        [STD_NOTE.replace(" Accuracies in %.", ""), "Lowest non-gold distance per class in bold."],
    )


def _feature_set_name(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "+".join(str(v).upper() for v in value)
    return str(value).upper() if value is not None else ""


def _label_accuracy_entries(rows: Sequence[dict]) -> list[tuple[str, float, dict]]:
    """(feature set, label accuracy, row) from TMU rows: the refitted subsets and the run's own value.

    Reads exactly what :func:`oblivio.experiments.cell.run_cell` writes: the row's ``label_ablation``
    (``{"nf": acc, "nf+af": acc, ...}``), ``metrics["label_accuracy"]`` and the hyper-parameter ``features``.
    """
    out = []
    for r in rows:
        ablation = r.get("label_ablation")
        if isinstance(ablation, dict):
            for fs, v in ablation.items():
                if _finite([v]):
                    out.append((_feature_set_name(fs.split("+")) + " (refit)", float(v), r))
        acc = _m(r, "label_accuracy")
        if _finite([acc]):
            fs = (r.get("hparams") or {}).get("features")
            name = _feature_set_name(fs) if fs else f"{r['method']} (default)"
            out.append((name, float(acc), r))
    # a run counted twice (the same row key read twice, e.g. from a resumed results file) counts once
    seen, unique = set(), []
    for fs, v, r in out:
        k = (fs, r.get("key"), id(r) if r.get("key") is None else None)
        if k not in seen:
            seen.add(k)
            unique.append((fs, v, r))
    return unique


def label_accuracy_table(rows: Sequence[dict]) -> Table:
    """TMU Table 4: generalization-label predictor accuracy (vs the gold model's truth) per feature set."""
    entries = _label_accuracy_entries(rows)
    groups: dict[str, list[float]] = defaultdict(list)
    for fs, v, _ in entries:
        groups[fs].append(v)
    order = {"NF": 0, "AF": 1, "CF": 2}

    def rank(fs: str) -> tuple:
        parts = fs.replace(" (refit)", "").split("+")
        return (fs.endswith("(refit)"), len(parts), [order.get(p, 9) for p in parts], fs)

    groups = dict(sorted(groups.items(), key=lambda kv: rank(kv[0])))
    body = [[fs, fmt_mean_std(v), str(len(v))] for fs, v in groups.items()]
    bold = set()
    if body:
        best = int(np.argmax([mean_std(v)[0] for v in groups.values()]))
        bold.add((best, 1))
        nulls = [_m(r, "label_accuracy_null") for r in rows if _m(r, "label_accuracy_null") is not None]
        if nulls:  # the fair null (issue 11): the predictor's own count of easy samples, picked at random
            body.append(["random subset of the same size (fair null)", fmt_mean_std(nulls), str(len(nulls))])
    return Table(
        "tmu-table4",
        "TMU Table 4: generalization-label accuracy of the predictor, per feature set",
        ["Feature set", "Label accuracy (%)", "Runs"],
        body,
        bold,
        [
            STD_NOTE,
            "Label accuracy = agreement of the predicted generalization labels with the gold model's "
            "[M_g(x) == y] on D_f. NF: nearest-neighbour distance, AF: adversarial, CF: curriculum "
            "loss. '(refit)': the predictor retrained on that feature subset of one full TMU run "
            "(the run's twin features reused); otherwise a separate TMU run with that feature set.",
        ],
    )


def label_accuracy_by_size_table(rows: Sequence[dict]) -> Table:
    """TMU Figure 3 as a table: per method, decision-label accuracy (and δ) as ``|D_f|`` grows (one row per
    ``(|D_f|, method)``; methods without label accuracy, e.g. the gold pseudo-method, show δ only)."""
    entries = [e for e in _label_accuracy_entries(rows) if not e[0].endswith("(refit)")]
    groups: dict[tuple[int, str], dict[str, Any]] = defaultdict(lambda: {"acc": [], "delta": [], "keys": set()})
    for _, v, r in entries:
        groups[(int(r.get("n_forget") or 0), r["method"])]["acc"].append(v)
    sizes = {n for n, _ in groups}  # only sizes where some method reports label accuracy (a TMU benchmark)
    for r in rows:
        if int(r.get("n_forget") or 0) not in sizes:
            continue
        g = groups[(int(r.get("n_forget") or 0), r["method"])]
        if r.get("key") not in g["keys"] and _m(r, "delta_forget") is not None:
            g["keys"].add(r.get("key"))
            g["delta"].append(_m(r, "delta_forget"))
    order = {m: i for i, m in enumerate(_methods(rows))}
    body = [
        [str(n), m, fmt_mean_std(g["acc"]) if g["acc"] else "", fmt_mean_std(g["delta"]), str(len(g["delta"]))]
        for (n, m), g in sorted(groups.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], len(order))))
    ]
    return Table(
        "tmu-figure3",
        "TMU Figure 3: label accuracy as |D_f| grows",
        ["|D_f|", "Method", "Label accuracy (%)", "δ (points)", "Runs"],
        body,
        notes=[STD_NOTE],
    )


def predictor_null_table(rows: Sequence[dict]) -> Table:
    """TMU's generalization-label accuracy against the fair null: a random subset of the same size.

    Per method with ``label_accuracy`` (TMU and its variants; the random control's labels are its random subset):
    the label accuracy, the null's expected accuracy ``(e·g + (n−e)(n−g)) / n²`` at the same predicted-easy count
    ``e`` and gold-easy count ``g``, their paired difference with Wilcoxon p, and Cohen's κ against gold's labels.
    """
    from .stats import mean_ci, paired_difference

    body: list[list[str]] = []
    bold: set[tuple[int, int]] = set()
    for m in _methods(rows):
        mr = [
            r
            for r in rows
            if r["method"] == m and _m(r, "label_accuracy") is not None and _m(r, "label_accuracy_null") is not None
        ]
        if not mr:
            continue
        acc, null = [_m(r, "label_accuracy") for r in mr], [_m(r, "label_accuracy_null") for r in mr]
        res = paired_difference(acc, null)
        verdict = res.verdict("higher")
        if verdict != "not significant":
            bold.add((len(body), 6))
        body.append(
            [
                m,
                str(len(mr)),
                mean_ci(acc).format(scale=100),
                mean_ci(null).format(scale=100),
                f"{100 * res.mean_diff:+.1f} [{100 * res.low:+.1f}, {100 * res.high:+.1f}]"
                if math.isfinite(res.low)
                else f"{100 * res.mean_diff:+.1f}",
                f"{res.p_value:.3g}",
                "above the null" if verdict == "better" else "below the null" if verdict == "worse" else verdict,
                mean_ci(_m(r, "label_kappa") for r in mr).format(digits=3),
            ]
        )
    return Table(
        "predictor-null",
        "Generalization-label accuracy vs the fair null (random subset of the same size)",
        [
            "Method",
            "Runs",
            "Label accuracy (%)",
            "Null: random subset, same size (%)",
            "Diff (points) [CI]",
            "Wilcoxon p",
            "Verdict",
            "κ vs gold labels",
        ],
        body,
        bold,
        [
            CI_NOTE,
            "The null keeps the predictor's count of predicted-easy samples and picks them at random; "
            "its expected accuracy is (e·g + (n−e)(n−g))/n² (not 'predict all easy'). κ = 0 is that null.",
        ],
    )


__all__ = [
    "activation_distance_table",
    "label_accuracy_by_size_table",
    "label_accuracy_table",
    "predictor_null_table",
    "tmu_table1",
]
