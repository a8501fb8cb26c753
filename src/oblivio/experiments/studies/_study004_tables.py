"""Scoring and tables of the 004 study (:mod:`.study004`): per request × method × replicate × K, the forget quality
``F`` and the final score from the rows' scores, with the study's controls and paired comparisons."""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from ...metrics.forget_quality import final_score, forget_quality
from ...utils import git_commit, git_source_state
from ..grid import GOLD_METHOD, ORIGINAL_METHOD
from ..table import Table

K_REPORTED = 64
"""Every group is scored at this K (or all its runs when fewer) so that methods compare at one K; groups with
more runs are scored at their full K too when that is a power of two (128, 256, 512...)."""


def _stamp() -> dict:
    here = os.path.dirname(__file__)
    return {
        "git_commit": git_commit(here),
        **git_source_state(os.path.dirname(os.path.dirname(here))),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def summary_rows(rows: Sequence[dict], requests: dict[str, str]) -> list[dict]:
    """One row per (request, method, replicate, K): F, final score, the accuracies and their ratios, δ, sample
    agreement, cost, and the per-example scores ``H`` (for paired comparisons on the metric's grid)."""
    by_scenario = {v: k for k, v in requests.items()}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("status", "ok") == "ok" and r.get("scores") and r["scenario"] in by_scenario:
            groups[(r["scenario"], r["method"], r["seeds"]["train"], r["seeds"]["request"])].append(r)
    stamp = _stamp()
    out = []
    largest = max((len(g) for g in groups.values()), default=0)
    for (scenario, method, train, request), grp in sorted(groups.items()):
        grp = sorted(grp, key=lambda r: r["seeds"]["gold"])
        n = len(grp)
        # K = 64 for every group that has 64 runs, and the full count when it is a larger power of two; a study run
        # with fewer than 64 per side is scored at its own K. A chunk still running leaves other counts: those
        # groups are not reported until it finishes.
        ks = {K_REPORTED} if n >= K_REPORTED else ({n} if n == largest else set())
        ks |= {n} if n > K_REPORTED and n & (n - 1) == 0 else set()
        for k in sorted(ks):
            if k < 3:
                continue
            sub = grp[:k]
            u = np.asarray([r["scores"]["forget"] for r in sub], dtype=np.float64)
            g = np.asarray([r["scores"]["gold_forget"] for r in sub], dtype=np.float64)
            res = forget_quality(u, g)
            m = lambda key, sub=sub: [r["metrics"][key] for r in sub]  # noqa: E731
            ra_u, ra_r, ta_u, ta_r = m("acc_retain"), m("gold_acc_retain"), m("acc_test"), m("gold_acc_test")
            out.append(
                {
                    "kind": "forget-quality",
                    "request": by_scenario[scenario],
                    "scenario": scenario,
                    "method": method,
                    "replicate": train,
                    "request_seed": request,
                    "K": k,
                    "F": float(res.forget_quality),
                    "final_score": float(final_score(res.forget_quality, ra_u, ra_r, ta_u, ta_r)),
                    "ra_u": float(np.mean(ra_u)),
                    "ra_r": float(np.mean(ra_r)),
                    "ta_u": float(np.mean(ta_u)),
                    "ta_r": float(np.mean(ta_r)),
                    "ra_ratio": float(np.mean(ra_u) / np.mean(ra_r)),
                    "ta_ratio": float(np.mean(ta_u) / np.mean(ta_r)),
                    "acc_forget": float(np.mean(m("acc_forget"))),
                    "gold_acc_forget": float(np.mean(m("gold_acc_forget"))),
                    "delta": float(np.mean(m("delta_forget"))),
                    "sample_agreement": float(np.mean(m("sample_agreement"))),
                    "method_cpu_seconds": float(np.mean([r["cost"].get("method_cpu_seconds") or 0.0 for r in sub])),
                    "gold_train_cpu_seconds": float(
                        np.mean([r["cost"].get("gold_train_cpu_seconds") or 0.0 for r in sub])
                    ),
                    "cell_wall_seconds": float(np.mean([r["provenance"].get("wall_seconds") or 0.0 for r in sub])),
                    "median_epsilon": float(np.median(res.epsilons)),
                    # what the attacks see, per forget example: the spread of the K runs' logit-scaled confidences
                    # (std over runs, averaged over examples) against the K gold models', and the mean shift
                    "spread_u": float(u.std(axis=0).mean()),
                    "spread_r": float(g.std(axis=0).mean()),
                    "mean_shift": float(np.abs(u.mean(axis=0) - g.mean(axis=0)).mean()),
                    "n_forget": int(u.shape[1]),
                    "H": [float(h) for h in res.scores],
                    "cells_commits": sorted({str(r["provenance"].get("git_commit")) for r in sub}),
                    "cells_dirty": any(bool(r["provenance"].get("git_dirty")) for r in sub),
                    **stamp,
                }
            )
    return out


def shift_rows(exp, requests: dict[str, str], seeds: Sequence[int]) -> list[dict]:
    """The measured shift of every request drawn: class histogram of ``D_f`` against ``D`` (counts and total
    variation distance) and mean attribute of ``D_f`` against ``D`` (when the data has one)."""
    train = exp.data.train
    attrs = exp.data.info.get("group_attributes")
    y = train.labels.numpy()
    p_d = np.bincount(y, minlength=train.num_classes) / len(y)
    a_d = float(np.mean([attrs[int(g)] for g in train.groups.numpy()])) if attrs else None
    stamp = _stamp()
    out = []
    for name, scenario in requests.items():
        for seed in seeds:
            split = exp.forget_split(scenario, seed=seed)
            yf = y[split.forget_pos]
            counts = np.bincount(yf, minlength=train.num_classes)
            p_f = counts / counts.sum()
            gf = train.groups.numpy()[split.forget_pos]
            out.append(
                {
                    "kind": "shift",
                    "request": name,
                    "scenario": scenario,
                    "request_seed": int(seed),
                    "n_forget": int(len(yf)),
                    "n_identities": int(len(np.unique(gf))),
                    "forget_class_counts": counts.tolist(),
                    "train_class_share": [round(float(v), 6) for v in p_d],
                    "tv_distance": float(0.5 * np.abs(p_f - p_d).sum()),
                    "forget_attribute_mean": float(np.mean([attrs[int(g)] for g in gf])) if attrs else None,
                    "train_attribute_mean": a_d,
                    "groups": [int(g) for g in np.unique(gf)],
                    "rule": split.rule,
                    "forget_ids_hash": split.key,
                    **stamp,
                }
            )
    return out


def _ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and a 95% t-interval over replicates (NaN bounds with one value)."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return float(v.mean()), math.nan, math.nan
    from scipy import stats

    half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def _fmt(values: Sequence[float], digits: int = 3) -> str:
    m, lo, hi = _ci(values)
    if math.isnan(lo):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _order(methods: set[str]) -> list[str]:
    head = [m for m in (GOLD_METHOD, ORIGINAL_METHOD) if m in methods]
    return head + sorted(methods - set(head))


def _paired_h(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean per-example ``H_a - H_b`` and the Wilcoxon signed-rank p-value (zero differences dropped: ties on the
    2^-k grid are ties)."""
    d = np.asarray(a) - np.asarray(b)
    if not np.any(d != 0):
        return 0.0, 1.0
    from scipy.stats import wilcoxon

    return float(d.mean()), float(wilcoxon(d, zero_method="wilcox").pvalue)


def study_tables(summary: Sequence[dict], shifts: Sequence[dict]) -> list[Table]:
    """The study's tables: per request F / final score at each K with the controls, the ranking of the methods on
    the non-IID request against the IID ones, paired per-example comparisons, the request shift, and cost."""
    tables: list[Table] = []
    rows = [s for s in summary if s["kind"] == "forget-quality"]
    ks = sorted({s["K"] for s in rows})
    for request in ("non-iid", "iid-identities", "iid-images"):
        for k in ks:
            sel = [s for s in rows if s["request"] == request and s["K"] == k]
            if not sel:
                continue
            by_m: dict[str, list[dict]] = defaultdict(list)
            for s in sel:
                by_m[s["method"]].append(s)
            ceiling = {s["replicate"]: s["final_score"] for s in by_m.get(GOLD_METHOD, [])}
            body = []
            for method in _order(set(by_m)):
                grp = sorted(by_m[method], key=lambda s: s["replicate"])
                gap = [ceiling[s["replicate"]] - s["final_score"] for s in grp if s["replicate"] in ceiling]
                body.append(
                    [
                        method,
                        str(len(grp)),
                        _fmt([s["F"] for s in grp]),
                        _fmt([s["final_score"] for s in grp]),
                        _fmt(gap) if gap and method != GOLD_METHOD else "",
                        _fmt([s["ra_ratio"] for s in grp]),
                        _fmt([s["ta_ratio"] for s in grp]),
                        _fmt([100 * s["delta"] for s in grp], 1),
                        _fmt([100 * s["sample_agreement"] for s in grp], 1),
                        f"{np.mean([s['method_cpu_seconds'] for s in grp]):.2f}",
                    ]
                )
            tables.append(
                Table(
                    f"study-004-{request}-k{k}",
                    f"{request} request, K = {k} models per side: forget quality and final score (mean [95% t-CI "
                    "over replicates])",
                    [
                        "method",
                        "replicates",
                        "F",
                        "final score",
                        "ceiling − final",
                        "RA_u/RA_r",
                        "TA_u/TA_r",
                        "δ (points)",
                        "sample agreement (%)",
                        "method CPU s",
                    ],
                    body,
                    notes=[
                        "gold = K second gold models (the ceiling: a perfect unlearner); original = K originals "
                        "trained "
                        "on all of D (forget nothing). ceiling − final: the gold row's final score minus the method's, "
                        "paired by replicate.",
                    ],
                )
            )
    tables += _ranking_tables(rows) + _paired_tables(rows) + _spread_tables(rows)
    tables += [_shift_table(shifts), _cost_table(rows)]
    return [t for t in tables if t]


def _mean_final(rows, request, k) -> dict[str, float]:
    by_m: dict[str, list[float]] = defaultdict(list)
    for s in rows:
        if s["request"] == request and s["K"] == k:
            by_m[s["method"]].append(s["final_score"])
    return {m: float(np.mean(v)) for m, v in by_m.items()}


def _ranking_tables(rows) -> list[Table]:
    if not rows:
        return []
    k = min(s["K"] for s in rows)
    base = _mean_final(rows, "non-iid", k)
    if not base:
        return []
    others = {r: _mean_final(rows, r, k) for r in ("iid-identities", "iid-images")}
    ranked = sorted(base, key=lambda m: -base[m])
    body = []
    for i, m in enumerate(ranked):
        line = [m, str(i + 1), f"{base[m]:.3f}"]
        for r in ("iid-identities", "iid-images"):
            o = others[r]
            rank = sorted(o, key=lambda x: -o[x]).index(m) + 1 if m in o else None
            line += [str(rank) if rank else "", f"{o[m]:.3f}" if m in o else ""]
        body.append(line)
    notes = []
    for r in ("iid-identities", "iid-images"):
        common = [m for m in ranked if m in others[r]]
        if len(common) >= 3:
            from scipy.stats import kendalltau

            tau = kendalltau([base[m] for m in common], [others[r][m] for m in common])
            notes.append(
                f"Kendall τ non-iid vs {r} over {len(common)} entries: {tau.statistic:.2f} (p {tau.pvalue:.3f})"
            )
    return [
        Table(
            "study-004-ranking",
            f"Ranking by mean final score at K = {k}: non-IID request against the IID ones",
            ["method", "rank non-iid", "final non-iid", "rank iid-identities", "final", "rank iid-images", "final"],
            body,
            notes=notes,
        )
    ]


def _paired_tables(rows) -> list[Table]:
    """Best entry (by final score on non-iid at the smallest K, controls excluded) against every other, paired per
    forget example on H within each replicate, pooled over replicates."""
    tables = []
    for request in ("non-iid", "iid-identities"):
        for k in sorted({s["K"] for s in rows}):
            sel = [s for s in rows if s["request"] == request and s["K"] == k]
            means = _mean_final(sel, request, k)
            methods = [m for m in means if m not in (GOLD_METHOD, ORIGINAL_METHOD)]
            if len(means) < 2 or not methods:
                continue
            best = max(methods, key=lambda m: means[m])
            cell = {(s["method"], s["replicate"]): s for s in sel}
            body = []
            for other in _order(set(means) - {best}):
                a, b = [], []
                for (m, rep), s in cell.items():
                    if m == best and (other, rep) in cell:
                        a += s["H"]
                        b += cell[(other, rep)]["H"]
                if not a:
                    continue
                d, p = _paired_h(a, b)
                verdict = "tie (p ≥ 0.05)" if p >= 0.05 else ("better" if d > 0 else "worse")
                body.append([other, str(len(a)), f"{d:+.4f}", f"{p:.3g}", verdict])
            tables.append(
                Table(
                    f"study-004-paired-{request}-k{k}",
                    f"{request}, K = {k}: {best} (best final score) against each entry, per forget example H "
                    "(paired within replicate, pooled; Wilcoxon signed-rank)",
                    ["against", "examples", f"mean H({best}) − H(other)", "p", f"{best} is"],
                    body,
                )
            )
    return tables


def _spread_tables(rows) -> list[Table]:
    """Why F ranks as it does: per entry, the spread of its K runs' confidences on each forget example against the
    K gold models' spread, and the mean shift (both in logit-scaled confidence units, averaged over examples)."""
    out = []
    for request in ("non-iid", "iid-identities", "iid-images"):
        sel = [s for s in rows if s["request"] == request and s["K"] == min(x["K"] for x in rows) and "spread_u" in s]
        if not sel:
            continue
        by_m: dict[str, list[dict]] = defaultdict(list)
        for s in sel:
            by_m[s["method"]].append(s)
        body = [
            [
                m,
                f"{np.mean([s['spread_u'] for s in by_m[m]]):.2f}",
                f"{np.mean([s['spread_r'] for s in by_m[m]]):.2f}",
                f"{np.mean([s['mean_shift'] for s in by_m[m]]):.2f}",
                f"{np.mean([s['F'] for s in by_m[m]]):.3f}",
            ]
            for m in _order(set(by_m))
        ]
        out.append(
            Table(
                f"study-004-spread-{request}",
                f"{request}: spread of an entry's K runs on each forget example against gold's, and the mean shift "
                "(logit-scaled confidence; mean over examples and replicates)",
                ["entry", "spread of its runs (std)", "spread of the gold models (std)", "|mean shift|", "F"],
                body,
                notes=[
                    "The attacks of SPEC §8 separate two sets of K values per example: an entry scores F only when "
                    "its runs are spread like the gold models' and centred like them."
                ],
            )
        )
    return out


def _shift_table(shifts) -> Table:
    body = []
    for s in shifts:
        attr = (
            f"{s['forget_attribute_mean']:.2f} vs {s['train_attribute_mean']:.2f}"
            if s.get("forget_attribute_mean") is not None
            else ""
        )
        body.append(
            [
                s["request"],
                str(s["request_seed"]),
                str(s["n_identities"]),
                str(s["n_forget"]),
                f"{s['tv_distance']:.3f}",
                attr,
                " ".join(str(c) for c in s["forget_class_counts"]),
            ]
        )
    return Table(
        "study-004-shift",
        "How far each request is from the data: class histogram of D_f against D (total variation distance) and "
        "mean attribute",
        ["request", "seed", "identities", "images", "TV(D_f, D) classes", "attribute D_f vs D", "D_f class counts"],
        body,
    )


def _cost_table(rows) -> Table:
    by_m: dict[str, list[dict]] = defaultdict(list)
    for s in rows:
        if s["K"] == min(x["K"] for x in rows if x["method"] == s["method"]):
            by_m[s["method"]].append(s)
    body = []
    for m in _order(set(by_m)):
        grp = by_m[m]
        body.append(
            [
                m,
                f"{np.mean([s['method_cpu_seconds'] for s in grp]):.3f}",
                f"{np.mean([s['gold_train_cpu_seconds'] for s in grp]):.3f}",
                f"{np.mean([s['cell_wall_seconds'] for s in grp]):.2f}",
            ]
        )
    return Table(
        "study-004-cost",
        "Cost per model (CPU seconds, all threads of the process; gold = one retraining)",
        ["entry", "method CPU s per run", "gold training CPU s", "cell wall s (run + evaluation)"],
        body,
        notes=["gold and original rows cost a training each (see the gold column); their 'method' time is 0."],
    )


__all__ = ["K_REPORTED", "shift_rows", "study_tables", "summary_rows"]
