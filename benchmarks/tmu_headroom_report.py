"""Issue 23 reports from existing rows (no training): the seed-50 exploration (``tmu_headroom_explore.py``) and the
worst case over request shapes (``tmu_shapes.py``), as markdown tables.

* ``explore ROWS``: per protocol the headroom (E* − E of doing nothing) with the held-out gold's E (the floor); every
  method's E, δ to the mean gold and activation distance on the unit; each decision score as a predictor of the gold
  distribution (AUC against ``p_i`` and the majority label, E of its own decision, E after the aligned step); the
  drag measurement (collateral flips of a fixed decision per remedy); stability over unlearning seeds where rows
  exist.
* ``shapes ROWS``: per method the mean over (shape, seed) units with a 95% bootstrap CI and the worst unit and worst
  shape beside it; per shape the worst method and the ledger default's rank; paired tests of the ledger default
  against the others on the metric's grid (``|D_f| · G``: ties are ties).

Every table states n. Rows are read as they are; nothing is filled in.

Usage::

    python benchmarks/tmu_headroom_report.py explore docs/results/tmu-headroom-explore.jsonl
    python benchmarks/tmu_headroom_report.py shapes docs/results/tmu-shapes-tiny.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

ORIGINAL = "original (no unlearning)"
DEFAULT = "tmu.guarded"
"""The ledger's default method (oblivio.ledger.service.DEFAULT_METHOD)."""
SCORE_VARIANT = {"kfold": "tmu.kfold", "aum": "tmu.aum-kfold", "kfold+aum": "tmu.kfold+aum"}
"""The registered variant whose decision is the score's ranking at the K-fold count (the drag rows' decisions)."""
TIE = 1e-9
"""Two means of grid values closer than this are a tie (float rounding only)."""
STEP = "runner-up (default)"
"""The drag rows' default aligned step (the remedy that changes nothing)."""


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _pct(x, digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:.{digits}f}"


def _num(x, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _time(row: dict) -> str | None:
    p = row.get("provenance") or {}
    return p.get("recorded_at") or p.get("finished_at") or p.get("started_at")


def provenance_table(rows: list[dict]) -> str:
    """Rows per (kind, commit, dirty) with their time range; rows missing a commit, a dirty flag or a time counted."""
    groups: dict[tuple, list[str]] = defaultdict(list)
    missing = defaultdict(int)
    for r in rows:
        p = r.get("provenance") or {}
        for field, ok in (("git_commit", p.get("git_commit")), ("git_dirty", "git_dirty" in p), ("time", _time(r))):
            if not ok:
                missing[field] += 1
        groups[(r.get("kind", "method"), p.get("git_commit", "")[:7], p.get("git_dirty"))].append(_time(r) or "")
    lines = ["| kind | commit | dirty | rows | first | last |", "|---|---|---|---|---|---|"]
    for (kind, commit, dirty), ts in sorted(groups.items(), key=lambda kv: min(kv[1])):
        lines.append(f"| {kind} | {commit} | {dirty} | {len(ts)} | {min(ts)} | {max(ts)} |")
    miss = ", ".join(f"{k}: {v}" for k, v in missing.items()) or "none"
    return "\n".join(lines) + f"\n\nRows: {len(rows)}; rows missing a commit, dirty flag or time: {miss}.\n"


# ------------------------------------------------------------------------------------------------ explore
def headroom(method_rows: list[dict]) -> dict:
    """Per protocol (scenario) of runner rows with G golds: ``n``, ``G``, the mean gold accuracy on D_f, E*, the
    original's E, headroom ``E* − E_original`` and the held-out gold's E (the ``gold`` row; None when it did not run).
    """
    out: dict = {}
    for r in method_rows:
        m = r.get("metrics") or {}
        if r.get("status", "ok") != "ok" or m.get("expected_agreement_best") is None:
            continue
        u = out.setdefault(
            r["scenario"],
            {
                "n": r["n_forget"],
                "G": m.get("gold_models"),
                "gold_mean_acc": m.get("gold_mean_acc_forget"),
                "E_best": m["expected_agreement_best"],
                "E_original": m.get("original_expected_agreement"),
                "E_gold": None,
                "methods": 0,
            },
        )
        u["methods"] += 1
        if r["method"] == "gold":
            u["E_gold"] = m.get("expected_agreement")
    for u in out.values():
        u["headroom"] = u["E_best"] - u["E_original"] if u["E_original"] is not None else None
    return out


def _method_table(rows: list[dict], scenario: str) -> list[str]:
    from oblivio.experiments.stats import original_rows

    rs = [r for r in rows if r["scenario"] == scenario and r.get("status", "ok") == "ok"]
    every = rs + original_rows(rs)
    every.sort(key=lambda r: -(r["metrics"].get("expected_agreement") or -1))
    lines = [
        "| method | E (%) | E count / (n·G) | δ to mean gold (points) | act. distance to mean gold | ACC_test (%) "
        "| cost (CPU, share of retraining) | with K-fold training amortised over 100 requests | commit (dirty) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in every:
        m, p = r["metrics"], r.get("provenance") or {}
        cnt = m.get("expected_agreement_count")
        if cnt is None and m.get("expected_agreement") is not None and r.get("n_forget") and m.get("gold_models"):
            cnt = round(m["expected_agreement"] * r["n_forget"] * m["gold_models"])
        nG = r.get("n_forget", 0) * (m.get("gold_models") or 0)
        cost = r.get("cost") or {}
        note = " (guard fell back to fine-tune)" if (r.get("info") or {}).get("guard_triggered") else ""
        prov = f"{p['git_commit'][:7]} ({p['git_dirty']})" if p.get("git_commit") else "(original: from the rows)"
        lines.append(
            f"| {r['method']}{note} | {_pct(m.get('expected_agreement'), 2)} | {cnt} / {nG} | "
            f"{_pct(m.get('delta_mean_gold'), 2)} | {_num(m.get('activation_distance_mean_gold_l2'))} | "
            f"{_pct(m.get('acc_test'))} | {_num(cost.get('rte_cpu'))} | "
            f"{_num(cost.get('rte_cpu_amortised_100'))} | {prov} |"
        )
    return lines


def auc_table(auc_rows: list[dict], drag_rows: list[dict], method_rows: list[dict]) -> list[str]:
    """Per protocol and score: AUC vs p_i and vs the majority label, its own decision (count, agreement with the Bayes
    decision, E), E after the default aligned step with that decision (drag rows) and the registered variant's E."""
    after = {(r["scenario"], r["decision"]): r for r in drag_rows if r["remedy"] == STEP}
    variant = {(r["scenario"], r["method"]): r["metrics"].get("expected_agreement") for r in method_rows}
    lines = [
        "| protocol | n | score | AUC vs p_i | AUC vs majority | its decision: flips | agrees with Bayes (%) | "
        "E of the decision (%) | E after the default step (%) | variant: E (%) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(auc_rows, key=lambda r: (r["scenario"], -r["auc_vs_p"])):
        d = after.get((r["scenario"], r["score"]))
        v = SCORE_VARIANT.get(r["score"])
        ve = variant.get((r["scenario"], v)) if v else None
        lines.append(
            f"| {r['scenario']} | {r['n_forget']} | {r['score']} | {r['auc_vs_p']:.3f} | {r['auc_vs_majority']:.3f} | "
            f"{r.get('decision_hard', d['n_hard'] if d else 'n/a')} | {_pct(r.get('decision_bayes_agreement'))} | "
            f"{_pct(r.get('decision_E', d['E_decision'] if d else None), 2)} | {_pct(d['E'] if d else None, 2)} | "
            f"{f'{v} {_pct(ve, 2)}' if v and ve is not None else 'n/a'} |"
        )
    return lines


def drag_gold_models(row: dict) -> int:
    """G of a drag row: the explore script writes it only into the key (``drag2:...:folds:G``)."""
    return int(row.get("gold_models") or row["key"].rsplit(":", 1)[1])


def drag_table(drag_rows: list[dict]) -> list[str]:
    """Per fixed decision and remedy: E after the step against the decision's own E (the shortfall in counts of the
    n·G grid), the collateral flips (kept images the step flipped) by similarity tercile, and how many of them lie
    nearer a wrongly chosen image than a rightly chosen one."""
    lines = [
        "| protocol | decision | flips (wrongly chosen) | remedy | E decision (%) | E after (%) | shortfall "
        "(counts of n·G) | chosen that flipped (%) | collateral flips | by similarity tercile (low→high) | "
        "collateral nearer a wrongly chosen one | ρ(Δmargin, similarity) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in drag_rows:
        g = r["n_forget"] * drag_gold_models(r)
        short = round((r["E_decision"] - r["E"]) * g)
        rho = r.get("spearman_dmargin_vs_similarity")
        lines.append(
            f"| {r['scenario']} | {r['decision']} | {r['n_hard']} ({r['n_false_hard']}) | {r['remedy']} | "
            f"{_pct(r['E_decision'], 2)} | {_pct(r['E'], 2)} | {short} | {_pct(r['hard_flipped'])} | "
            f"{r['collateral_flips']} | {r['collateral_by_similarity_tercile']} | "
            f"{'n/a' if r.get('collateral_nearer_false_hard') is None else r['collateral_nearer_false_hard']} | "
            f"{_num(rho, 2)} |"
        )
    return lines


def shortfall_table(drag_rows: list[dict]) -> list[str]:
    """Per fixed decision and remedy (rows that carry ``misses``): where the step missed its decision, as images and
    as E lost in gold-vote counts (a negative cost is a miss that helped: the decision was wrong there)."""
    rows = [r for r in drag_rows if r.get("misses")]
    if not rows:
        return []
    kinds = ("hard_unflipped", "collateral", "kept_wrong_from_start")
    lines = [
        "",
        "Where the step missed its decision: images (E lost, in gold-vote counts of the n·G grid)",
        "",
        "| protocol | decision | remedy | chosen to flip, left right | kept, flipped by the step | kept, wrong "
        "from the start | total E lost (counts) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"{r['misses'][k]} ({r['miss_cost_counts'][k]:+.0f})" for k in kinds]
        total = sum(r["miss_cost_counts"][k] for k in kinds)
        lines.append(f"| {r['scenario']} | {r['decision']} | {r['remedy']} | {' | '.join(cells)} | {total:+.0f} |")
    return lines


def stability(method_rows: list[dict]) -> dict:
    """``{(scenario, train seed, method): [rows]}`` for cells run with more than one unlearning seed."""
    cells: dict = defaultdict(list)
    for r in method_rows:
        if r.get("status", "ok") == "ok":
            cells[(r["scenario"], r["seeds"]["train"], r["method"])].append(r)
    return {k: v for k, v in cells.items() if len({r["seeds"]["unlearn"] for r in v}) > 1}


def explore_report(rows: list[dict]) -> str:
    from oblivio.experiments.stats import mean_ci

    method_rows = [r for r in rows if "kind" not in r]
    auc_rows = [r for r in rows if r.get("kind") == "auc"]
    drag_rows = [r for r in rows if r.get("kind") == "drag"]
    out = ["## Provenance", "", provenance_table(rows), "## Headroom per protocol", ""]
    hr = headroom(method_rows)
    auc_room = {r["scenario"]: r for r in auc_rows}
    out += [
        "| protocol | n | G | methods run | mean gold acc. on D_f (%) | E* (%) | E do nothing (%) | "
        "headroom E* − E(do nothing) (points) | held-out gold E (%) | E* − E(right on all) (points) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sc, u in hr.items():
        a = auc_room.get(sc)
        out.append(
            f"| {sc} | {u['n']} | {u['G']} | {u['methods']} | {_pct(u['gold_mean_acc'], 2)} | {_pct(u['E_best'], 2)} | "
            f"{_pct(u['E_original'], 2)} | {_pct(u['headroom'], 2)} | {_pct(u['E_gold'], 2)} | "
            f"{_pct(a['headroom'], 2) if a else 'n/a'} |"
        )
    out += [
        "",
        "(E* − E(right on all) is the `headroom` field of the `auc` rows: E* minus the E of a model right on every "
        "forget image, i.e. E* − mean p_i. The held-out gold is n/a where its row did not run.)",
        "",
    ]
    for sc in hr:
        out += [
            f"### Methods on {sc} (one unit: seed 50, one unlearning seed)",
            "",
            *_method_table(method_rows, sc),
            "",
        ]
    out += [
        "## Decision scores as predictors of the gold distribution",
        "",
        *auc_table(auc_rows, drag_rows, method_rows),
    ]
    out += ["", "## Drag: TMU's aligned step with a fixed decision", ""]
    out += [*drag_table(drag_rows), *shortfall_table(drag_rows)] if drag_rows else ["No drag rows."]
    out += ["", "## Stability over unlearning seeds", ""]
    st = stability(method_rows)
    if not st:
        out.append("No stability rows (no cell ran with more than one unlearning seed).")
    else:
        out += [
            "| protocol | seed | method | n seeds | E mean [95% CI] | spread (max − min) | worst E "
            "| δ to mean gold: mean | worst δ |",
            "|" + "---|" * 9,
        ]
        for (sc, s, m), rs in sorted(st.items()):
            e = [r["metrics"]["expected_agreement"] for r in rs]
            d = [abs(r["metrics"]["delta_mean_gold"]) for r in rs]
            ci = mean_ci(e)
            out.append(
                f"| {sc} | {s} | {m} | {ci.n} | {ci.format(scale=100, digits=2)} | {_pct(max(e) - min(e), 2)} | "
                f"{_pct(min(e), 2)} | {_pct(sum(d) / len(d), 2)} | {_pct(max(d), 2)} |"
            )
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------ shapes
def shape_units(rows: list[dict]) -> dict:
    """``{method: {(scenario, train seed): row}}`` with the original's pseudo-rows (doing nothing)."""
    from oblivio.experiments.stats import original_rows

    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    out: dict = defaultdict(dict)
    for r in ok + original_rows(ok):
        out[r["method"]][(r["scenario"], r["seeds"]["train"])] = r
    return out


def per_shape_means(units: dict, key: str) -> dict:
    """``{method: {scenario: mean over seeds of metrics[key]}}``."""
    out: dict = {}
    for m, by in units.items():
        acc: dict = defaultdict(list)
        for (sc, _), r in by.items():
            v = r["metrics"].get(key)
            if v is not None:
                acc[sc].append(v)
        out[m] = {sc: sum(v) / len(v) for sc, v in acc.items()}
    return out


def worst_by_shape(means: dict, *, higher_is_worse: bool, exclude=("gold",)) -> dict:
    """``{scenario: (methods ranked worst first, their values)}``."""
    shapes = list(dict.fromkeys(sc for by in means.values() for sc in by))
    out = {}
    for sc in shapes:
        vals = {m: by[sc] for m, by in means.items() if sc in by and m not in exclude}
        order = sorted(vals, key=lambda k: -vals[k] if higher_is_worse else vals[k])
        out[sc] = (order, vals)
    return out


def default_rank(vals: dict, *, higher_is_worse: bool, method: str = DEFAULT) -> int | str:
    """1 + the number of methods strictly worse than ``method`` (ties share a rank; 1 = worst)."""
    if method not in vals:
        return "n/a"
    v = vals[method]  # means of grid values: equal up to float rounding are ties
    return 1 + sum((x > v + TIE) if higher_is_worse else (x < v - TIE) for x in vals.values())


def paired_on_grid(units: dict, a: str, b: str, key: str):
    """Paired comparison ``a − b`` over the units both ran, on the ``|D_f| · G`` grid."""
    from oblivio.experiments.stats import gold_grid_n, paired_difference

    common = [u for u in units.get(a, {}) if u in units.get(b, {})]
    va = [units[a][u]["metrics"].get(key) for u in common]
    vb = [units[b][u]["metrics"].get(key) for u in common]
    grid = [gold_grid_n(units[a][u]) or gold_grid_n(units[b][u]) for u in common]
    return paired_difference(va, vb, grid=grid)


def shapes_report(rows: list[dict]) -> str:
    from oblivio.experiments.stats import mean_ci

    units = shape_units(rows)
    shapes = list(dict.fromkeys(r["scenario"] for r in rows))
    out = ["## Provenance", "", provenance_table(rows)]
    out += [
        "## Per method over every (shape, seed) unit",
        "",
        "| method | n units | δ to mean gold: mean [95% CI] | worst unit (shape, seed) | worst shape (mean over seeds) "
        "| E: mean [95% CI] | worst E unit (shape, seed) |",
        "|---|---|---|---|---|---|---|",
    ]
    d_means = per_shape_means(units, "delta_mean_gold")
    e_means = per_shape_means(units, "expected_agreement")
    for m, by in units.items():
        d = [
            (r["metrics"]["delta_mean_gold"], u)
            for u, r in by.items()
            if r["metrics"].get("delta_mean_gold") is not None
        ]
        e = [
            (r["metrics"]["expected_agreement"], u)
            for u, r in by.items()
            if r["metrics"].get("expected_agreement") is not None
        ]
        if not d:
            continue
        dw, ew = max(d), min(e)
        ws = max(d_means[m].items(), key=lambda kv: kv[1])
        out.append(
            f"| {m} | {len(d)} | {mean_ci([x for x, _ in d]).format(scale=100)} | {_pct(dw[0])} ({dw[1][0]}, "
            f"{dw[1][1]}) | {_pct(ws[1])} ({ws[0]}) | {mean_ci([x for x, _ in e]).format(scale=100)} | "
            f"{_pct(ew[0])} ({ew[1][0]}, {ew[1][1]}) |"
        )
    methods = [m for m in units if m != "gold"]
    for label, means, worse in (("δ to mean gold (points)", d_means, True), ("E (%)", e_means, False)):
        ranked = worst_by_shape(means, higher_is_worse=worse)
        out += [
            "",
            f"## {label} per shape (mean over seeds) and the worst method",
            "",
            "| method | " + " | ".join(shapes) + " |",
            "|---|" + "---|" * len(shapes),
        ]
        for m in [*methods, *(["gold"] if "gold" in means else [])]:
            out.append(f"| {m} | " + " | ".join(_pct(means[m].get(sc)) for sc in shapes) + " |")
        out += [
            "",
            f"| shape | seeds | worst method ({label}) | its value | {DEFAULT} | rank of {DEFAULT} (1 = worst; "
            f"ties share a rank) | {DEFAULT}'s guard fell back |",
            "|---|---|---|---|---|---|---|",
        ]
        for sc in shapes:
            order, vals = ranked[sc]
            own = [r for u, r in units.get(DEFAULT, {}).items() if u[0] == sc]
            fell = sum(bool((r.get("info") or {}).get("guard_triggered")) for r in own)
            worst = [m for m in order if abs(vals[m] - vals[order[0]]) <= TIE]
            out.append(
                f"| {sc} | {len(own)} | {', '.join(worst)} | {_pct(vals[order[0]])} | {_pct(vals.get(DEFAULT))} | "
                f"{default_rank(vals, higher_is_worse=worse)} of {len(order)} | {fell} of {len(own)} |"
            )
        ever = [sc for sc in shapes if default_rank(ranked[sc][1], higher_is_worse=worse) == 1]
        out += ["", f"{DEFAULT} worst (or tied worst) on {label}: {', '.join(ever) if ever else 'on no shape'}."]
    out += [
        "",
        f"## Paired on the grid: {DEFAULT} against each method over the (shape, seed) units",
        "",
        "Differences are counts of the |D_f|·G grid (Wilcoxon signed-rank, zeros dropped; 95% bootstrap CI).",
        "",
        "| other | measure | n pairs | zeros (ties) | mean difference [95% CI] | p |",
        "|---|---|---|---|---|---|",
    ]
    for other in [m for m in methods if m != DEFAULT]:
        for label, key in (("δ to mean gold (points)", "delta_mean_gold"), ("E (points)", "expected_agreement")):
            res = paired_on_grid(units, DEFAULT, other, key)
            ci = f"{100 * res.mean_diff:+.2f} [{100 * res.low:+.2f}, {100 * res.high:+.2f}]"
            out.append(f"| {other} | {label} | {res.n} | {res.zeros} | {ci} | {res.p_value:.3g} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("explore", "shapes"))
    p.add_argument("rows", type=Path)
    a = p.parse_args(argv)
    rows = read_rows(a.rows)
    print(explore_report(rows) if a.command == "explore" else shapes_report(rows), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
