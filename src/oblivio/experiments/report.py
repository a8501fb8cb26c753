"""Results JSONL -> tables shaped like the papers' tables (mean ± std over seeds), markdown and a self-contained HTML.

Every table is computed from result rows (see :mod:`oblivio.experiments.runner`), grouped, and shown as
``mean ± std`` where ``std`` is the sample standard deviation (``ddof=1``) over the runs of a group; a value
without ``±`` comes from a single run. Accuracies are shown in percent.

Tables:

* :func:`tmu_table1`: per forget class, the gold model's ``ACC_test`` / ``ACC_Df`` and each method's, with the
  mean over classes and the alignment gap ``δ = |ACC_Df(M_u) − ACC_Df(M_g)|`` (TMU Table 1).
* :func:`activation_distance_table`: L2 activation distance to gold per class and method (TMU Table 3).
* :func:`label_accuracy_table` / :func:`label_accuracy_by_size_table`: TMU's generalization-label predictor
  accuracy per feature set (Table 4) and against ``|D_f|`` (Figure 3). They read the TMU method's ``info``.
* :func:`two_stage_accuracy_table`, :func:`saving_point_table`, :func:`tta_mislabel_table`,
  :func:`neutralisation_table`: the two-stage paper's Tables 2-5.
* :func:`summary_table`: one row per method, the headline metrics with the gold model's value beside.
* :func:`forget_quality_table`: NeurIPS forget quality and final score per method.

Example:
    >>> rows = [{"method": "ft", "forget_class": 0, "seeds": {"train": s, "gold": s, "request": s},
    ...          "metrics": {"acc_test": a, "acc_forget": 0.5, "delta_forget": 0.1,
    ...                      "gold_acc_test": 0.9, "gold_acc_forget": 0.6}} for s, a in ((0, 0.8), (1, 0.9))]
    >>> print(tmu_table1(rows).to_markdown().splitlines()[2])
    | 0 | 90.0 ± 0.0 | 60.0 ± 0.0 | 85.0 ± 7.1 | 50.0 ± 0.0 |
"""

from __future__ import annotations

import base64
import html
import logging
import math
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .info_keys import (ABLATION_KEYS, FEATURES_HPARAMS, LABEL_ACCURACY_KEYS, MISLABEL_HPARAMS, NEUTRALISATION_KEYS,
                        NEUTRALISED_ACC_KEYS, SAVING_POINT_KEYS)
from .stats import finite_values

log = logging.getLogger("oblivio.report")

TTA_VIEWS: tuple[str, ...] = ("identity", "hflip", "vflip", "center_crop")


# ---------------------------------------------------------------------------------------------- numbers
_finite = finite_values  # one definition of "a finite number" for the report and the statistics


def mean_std(values: Iterable[Any]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (``ddof=1``; 0 for one value) and count of the finite values.

    Example:
        >>> mean_std([1.0, 2.0, 3.0, None, float("nan")])
        (2.0, 1.0, 3)
    """
    xs = _finite(values)
    if not xs:
        return math.nan, math.nan, 0
    a = np.asarray(xs, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0, int(a.size)


def fmt_mean_std(values: Iterable[Any], *, scale: float = 100.0, digits: int = 1) -> str:
    """``"mean ± std"`` of the finite values times ``scale`` (``"n/a"`` when there are none; no ``±`` for one).

    Example:
        >>> fmt_mean_std([0.80, 0.90])
        '85.0 ± 7.1'
        >>> fmt_mean_std([0.123], scale=1, digits=3)
        '0.123'
    """
    m, s, n = mean_std(values)
    if n == 0:
        return "n/a"
    if n == 1:
        return f"{m * scale:.{digits}f}"
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


# ---------------------------------------------------------------------------------------------- tables
TEXT_WIDTH = 120  # terminal tables fit this many columns (Table.to_text); the markdown / HTML reports hold it all


@dataclass
class Table:
    """A rendered table: string cells, optional bold cells, notes under it.

    Attributes:
        key: short id (``"tmu-table1"``).
        title: caption.
        columns: header cells.
        rows: body cells (strings).
        bold: ``(row, column)`` positions shown in bold (e.g. the best method of a row).
        notes: sentences printed under the table.
    """

    key: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    bold: set[tuple[int, int]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.rows)

    def to_markdown(self) -> str:
        def cell(text: str, i: int, j: int) -> str:
            text = str(text).replace("|", "\\|").replace("\n", " ")
            return f"**{text}**" if (i, j) in self.bold and text not in ("", "n/a") else text

        lines = ["| " + " | ".join(cell(c, -1, j) for j, c in enumerate(self.columns)) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(cell(c, i, j) for j, c in enumerate(r)) + " |" for i, r in enumerate(self.rows)]
        return "\n".join(lines)

    def to_text(self, *, width: int | None = TEXT_WIDTH) -> str:
        """Aligned plain text (for the terminal), at most ``width`` columns: columns that do not fit go to further
        blocks, each repeating the first (key) column (``width=None``: one block however wide)."""
        cells = [self.columns] + self.rows
        widths = [max(len(str(r[j])) for r in cells) for j in range(len(self.columns))]
        blocks: list[list[int]] = [[0]]
        used = widths[0] if widths else 0
        for j in range(1, len(self.columns)):
            if width is not None and used + 2 + widths[j] > width and len(blocks[-1]) > 1:
                blocks.append([0])
                used = widths[0]
            blocks[-1].append(j)
            used += 2 + widths[j]
        out = [self.title]
        for b, idx in enumerate(blocks):
            if b:
                out.append("")
            out += ["  ".join(str(r[j]).ljust(widths[j]) for j in idx).rstrip() for r in cells[:1]]
            out.append("  ".join("-" * widths[j] for j in idx))
            out += ["  ".join(str(r[j]).ljust(widths[j]) for j in idx).rstrip() for r in self.rows]
        return "\n".join(out)

    def to_html(self) -> str:
        e = html.escape
        head = "".join(f"<th>{e(str(c))}</th>" for c in self.columns)
        body = []
        for i, r in enumerate(self.rows):
            tds = "".join(f"<td><strong>{e(str(c))}</strong></td>" if (i, j) in self.bold else f"<td>{e(str(c))}</td>"
                          for j, c in enumerate(r))
            body.append(f"<tr>{tds}</tr>")
        notes = "".join(f"<p class=\"note\">{e(n)}</p>" for n in self.notes)
        # The wrapper scrolls a wide table sideways inside the page instead of running off it.
        return (f"<section id=\"{e(self.key)}\"><h2>{e(self.title)}</h2><div class=\"table-wrap\"><table><thead>"
                f"<tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>{notes}</section>")


GOLD_REFERENCE = "gold reference"
"""The gold model of a request (retrained without D_f, training seed as the original's): the target to match."""
GOLD_SEED = "gold (2nd seed)"
"""The method row "gold": a second gold model with another training seed, i.e. the noise floor of every measure."""

STD_NOTE = "Values are mean ± sample std over runs (seeds); a value without ± comes from one run. Accuracies in %."


def _m(row: dict, key: str) -> Any:
    return (row.get("metrics") or {}).get(key)


def _methods(rows: Sequence[dict]) -> list[str]:
    """Method labels in first-seen order, with the ``gold`` reference last."""
    names = list(dict.fromkeys(r["method"] for r in rows))
    return [n for n in names if n != "gold"] + (["gold"] if "gold" in names else [])


def _class_label(rows: Sequence[dict], k: Any) -> str:
    for r in rows:
        if r.get("forget_class") == k and r.get("forget_class_name") not in (None, str(k)):
            return f"{k} ({r['forget_class_name']})"
    return str(k)


def _sort_key(v: Any) -> tuple:
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))


def _gold_values(rows: Sequence[dict], key: str) -> list[Any]:
    """The gold model's metric, once per distinct gold model (rows of several methods share one)."""
    seen: dict[tuple, Any] = {}
    for r in rows:
        s = r.get("seeds") or {}
        seen.setdefault((r.get("scenario"), s.get("train"), s.get("request"), s.get("gold")), _m(r, key))
    return list(seen.values())


def _by_class(rows: Sequence[dict]) -> dict[Any, list[dict]]:
    groups: dict[Any, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("forget_class") is not None:
            groups[r["forget_class"]].append(r)
    return dict(sorted(groups.items(), key=lambda kv: _sort_key(kv[0])))


def tmu_table1(rows: Sequence[dict]) -> Table:
    """TMU Table 1: per forget class, gold ``ACC_test`` / ``ACC_Df``, each method's ``ACC_test`` / ``ACC_Df``.

    The ``mean`` row averages the per-class means (± std across classes); the ``δ`` row holds each method's
    ``|ACC_Df(M_u) − ACC_Df(M_g)|`` averaged over classes (± std across classes), under its ``ACC_Df`` column.
    """
    groups = _by_class(rows)
    methods = _methods(rows)
    cols = ["Forget class", f"{GOLD_REFERENCE} ACC_test", f"{GOLD_REFERENCE} ACC_Df"]
    for m in methods:
        cols += [f"{m} ACC_test", f"{m} ACC_Df"]
    body: list[list[str]] = []
    class_means: list[list[float]] = []
    deltas: dict[str, list[float]] = defaultdict(list)
    for k, grp in groups.items():
        line = [_class_label(rows, k), fmt_mean_std(_gold_values(grp, "gold_acc_test")),
                fmt_mean_std(_gold_values(grp, "gold_acc_forget"))]
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
        arr = list(zip(*class_means))
        body.append(["mean"] + [fmt_mean_std(col) for col in arr])
    if methods and body:
        delta_line = ["δ", "", ""]
        for m in methods:
            delta_line += ["", fmt_mean_std(deltas.get(m, []))]
        body.append(delta_line)
    bold = set()
    candidates = [(mean_std(deltas[m])[0], m) for m in methods if m != "gold" and deltas.get(m)]
    if candidates:
        best = min(candidates)[1]
        bold.add((len(body) - 1, 3 + 2 * methods.index(best) + 1))
    return Table("tmu-table1", "TMU Table 1: accuracy per forget class (gold reference vs. each method) and δ",
                 cols, body, bold, [STD_NOTE, "The mean row averages per-class means (± std across classes). "
                                    "δ = |ACC_Df(M_u) − ACC_Df(M_g)| averaged over classes; lower is better, "
                                    "the best non-gold method in bold. 'gold' is a second gold model "
                                    "(another training seed): its δ is the floor."])


def activation_distance_table(rows: Sequence[dict]) -> Table:
    """TMU Table 3: L2 activation distance to the gold model on ``D_f``, per forget class and method."""
    groups = _by_class(rows)
    methods = _methods(rows)
    body, bold, means = [], set(), defaultdict(list)
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
    return Table("tmu-table3", "TMU Table 3: activation distance (L2 of softmax difference) to the gold model on D_f",
                 ["Forget class"] + methods, body, bold,
                 [STD_NOTE.replace(" Accuracies in %.", ""), "Lowest non-gold distance per class in bold."])


def _feature_set_name(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "+".join(str(v).upper() for v in value)
    return str(value).upper() if value is not None else ""


def _label_accuracy_entries(rows: Sequence[dict]) -> list[tuple[str, float, dict]]:
    """(feature set, label accuracy, row) from TMU rows' ``info`` (ablation dicts and the run's own value)."""
    out = []
    for r in rows:
        info = dict(r.get("info") or {})
        if isinstance(r.get("label_ablation"), dict):
            info.setdefault("label_accuracy_by_features", r["label_ablation"])
        if _m(r, "label_accuracy") is not None:
            info.setdefault("label_accuracy", _m(r, "label_accuracy"))
        for key in ABLATION_KEYS:
            if isinstance(info.get(key), dict):
                for fs, v in info[key].items():
                    if isinstance(v, dict):
                        v = next((v[k] for k in LABEL_ACCURACY_KEYS if k in v), None)
                    if _finite([v]):
                        out.append((_feature_set_name(fs.split("+") if isinstance(fs, str) else fs) + " (refit)",
                                    float(v), r))
                break
        acc = next((info[k] for k in LABEL_ACCURACY_KEYS if k in info), None)
        if _finite([acc]):
            hp = r.get("hparams") or {}
            fs = next((hp[k] for k in FEATURES_HPARAMS if hp.get(k)), None)
            name = _feature_set_name(fs) if fs else f"{r['method']} (default)"
            out.append((name, float(acc), r))
    # the same (feature set, run) from both the ablation dict and the run's own value counts once
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
    return Table("tmu-table4", "TMU Table 4: generalization-label accuracy of the predictor, per feature set",
                 ["Feature set", "Label accuracy", "Runs"], body, bold,
                 [STD_NOTE, "Label accuracy = agreement of the predicted generalization labels with the gold model's "
                            "[M_g(x) == y] on D_f. NF: nearest-neighbour distance, AF: adversarial, CF: curriculum "
                            "loss. '(refit)': the predictor retrained on that feature subset of one full TMU run "
                            "(the run's twin features reused); otherwise a separate TMU run with that feature set."])


def label_accuracy_by_size_table(rows: Sequence[dict]) -> Table:
    """TMU Figure 3 as a table: predictor label accuracy (and δ) as ``|D_f|`` grows."""
    entries = [e for e in _label_accuracy_entries(rows) if not e[0].endswith("(refit)")]
    groups: dict[int, dict[str, list]] = defaultdict(lambda: {"acc": [], "delta": [], "keys": set()})
    for _, v, r in entries:
        g = groups[int(r.get("n_forget") or 0)]
        g["acc"].append(v)
        if r.get("key") not in g["keys"]:
            g["keys"].add(r.get("key"))
            g["delta"].append(_m(r, "delta_forget"))
    body = [[str(n), fmt_mean_std(g["acc"]), fmt_mean_std(g["delta"]), str(len(g["acc"]))]
            for n, g in sorted(groups.items())]
    return Table("tmu-figure3", "TMU Figure 3: label accuracy as |D_f| grows", ["|D_f|", "Label accuracy", "δ", "Runs"],
                 body, notes=[STD_NOTE])


def _scenario_order(rows: Sequence[dict]) -> list[str]:
    firsts: dict[str, dict] = {}
    for r in rows:
        firsts.setdefault(r["scenario"], r)
    return sorted(firsts, key=lambda s: (_forget_ratio(firsts[s]) or 0.0, s))


def _forget_ratio(row: dict) -> float | None:
    nf, nr = row.get("n_forget"), row.get("n_retain")
    return nf / (nf + nr) if nf and nr is not None else None


def two_stage_accuracy_table(rows: Sequence[dict]) -> Table:
    """Two-stage Table 2: accuracy of the retrained (unlearned) model vs the scratch (gold) model."""
    body = []
    for sc in _scenario_order(rows):
        sr = [r for r in rows if r["scenario"] == sc]
        for m in _methods(sr):
            mr = [r for r in sr if r["method"] == m]
            body.append([sc, m] + [fmt_mean_std(_m(r, f"acc_{s}") for r in mr) for s in ("test", "retain", "forget")]
                        + [fmt_mean_std(_gold_values(mr, f"gold_acc_{s}")) for s in ("test", "retain", "forget")])
    return Table("two-stage-table2", "Two-stage Table 2: accuracy of the retrained model vs a model trained from scratch",
                 ["Scenario", "Method", "ACC_test", "ACC_Dr", "ACC_Df", "Scratch ACC_test", "Scratch ACC_Dr",
                  "Scratch ACC_Df"], body, notes=[STD_NOTE, "Scratch = the gold model (same recipe on D_r only)."])


def _info_value(row: dict, keys: Sequence[str]) -> Any:
    info = row.get("info") or {}
    return next((info[k] for k in keys if k in info), None)


def saving_point_table(rows: Sequence[dict]) -> Table:
    """Two-stage Table 3: epochs to the saving point of the retraining stage vs the scratch model's epochs."""
    body = []
    for sc in _scenario_order(rows):
        sr = [r for r in rows if r["scenario"] == sc]
        for m in _methods(sr):
            if m == "gold":
                continue
            mr = [r for r in sr if r["method"] == m]
            sp = [_info_value(r, SAVING_POINT_KEYS) for r in mr]
            if not _finite(sp):
                continue
            body.append([sc, m, fmt_mean_std(sp, scale=1, digits=1),
                         fmt_mean_std(((r.get("cost") or {}).get("gold_epochs") for r in mr), scale=1, digits=0),
                         fmt_mean_std(((r.get("cost") or {}).get("rte") for r in mr), scale=1, digits=3)])
    return Table("two-stage-table3", "Two-stage Table 3: epochs to the saving point",
                 ["Scenario", "Method", "Epochs to saving point", "Scratch epochs (recipe)", "RTE (time / retrain)"],
                 body, notes=[STD_NOTE, f"Read from the method's info keys {', '.join(SAVING_POINT_KEYS)}. The "
                              "scratch column is the gold model's full recipe (it keeps no saving point); "
                              "oblivio.methods.two_stage.saving_point_comparison trains a scratch model with the "
                              "same best-on-validation rule."])


def tta_mislabel_table(rows: Sequence[dict]) -> Table:
    """Two-stage Table 4: forget-set accuracy under test-time augmentation, minimum vs maximum mislabel."""
    body = []
    chance = _finite(_m(r, "chance") for r in rows)
    for sc in _scenario_order(rows):
        sr = [r for r in rows if r["scenario"] == sc and _m(r, "tta_identity") is not None]
        for m in [m for m in _methods(sr) if m != "gold"]:
            mr = [r for r in sr if r["method"] == m]
            hp = mr[0].get("hparams") or {}
            mode = next((str(hp[k]) for k in MISLABEL_HPARAMS if k in hp), "")
            body.append([sc, m, mode] + [fmt_mean_std(_m(r, f"tta_{v}") for r in mr) for v in TTA_VIEWS])
        if sr:
            body.append([sc, GOLD_REFERENCE, ""] + [fmt_mean_std(_gold_values(sr, f"gold_tta_{v}")) for v in TTA_VIEWS])
    notes = [STD_NOTE]
    if chance:
        notes.append(f"Chance = {100 * chance[0]:.1f}%.")
    return Table("two-stage-table4", "Two-stage Table 4: ACC_Df under test-time augmentation (min vs max mislabel)",
                 ["Scenario", "Method", "Mislabel", "ACC_Df", "h-flip", "v-flip", "centre crop 90%"], body, notes=notes)


def neutralisation_table(rows: Sequence[dict]) -> Table:
    """Two-stage Table 5: neutralisation epochs against the forget ratio."""
    body = []
    for sc in _scenario_order(rows):
        sr = [r for r in rows if r["scenario"] == sc]
        for m in _methods(sr):
            mr = [r for r in sr if r["method"] == m]
            ne = [_info_value(r, NEUTRALISATION_KEYS) for r in mr]
            if not _finite(ne):
                continue
            ratio = _forget_ratio(mr[0])
            body.append([sc, f"{100 * ratio:.1f}%" if ratio is not None else "n/a", m, fmt_mean_std(ne, scale=1),
                         fmt_mean_std(_info_value(r, NEUTRALISED_ACC_KEYS) for r in mr),
                         fmt_mean_std(_m(r, "acc_forget") for r in mr)])
    return Table("two-stage-table5", "Two-stage Table 5: neutralisation epochs vs forget ratio",
                 ["Scenario", "Forget ratio", "Method", "Neutralisation epochs", "ACC_Df neutralised",
                  "ACC_Df final"], body,
                 notes=[STD_NOTE, f"Read from the method's info keys {', '.join(NEUTRALISATION_KEYS)}."])


SUMMARY_METRICS: tuple[tuple[str, str, float, int], ...] = (
    ("ACC_Dr", "acc_retain", 100.0, 1), ("ACC_Df", "acc_forget", 100.0, 1), ("ACC_test", "acc_test", 100.0, 1),
    ("δ", "delta_forget", 100.0, 1), ("Sample agreement", "sample_agreement", 100.0, 1),
    ("Act. dist. L2", "activation_distance_l2", 1.0, 3),
    ("JS", "js_divergence", 1.0, 4), ("MIA loss-LR acc", "mia_loss_lr_acc", 100.0, 1),
    (f"{GOLD_REFERENCE} MIA loss-LR acc", "gold_mia_loss_lr_acc", 100.0, 1),
    ("SalUn MIA-efficacy", "mia_salun_efficacy", 100.0, 1),
    (f"{GOLD_REFERENCE} SalUn MIA-efficacy", "gold_mia_salun_efficacy", 100.0, 1),
)


def summary_table(rows: Sequence[dict]) -> Table:
    """One row per method over every scenario and seed: accuracies, gaps to gold, named MIA variants, cost."""
    body = []
    cols = ["Method", "Runs"] + [c[0] for c in SUMMARY_METRICS] + ["Seconds", "RTE"]
    for m in _methods(rows):
        mr = [r for r in rows if r["method"] == m]
        line = [m, str(len(mr))]
        line += [fmt_mean_std((_m(r, k) for r in mr), scale=s, digits=d) for _, k, s, d in SUMMARY_METRICS]
        line += [fmt_mean_std(((r.get("cost") or {}).get("method_seconds") for r in mr), scale=1, digits=1),
                 fmt_mean_std(((r.get("cost") or {}).get("rte") for r in mr), scale=1, digits=3)]
        body.append(line)
    return Table("summary", "Summary over all scenarios and seeds", cols, body,
                 notes=[STD_NOTE, "Aligned = equal to gold, not lower: compare each MIA value with its gold reference column. "
                                  "RTE = method seconds / gold training seconds."])


def forget_quality_table(rows: Sequence[dict]) -> Table:
    """NeurIPS 2023 forget quality ``F`` and final score per method (rows with stored ``scores``)."""
    from .forget_quality_run import forget_quality_from_rows

    res = forget_quality_from_rows(rows)
    body = [[r.scenario, r.method, str(r.n_models), f"{r.forget_quality:.4f}", f"{r.final_score:.4f}",
             f"{100 * r.ra_u:.1f} / {100 * r.ra_r:.1f}", f"{100 * r.ta_u:.1f} / {100 * r.ta_r:.1f}",
             f"{np.median(r.epsilons):.2f}"] for r in res]
    return Table("forget-quality", "NeurIPS 2023 forget quality (N unlearned vs N retrained models)",
                 ["Scenario", "Method", "N", "F", "Final score", "RA_u / RA_r", "TA_u / TA_r", "median ε"], body,
                 notes=["F is the mean per-example score 2^-floor(ε/0.5) (SPEC §8); even a perfect unlearner scores "
                        "F ≈ 0.18-0.19. Final score = F × RA_u/RA_r × TA_u/TA_r. A 'gold' row compares two sets of "
                        "gold models (the ceiling)."])


CI_NOTE = ("Values are means over runs (forget classes × seeds) with a 95% percentile bootstrap CI in brackets "
           "(scipy.stats.bootstrap, 10,000 resamples, seed 0; oblivio.experiments.stats).")


def alignment_ci_table(rows: Sequence[dict]) -> Table:
    """Per method: mean and 95% bootstrap CI of every alignment measure, the original model and gold as references.

    Measures (:data:`oblivio.experiments.stats.ALIGNMENT_MEASURES`): δ, sample agreement and κ with gold on
    ``D_f``, L2 activation distance, and each MIA's gap to the gold model's own value; plus ``ACC_test`` and
    ``ACC_Dr``. A row "original (no unlearning)" holds ``M_o``'s δ and sample agreement (doing nothing).
    """
    from .stats import ALIGNMENT_MEASURES, ORIGINAL_METHOD, mean_ci, original_rows

    measures = list(ALIGNMENT_MEASURES)
    cols = ["Method", "Runs"] + [ms.label for ms in measures] + ["ACC_test", "ACC_Dr"]
    body: list[list[str]] = []
    if not any(_m(r, "sample_agreement") is not None for r in rows):  # rows written before sample agreement
        return Table("alignment-ci", "Alignment with gold per method: mean [95% bootstrap CI]", cols, body)
    for m in _methods(rows):
        mr = [r for r in rows if r["method"] == m]
        line = [m, str(len(mr))]
        line += [mean_ci(ms.value(r) for r in mr).format(scale=ms.scale, digits=ms.digits) for ms in measures]
        line += [mean_ci(_m(r, k) for r in mr).format(scale=100) for k in ("acc_test", "acc_retain")]
        body.append(line)
    orig = original_rows(rows)
    if orig:
        line = [ORIGINAL_METHOD, str(len(orig))]
        line += [mean_ci(ms.value(r) for r in orig).format(scale=ms.scale, digits=ms.digits) for ms in measures]
        line += [mean_ci(_m(r, k) for r in orig).format(scale=100) for k in ("acc_test", "acc_retain")]
        body.append(line)
    return Table("alignment-ci", "Alignment with gold per method: mean [95% bootstrap CI]", cols, body,
                 notes=[CI_NOTE, "Sample agreement = share of D_f on which M_u and M_g are both right or both wrong; "
                        "κ = Cohen's κ of those right/wrong outcomes (0 = chance at the same accuracies). MIA columns "
                        "are gaps to the gold model's value (aligned = equal to gold, not lower). 'gold' is a second "
                        "gold model (the noise floor); 'tmu.random-control' is TMU's aligned step with its hard set "
                        "drawn at random at the predictor's own count."])


def paired_comparison_table(rows: Sequence[dict], *, method: str = "tmu") -> Table:
    """``method`` against every other method, paired per (forget request, seeds): difference, CI, Wilcoxon p.

    Empty when ``method`` has no rows. The verdict says ``"<method> better"`` / ``"<method> worse"`` only where the
    two-sided Wilcoxon signed-rank p is below 0.05, else ``"not significant"``.
    """
    from .stats import ORIGINAL_METHOD, compare, original_rows, wins_ties_losses

    if not any(r.get("method") == method for r in rows):
        return Table("paired", f"Paired comparisons: {method} vs each method", [], [])
    extra = original_rows(rows)  # "do nothing" as a pseudo-method (δ and sample agreement only)
    comps = compare(list(rows) + extra, method, others=[m for m in _methods(rows) if m != method]
                    + ([ORIGINAL_METHOD] if extra else []))
    cols = ["vs", "Measure", "Pairs", f"Mean diff ({method} − other) [95% CI]", "Wilcoxon p", "Verdict"]
    body, bold = [], set()
    for c in comps:
        r = c.result
        diff = (f"{r.mean_diff * c.measure.scale:+.{c.measure.digits}f} [{r.low * c.measure.scale:+.{c.measure.digits}f},"
                f" {r.high * c.measure.scale:+.{c.measure.digits}f}]" if math.isfinite(r.low)
                else f"{r.mean_diff * c.measure.scale:+.{c.measure.digits}f}")
        verdict = c.verdict if c.verdict == "not significant" else f"{method} {c.verdict}"
        if c.verdict != "not significant":
            bold.add((len(body), 5))
        body.append([c.other, c.measure.label, str(r.n), diff, f"{r.p_value:.3g}", verdict])
    wtl = wins_ties_losses(comps)
    notes = ["Pairs = runs of both methods on the same forget request with the same seeds. Direction: lower δ, "
             "activation distance and MIA gaps, higher sample agreement and κ are closer to gold. Verdicts need "
             "p < 0.05 (two-sided Wilcoxon signed-rank, zero differences dropped); the CI is a 95% percentile "
             "bootstrap of the mean difference."]
    for key, word in (("better", "wins"), ("not significant", "ties (not significant)"), ("worse", "loses")):
        items = [GOLD_SEED + w[len("gold"):] if w.startswith("gold: ") else w for w in wtl[key]]
        notes.append(f"{method} {word}: " + ("; ".join(items) if items else "none") + ".")
    return Table("paired", f"Paired comparisons: {method} vs each method", cols, body, bold, notes)


def predictor_null_table(rows: Sequence[dict]) -> Table:
    """TMU's generalization-label accuracy against the fair null: a random subset of the same size.

    Per method with ``label_accuracy`` (TMU and its variants; the random control's labels are its random subset):
    the label accuracy, the null's expected accuracy ``(e·g + (n−e)(n−g)) / n²`` at the same predicted-easy count
    ``e`` and gold-easy count ``g``, their paired difference with Wilcoxon p, and Cohen's κ against gold's labels.
    """
    from .stats import mean_ci, paired_difference

    body, bold = [], set()
    for m in _methods(rows):
        mr = [r for r in rows if r["method"] == m and _m(r, "label_accuracy") is not None
              and _m(r, "label_accuracy_null") is not None]
        if not mr:
            continue
        acc, null = [_m(r, "label_accuracy") for r in mr], [_m(r, "label_accuracy_null") for r in mr]
        res = paired_difference(acc, null)
        verdict = res.verdict("higher")
        if verdict != "not significant":
            bold.add((len(body), 6))
        body.append([m, str(len(mr)), mean_ci(acc).format(scale=100), mean_ci(null).format(scale=100),
                     f"{100 * res.mean_diff:+.1f} [{100 * res.low:+.1f}, {100 * res.high:+.1f}]"
                     if math.isfinite(res.low) else f"{100 * res.mean_diff:+.1f}", f"{res.p_value:.3g}",
                     "above the null" if verdict == "better" else "below the null" if verdict == "worse" else verdict,
                     mean_ci(_m(r, "label_kappa") for r in mr).format(digits=3)])
    return Table("predictor-null", "Generalization-label accuracy vs the fair null (random subset of the same size)",
                 ["Method", "Runs", "Label accuracy (%)", "Null: random subset, same size (%)", "Diff (points) [CI]",
                  "Wilcoxon p", "Verdict", "κ vs gold labels"], body, bold,
                 [CI_NOTE, "The null keeps the predictor's count of predicted-easy samples and picks them at random; "
                  "its expected accuracy is (e·g + (n−e)(n−g))/n² (not 'predict all easy'). κ = 0 is that null."])


TABLES: dict[str, Callable[[Sequence[dict]], Table]] = {
    "tmu-table1": tmu_table1, "tmu-table3": activation_distance_table, "tmu-table4": label_accuracy_table,
    "tmu-figure3": label_accuracy_by_size_table, "two-stage-table2": two_stage_accuracy_table,
    "two-stage-table3": saving_point_table, "two-stage-table4": tta_mislabel_table,
    "two-stage-table5": neutralisation_table, "forget-quality": forget_quality_table, "summary": summary_table,
    "alignment-ci": alignment_ci_table, "paired": paired_comparison_table, "predictor-null": predictor_null_table,
}
"""Every table builder by key."""


def build_tables(rows: Sequence[dict], keys: Sequence[str] | None = None) -> list[Table]:
    """The non-empty tables among ``keys`` (default: all) computed from ``rows`` (only ``status == "ok"`` rows)."""
    rows = [r for r in rows if r.get("status", "ok") == "ok"]
    out = []
    for k in keys or list(TABLES):
        if k not in TABLES:
            raise KeyError(f"unknown table {k!r}; valid: {', '.join(TABLES)}")
        t = TABLES[k](rows)
        if t:
            out.append(_name_golds(t))
    return out


def _name_golds(table: Table) -> Table:
    """Show the method "gold" (a second gold model) as ``GOLD_SEED`` in cells, headers and notes, so that it is
    never confused with the gold reference (every ``gold_*`` value and ``GOLD_REFERENCE`` column)."""
    def header(c: str) -> str:
        if c == "gold" or (c.startswith("gold ") and not c.startswith(GOLD_REFERENCE)):
            return GOLD_SEED + c[len("gold"):]
        return c

    table.columns = [header(str(c)) for c in table.columns]
    table.rows = [[GOLD_SEED if c == "gold" else c for c in r] for r in table.rows]
    table.notes = [n.replace("'gold'", f"'{GOLD_SEED}'") for n in table.notes]
    return table


# ---------------------------------------------------------------------------------------------- documents
def to_markdown(tables: Sequence[Table], *, title: str, intro: Sequence[str] = ()) -> str:
    parts = [f"# {title}", ""] + [f"{line}  " for line in intro] + [""]
    for t in tables:
        parts += [f"## {t.title}", "", t.to_markdown(), ""] + [f"_{n}_  " for n in t.notes] + [""]
    return "\n".join(parts)


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;color:#222;max-width:80rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
.table-wrap{overflow-x:auto;max-width:100%}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right;white-space:nowrap}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
tbody tr:nth-child(even){background:#fafafa}
.note{font-size:.8rem;color:#555;margin:.2rem 0}.meta{font-size:.8rem;color:#555}
figure{margin:1rem 0}figcaption{font-size:.85rem;color:#444}img{max-width:100%}"""


def to_html(tables: Sequence[Table], *, title: str, intro: Sequence[str] = (),
            figures: Sequence[tuple[str, bytes]] = ()) -> str:
    """A self-contained HTML page: inline CSS, figures embedded as base64 PNG, every text escaped.

    Args:
        tables: the tables.
        title: page title.
        intro: lines shown under the title (command, provenance...).
        figures: ``(caption, png_bytes)`` pairs.
    """
    e = html.escape
    figs = "".join(
        f"<figure><img alt=\"{e(cap)}\" src=\"data:image/png;base64,{base64.b64encode(png).decode('ascii')}\">"
        f"<figcaption>{e(cap)}</figcaption></figure>" for cap, png in figures)
    intro_html = "".join(f"<p class=\"meta\">{e(line)}</p>" for line in intro)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(title)}</title><style>{_CSS}</style></head><body><h1>{e(title)}</h1>{intro_html}"
            + "".join(t.to_html() for t in tables) + figs + "</body></html>\n")


def provenance_lines(rows: Sequence[dict]) -> list[str]:
    """A few lines on where the rows come from (versions, commits, hosts, dates, config hashes)."""
    prov = [r.get("provenance") or {} for r in rows]
    if not prov:
        return ["No finished runs."]

    def uniq(key: str) -> str:
        vals = sorted({str(p.get(key)) for p in prov if p.get(key) is not None})
        return ", ".join(vals[:5]) + (f" (+{len(vals) - 5} more)" if len(vals) > 5 else "") if vals else "unknown"

    dates = sorted(p.get("finished_at") for p in prov if p.get("finished_at"))
    configs = {p.get("config_hash"): p.get("config") for p in prov if p.get("config_hash")}
    lines = [f"{len(rows)} runs; oblivio {uniq('oblivio_version')}; git commit {uniq('git_commit')}; "
             f"hosts {uniq('host')}; backends {uniq('backend')}; devices {uniq('device')}.",
             f"Finished between {dates[0]} and {dates[-1]}." if dates else "Dates unknown."]
    for h, c in configs.items():
        if isinstance(c, dict):
            rec = c.get("recipe") or {}
            lines.append(f"Config {h}: dataset {c.get('dataset')} (train size {c.get('train_size')}), model "
                         f"{c.get('model')} {c.get('model_options')}, recipe {rec.get('name')} ({rec.get('epochs')} epochs).")
    return lines


def build_figures(rows: Sequence[dict], keys: Sequence[str] | None = None) -> list[tuple[str, bytes]]:
    """PNG figures for the tables in ``keys`` that have data (needs ``pip install oblivio[plot]``)."""
    from . import plots

    # legends name the second gold model as the tables do (GOLD_SEED), never plain "gold"
    rows = [{**r, "method": GOLD_SEED} if r.get("method") == "gold" else r
            for r in rows if r.get("status", "ok") == "ok"]
    keys = list(keys or TABLES)
    figs = []
    if "tmu-table1" in keys and _by_class(rows):
        figs.append(("δ per forget class and method (mean ± std over seeds)", plots.delta_by_class(rows)))
    if "tmu-table3" in keys and any(_m(r, "activation_distance_l2") is not None for r in rows) and _by_class(rows):
        figs.append((f"Activation distance to the {GOLD_REFERENCE} per forget class", plots.metric_by_class(
            rows, "activation_distance_l2", ylabel="L2 activation distance")))
    size_entries = [e for e in _label_accuracy_entries(rows) if not e[0].endswith("(refit)")]
    if "tmu-figure3" in keys and size_entries:
        figs.append(("Label accuracy vs |D_f|", plots.label_accuracy_vs_size(size_entries)))
    if "two-stage-table5" in keys and any(_info_value(r, NEUTRALISATION_KEYS) is not None for r in rows):
        figs.append(("Neutralisation epochs vs forget ratio", plots.neutralisation_vs_ratio(rows)))
    return figs


@dataclass
class ReportFiles:
    """Paths written by :func:`write_report` and the tables they hold."""

    markdown: Path
    html: Path
    tables: list[Table]


def write_report(rows: Sequence[dict], out_dir: str | os.PathLike, *, title: str,
                 tables: Sequence[str] | None = None, intro: Sequence[str] = (), plots: bool = True,
                 stem: str = "report") -> ReportFiles:
    """Write ``<stem>.md`` and ``<stem>.html`` (self-contained) into ``out_dir``.

    Args:
        rows: result rows (error rows are ignored).
        out_dir: the folder (created).
        title: document title.
        tables: table keys (default: every table with data), see :data:`TABLES`.
        intro: lines under the title (e.g. the command that reproduces the results).
        plots: embed matplotlib figures in the HTML; skipped with a warning when matplotlib is missing.
        stem: file name stem.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    built = build_tables(rows, tables)
    ok_rows = [r for r in rows if r.get("status", "ok") == "ok"]
    intro = list(intro) + provenance_lines(ok_rows)
    figures: list[tuple[str, bytes]] = []
    if plots:
        try:
            figures = build_figures(ok_rows, tables)
        except ImportError as exc:
            log.warning("%s; the HTML report has no figures", exc)
    md = out / f"{stem}.md"
    md.write_text(to_markdown(built, title=title, intro=intro), encoding="utf-8")
    page = out / f"{stem}.html"
    page.write_text(to_html(built, title=title, intro=intro, figures=figures), encoding="utf-8")
    return ReportFiles(md, page, built)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "report"


__all__ = ["alignment_ci_table", "paired_comparison_table", "predictor_null_table", "ABLATION_KEYS", "LABEL_ACCURACY_KEYS", "NEUTRALISATION_KEYS", "SAVING_POINT_KEYS", "TABLES", "ReportFiles",
           "Table", "activation_distance_table", "build_figures", "build_tables", "fmt_mean_std",
           "forget_quality_table", "label_accuracy_by_size_table", "label_accuracy_table", "mean_std",
           "neutralisation_table", "provenance_lines", "saving_point_table", "summary_table", "tmu_table1",
           "to_html", "to_markdown", "tta_mislabel_table", "two_stage_accuracy_table", "write_report"]
