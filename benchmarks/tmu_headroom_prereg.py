"""The issue-23 pre-registered run: the plan is docs/results/tmu-headroom-prereg-plan.md (committed before the run).

``run`` trains (through the store) and runs the declared grid: per unit (fresh seed × protocol) the methods with two
unlearning seeds, the held-out gold once, every cell scored against G gold models. ``analyse`` computes the declared
comparisons from the rows and writes the report as it comes out (no unit, seed or method added or dropped).

Usage::

    python benchmarks/tmu_headroom_prereg.py select results/explore/select.jsonl      # the candidate, by the rule
    python benchmarks/tmu_headroom_prereg.py run --best tmu.X --out results/prereg/rows.jsonl [--seeds 300,301]
    python benchmarks/tmu_headroom_prereg.py analyse results/prereg/rows.jsonl --best tmu.X > report.md
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

SEEDS = (300, 301, 302)
PROTOCOLS = {300: ("random:0.1", "class-subset:6:400"), 301: ("random:0.1", "class-subset:4:400"),
             302: ("random:0.1", "class-subset:2:400")}  # fmt: skip
UNLEARN_OFFSETS = (10_000, 12_000)
"""Unlearning seeds of a unit with seed s: 10000 + s (the held-out gold's seed, as in every runner grid), 12000 + s."""
G = 4
FOLDS = 5
ORIGINAL = "original (no unlearning)"
CANDIDATES = ("tmu.kfold", "tmu.kfold-soft", "tmu.aum", "tmu.aum-kfold", "tmu.aum-kfold-soft", "tmu.kfold+aum",
              "tmu.kfold+aum-soft")  # fmt: skip
SELECTION_SEED = 50
SELECTION_SHAPES = ("random:0.1", "class-subset:6:400", "class-subset:6:100")
TIE = 0.002
"""Differences of mean E under 0.2 points are ties (the plan's rule)."""


def select(rows: list[dict]) -> tuple[str, list[tuple]]:
    """The plan's rule on the seed-50 rows: the candidate with the highest mean E over the three shapes; a
    difference under 0.2 points is a tie, broken by the lower ``rte_cpu_amortised_100``, then by the lower
    activation distance to the mean gold. Returns the name and the table ``(name, E per shape, mean E, cost, act)``."""
    by: dict = defaultdict(dict)
    for r in rows:
        ok = r.get("status", "ok") == "ok" and r.get("method") in CANDIDATES
        if ok and r["seeds"]["train"] == SELECTION_SEED and r["scenario"] in SELECTION_SHAPES:
            by[r["method"]][r["scenario"]] = r
    table = []
    for name in CANDIDATES:
        got = by.get(name, {})
        missing = [s for s in SELECTION_SHAPES if s not in got]
        if missing:
            raise SystemExit(f"{name} has no seed-{SELECTION_SEED} row for {', '.join(missing)}: run it first")
        es = [got[s]["metrics"]["expected_agreement"] for s in SELECTION_SHAPES]
        cost = [(got[s].get("cost") or {}).get("rte_cpu_amortised_100") for s in SELECTION_SHAPES]
        act = [got[s]["metrics"]["activation_distance_mean_gold_l2"] for s in SELECTION_SHAPES]
        mean_cost = sum(c for c in cost if c is not None) / max(1, sum(c is not None for c in cost))
        table.append((name, es, sum(es) / len(es), mean_cost, sum(act) / len(act)))
    top = max(t[2] for t in table)
    tied = [t for t in table if top - t[2] < TIE]
    best = min(tied, key=lambda t: (t[3], t[4]))
    return best[0], table


def methods(best: str) -> list:
    return [
        best,
        {"name": best, "hparams": {"hard_selection": "random"}, "label": "rate-matched control"},
        "tmu",
        "tmu.guarded",
        "finetune",
        "finetune.1ep",
    ]


def cmd_run(a) -> None:
    from oblivio.experiments.grid import EvalOptions, Grid, Seeds
    from oblivio.experiments.pipeline import Experiment
    from oblivio.experiments.runner import Runner

    exp = Experiment("cpu", store=a.store, progress=False)
    opts = EvalOptions(mia=False, zrf=False, gold_models=G)
    seeds_here = [int(s) for s in a.seeds.split(",")] if a.seeds else list(SEEDS)
    if not set(seeds_here) <= set(SEEDS):
        raise SystemExit(f"--seeds must be among the declared {SEEDS}")
    for s in seeds_here:  # models first (resumable), then the cells
        exp.original_dynamics(seed=s, recompute=True)
        exp.kfold_evidence(seed=s, folds=FOLDS)
    runner = Runner("cpu", results=a.out, store=a.store, tags={"benchmark": "tmu-headroom-prereg"})
    for s in seeds_here:
        base = Seeds.for_replicate(0, base=s)
        seeds = [Seeds(train=s, gold=s, unlearn=o + s, eval=base.eval, request=s) for o in UNLEARN_OFFSETS]
        for protocol in PROTOCOLS[s]:
            runner.run(Grid(scenarios=[protocol], methods=methods(a.best), seeds=seeds, options=opts))
            runner.run(Grid(scenarios=[protocol], methods=["gold"], seeds=seeds[:1], options=opts))


def _units(rows: list[dict]) -> dict:
    """``{(seed, scenario): {method: [rows]}}`` with the original's pseudo-rows (one per unlearning seed's rows)."""
    from oblivio.experiments.stats import original_rows

    units: dict = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("status", "ok") == "ok":
            units[(r["seeds"]["train"], r["scenario"])][r["method"]].append(r)
    for u, by in units.items():
        orig = original_rows(
            [r for rs in by.values() for r in rs if r["seeds"]["unlearn"] == UNLEARN_OFFSETS[0] + u[0]]
        )
        by[ORIGINAL] = orig
    return units


def unit_value(rs: list[dict], key: str, *, grid: bool) -> tuple[float | None, int | None]:
    """The mean of ``metrics[key]`` over a method's rows in one unit, and (for a grid measure) its denominator
    ``n · G · S`` (the mean of S values on the ``n · G`` grid is a multiple of ``1 / (n · G · S)``)."""
    vals = [r["metrics"].get(key) for r in rs if r["metrics"].get(key) is not None]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    if not grid:
        return mean, None
    n, g = rs[0]["n_forget"], rs[0]["metrics"]["gold_models"]
    return mean, n * g * len(vals)


MEASURES = (
    ("E (expected agreement, %)", "expected_agreement", True, "higher", 100),
    ("act. distance to mean gold L2", "activation_distance_mean_gold_l2", False, "lower", 1),
    ("δ to mean gold (points)", "delta_mean_gold", True, "lower", 100),
)


def compare_units(units: dict, a: str, b: str) -> list[tuple]:
    """Per measure: the paired comparison of ``a`` and ``b`` over the units both ran (on the grid where declared)."""
    from oblivio.experiments.stats import paired_difference

    out = []
    for label, key, grid, direction, scale in MEASURES:
        va, vb, ns = [], [], []
        for by in units.values():
            if a in by and b in by:
                x, nx = unit_value(by[a], key, grid=grid)
                y, ny = unit_value(by[b], key, grid=grid)
                if x is None or y is None:
                    continue
                va.append(x)
                vb.append(y)
                ns.append(math.lcm(nx, ny) if grid else None)
        if len(va) < 2:
            continue
        res = paired_difference(va, vb, grid=ns if grid else None)
        out.append((label, direction, scale, res))
    return out


def worst_case(units: dict, method: str, key: str = "delta_mean_gold") -> float | None:
    vals = [r["metrics"].get(key) for by in units.values() for r in by.get(method, [])]
    vals = [v for v in vals if v is not None]
    return max(vals) if vals else None


def analyse(rows: list[dict], best: str) -> str:
    from oblivio.experiments.stats import mean_ci

    units = _units(rows)
    names = list(dict.fromkeys([best, "rate-matched control", "tmu", "tmu.guarded", "finetune", "finetune.1ep"]))
    names += ["gold", ORIGINAL]
    lines = [
        f"Units: {len(units)} ({', '.join(f'{s}:{sc}' for s, sc in sorted(units))}); methods with two unlearning "
        "seeds each (the held-out gold and the original once per unit). Mean over units [95% bootstrap CI].",
        "",
        "| method | units | E (%) | E* − E | δ to mean gold | act. distance to mean gold | worst δ over its runs | "
        "RTE_cpu amortised at 100 requests |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in names:
        vals = {k: [] for k in ("e", "gap", "d", "act", "rte")}
        for by in units.values():
            if m not in by:
                continue
            rs = by[m]
            e = unit_value(rs, "expected_agreement", grid=False)[0]
            best_e = unit_value(rs, "expected_agreement_best", grid=False)[0]
            vals["e"].append(e)
            vals["gap"].append(best_e - e if e is not None and best_e is not None else None)
            vals["d"].append(unit_value(rs, "delta_mean_gold", grid=False)[0])
            vals["act"].append(unit_value(rs, "activation_distance_mean_gold_l2", grid=False)[0])
            rte = [(r.get("cost") or {}).get("rte_cpu_amortised_100", (r.get("cost") or {}).get("rte_cpu")) for r in rs]
            vals["rte"].append(sum(x for x in rte if x is not None) / max(1, sum(x is not None for x in rte)) or None)
        if not vals["e"]:
            continue
        w = worst_case(units, m)
        e_ci, gap_ci = mean_ci(vals["e"]).format(scale=100), mean_ci(vals["gap"]).format(scale=100)
        lines.append(
            f"| {m} | {len(vals['e'])} | {e_ci} | {gap_ci}"
            f" | {mean_ci(vals['d']).format(scale=100)} | {mean_ci(vals['act']).format(digits=3)} | "
            f"{'' if w is None else f'{100 * w:.1f}'} | {mean_ci(vals['rte']).format(digits=3)} |"
        )
    lines += [
        "",
        f"Paired over units, {best} minus the other (two-sided Wilcoxon signed-rank, zero differences dropped; E and δ "
        "on their n·G·S grid):",
        "",
        "| vs | measure | units | zeros | mean diff [95% CI] | p | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for other in ["finetune", ORIGINAL, "tmu", "finetune.1ep", "rate-matched control", "gold"]:
        for label, direction, scale, res in compare_units(units, best, other):
            lines.append(
                f"| {other} | {label} | {res.n} | {res.zeros} | {scale * res.mean_diff:+.3f} "
                f"[{scale * res.low:+.3f}, {scale * res.high:+.3f}] | {res.p_value:.3g} | {res.verdict(direction)} |"
            )
    # the declared criterion (Done when)
    comps = {label: (direction, res) for label, direction, _, res in compare_units(units, best, "finetune")}
    e_ok = comps.get(MEASURES[0][0]) and comps[MEASURES[0][0]][1].verdict("higher") == "better"
    act_ok = comps.get(MEASURES[1][0]) and comps[MEASURES[1][0]][1].verdict("lower") == "better"
    d_ok = comps.get(MEASURES[2][0]) and comps[MEASURES[2][0]][1].verdict("lower") != "worse"
    wb, wf = worst_case(units, best), worst_case(units, "finetune")
    w_ok = wb is not None and wf is not None and wb <= wf
    rte = [
        (r.get("cost") or {}).get("rte_cpu_amortised_100", (r.get("cost") or {}).get("rte_cpu"))
        for by in units.values()
        for r in by.get(best, [])
    ]  # a method without one-off evidence: its own RTE
    rte = [x for x in rte if x is not None]
    c_ok = bool(rte) and sum(rte) / len(rte) <= 0.05
    lines += [
        "",
        f"Declared criterion, {best} against fine-tune: E better (p < 0.05): {bool(e_ok)}; activation distance to the "
        f"mean gold better: {bool(act_ok)}; δ to the mean gold not worse: {bool(d_ok)}; worst δ over its runs "
        f"{'n/a' if wb is None else f'{100 * wb:.1f}'} vs fine-tune's {'n/a' if wf is None else f'{100 * wf:.1f}'}: "
        f"{w_ok}; cost amortised at 100 requests {sum(rte) / len(rte) if rte else float('nan'):.3f} of retraining "
        f"(≤ 0.05): {c_ok}. **Met: {bool(e_ok and act_ok and d_ok and w_ok and c_ok)}.**",
    ]
    return "\n".join(lines + per_unit(units, best)) + "\n"


def per_unit(units: dict, best: str) -> list[str]:
    """Per unit: E* and the mean over each method's runs of E, activation distance and δ for the candidate, fine-tune,
    the held-out gold and doing nothing (what the paired tests above compare)."""
    names = [best, "finetune", "gold", ORIGINAL]
    head = " | ".join(f"{m} E / act. / δ" for m in names)
    lines = ["", "Per unit (E and δ in %, mean over the method's runs):", "", f"| unit | n | E* | {head} |"]
    lines.append("|---|---|---|" + "---|" * len(names))
    for (seed, scenario), by in sorted(units.items()):
        if best not in by:
            continue
        cells = []
        for m in names:
            e = unit_value(by.get(m, []), "expected_agreement", grid=False)[0] if m in by else None
            act = unit_value(by.get(m, []), "activation_distance_mean_gold_l2", grid=False)[0] if m in by else None
            d = unit_value(by.get(m, []), "delta_mean_gold", grid=False)[0] if m in by else None
            cells.append("n/a" if e is None else f"{100 * e:.2f} / {act:.4f} / {100 * d:.2f}")
        e_best = unit_value(by[best], "expected_agreement_best", grid=False)[0]
        lines.append(f"| {seed} {scenario} | {by[best][0]['n_forget']} | {100 * e_best:.2f} | {' | '.join(cells)} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--best", required=True)
    r.add_argument("--store", default=None)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--seeds", default="", help="a comma-separated part of the declared seeds (to split the run "
                   "over processes; the grid is the same)")  # fmt: skip
    c = sub.add_parser("select")
    c.add_argument("rows", type=Path)
    s = sub.add_parser("analyse")
    s.add_argument("rows", type=Path)
    s.add_argument("--best", required=True)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if a.command == "run":
        cmd_run(a)
    elif a.command == "select":
        from oblivio.experiments.rows import read_results

        best, table = select(read_results(a.rows))
        print("| candidate | " + " | ".join(f"E {s}" for s in SELECTION_SHAPES) + " | mean E | RTE_cpu amortised at "
              "100 (mean) | act. distance to mean gold (mean) |")  # fmt: skip
        print("|---|" + "---|" * (len(SELECTION_SHAPES) + 3))
        for name, es, mean, cost, act in sorted(table, key=lambda t: -t[2]):
            print(f"| {name} | " + " | ".join(f"{100 * e:.2f}" for e in es) + f" | {100 * mean:.3f} | {cost:.4f} | "
                  f"{act:.4f} |")  # fmt: skip
        print(f"\nCandidate by the rule: **{best}**")
    else:
        from oblivio.experiments.rows import read_results

        print(analyse(read_results(a.rows), a.best), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
