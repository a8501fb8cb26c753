"""TMU vs fine-tune vs doing nothing, per seed group and pooled over every full-size Table 1 unit (issue 15).

Reads the committed rows of the three full-size runs (CPU preset, 20,000 images, ``class-subset:k:100``):

* ``tmu-table1-full.jsonl``: seeds 0-2, ``oblivio bench tmu-table1`` rows;
* ``tmu-table1-full-replication.jsonl`` (+ ``-original.json``, the original's forget accuracy per unit): seeds
  100-101, ``benchmarks/tmu_aligned_select.py`` rows;
* ``tmu-table1-full-fresh.jsonl``: seeds 200-202, ``oblivio bench tmu-table1`` rows (declared in
  ``tmu-table1-fresh-plan.md`` before it ran);

and, optionally, ``tmu-ceiling.jsonl`` (``benchmarks/tmu_ceiling.py``: TMU's aligned step after an oracle
decision). For each group and for all units pooled it prints TMU − fine-tune and TMU − original on δ, sample
agreement and activation distance (mean, 95 % bootstrap CI, Wilcoxon signed-rank p), the spread of the paired
differences, and the smallest difference that many units could detect (80 % power, two-sided 5 %:
``2.8 · sd / √n``, the normal approximation) beside the number of units the observed mean would need.

Usage::

    python benchmarks/tmu_table1_pooled.py --results docs/results > docs/results/tmu-table1-pooled.md
    python benchmarks/tmu_table1_pooled.py --method ceiling.labels --others tmu,finetune,gold
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

MEASURES = (
    ("δ (points)", "delta_forget", 100.0, 1, "lower"),
    ("sample agreement (points)", "sample_agreement", 100.0, 1, "higher"),
    ("activation distance L2", "activation_distance_l2", 1.0, 3, "lower"),
)
GRID_KEYS = ("delta_forget", "sample_agreement")
"""Counts of D_f images over |D_f|: paired on that grid (issue 23), so equal counts are ties."""
GROUPS = (
    ("seeds 0-2", "tmu-table1-full.jsonl"),
    ("seeds 100-101", "tmu-table1-full-replication.jsonl"),
    ("seeds 200-202 (fresh)", "tmu-table1-full-fresh.jsonl"),
)


def _jsonl(path: Path) -> list[dict]:
    from oblivio.experiments.rows import read_results

    return read_results(path, only_ok=False)  # the selection script's rows carry no status


def _bench_units(rows: list[dict]) -> dict[tuple, dict[str, dict]]:
    """``{(train seed, class): {method: metrics}}`` from ``oblivio bench`` rows, with the original's measures
    (``stats.original_rows``: the "do nothing" pseudo-rows the bench report pairs with)."""
    from oblivio.experiments.stats import original_rows, row_n

    units: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for r in [*rows, *({**o, "method": "original"} for o in original_rows(rows))]:
        if r.get("status", "ok") == "ok":
            units[(r["seeds"]["train"], r["forget_class"])][r["method"]] = {**r["metrics"], "n_forget": row_n(r)}
    return units


def _select_units(rows: list[dict], original_acc: dict[str, float]) -> dict[tuple, dict[str, dict]]:
    """The same from ``tmu_aligned_select.py`` rows (original measures at the row's top level)."""
    from oblivio.experiments.stats import row_n

    units: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        u = (r["seed"], r["forget_class"])
        m = {**r["metrics"], "n_forget": row_n(r)}
        units[u][r["method"]] = m
        units[u]["original"] = {
            "delta_forget": abs(original_acc[f"{u[0]}:{u[1]}"] - m["gold_acc_forget"]),
            "sample_agreement": r["original_sample_agreement"],
            "activation_distance_l2": r["original_activation_distance_l2"],
            "n_forget": row_n(r),
        }
    return units


def load(results: Path) -> dict[str, dict[tuple, dict[str, dict]]]:
    """The units of each group whose files exist, keyed by the group's label."""
    out = {}
    for label, name in GROUPS:
        path = results / name
        if not path.is_file():
            continue
        rows = _jsonl(path)
        if "seeds" in rows[0]:
            out[label] = _bench_units(rows)
        else:
            original = json.loads((results / name.replace(".jsonl", "-original.json")).read_text())
            out[label] = _select_units(rows, original)
    ceiling = results / "tmu-ceiling.jsonl"
    if ceiling.is_file():
        for r in _jsonl(ceiling):
            u = (r["seeds"]["train"], r["forget_class"])
            for units in out.values():
                if u in units:
                    units[u][r["method"]] = {**r["metrics"], "n_forget": r.get("count")}
    return out


def _pooled(groups: dict[str, dict[tuple, dict[str, dict]]]) -> dict[tuple, dict[str, dict]]:
    return {u: m for units in groups.values() for u, m in units.items()}


def _paired(units: dict[tuple, dict[str, dict]], a: str, b: str, key: str, scale: float) -> list[float]:
    """``scale · (a − b)`` per unit; for δ and agreement from the counts of images (exactly 0 for equal counts)."""
    from oblivio.experiments.stats import on_grid

    out = []
    for m in units.values():
        if a not in m or b not in m or m[a].get(key) is None or m[b].get(key) is None:
            continue
        n = m[a].get("n_forget")
        if key in GRID_KEYS and n:  # rows without |D_f| (hand-made test rows): floats
            out.append(scale * (on_grid(m[a][key], n) - on_grid(m[b][key], n)) / n)
        else:
            out.append(scale * (m[a][key] - m[b][key]))
    return out


def table(
    groups: dict[str, dict[tuple, dict[str, dict]]], a: str = "tmu", others: tuple[str, ...] = ("finetune", "original")
) -> str:
    from oblivio.experiments.stats import paired_difference

    pooled = _pooled(groups)
    lines = [
        "| units | comparison | measure | n | mean diff [95% CI] | p | sd of diffs | detectable at n (80%) "
        "| n the mean needs | direction |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, units in [*groups.items(), (f"all {len(pooled)} pooled", pooled)]:
        for b in others:
            for name, key, scale, digits, direction in MEASURES:
                d = _paired(units, a, b, key, scale)
                if len(d) < 2:
                    continue
                pc = paired_difference(d, [0.0] * len(d))
                sd = statistics.stdev(d)
                mdd = 2.8 * sd / math.sqrt(len(d))
                need = (2.8 * sd / abs(pc.mean_diff)) ** 2 if pc.mean_diff else math.inf
                need_s = f"{math.ceil(need)}" if need <= 10_000 else "> 10,000"
                good = (pc.mean_diff < 0) == (direction == "lower") and pc.mean_diff != 0
                way = "toward gold" if good else "none (mean 0)" if pc.mean_diff == 0 else "away from gold"
                f = f"{{:+.{digits}f}}"
                lines.append(
                    f"| {label} | {a} − {b} | {name} | {len(d)} | {f.format(pc.mean_diff)} "
                    f"[{f.format(pc.low)}, {f.format(pc.high)}] | {pc.p_value:.3g} | {sd:.{digits + 1}f} | "
                    f"{mdd:.{digits + 1}f} | {need_s} | {way} |"
                )
    return "\n".join(lines) + "\n"


def means(groups: dict[str, dict[tuple, dict[str, dict]]]) -> str:
    """Mean of each measure per method over the pooled units that have it."""
    from oblivio.experiments.stats import mean_ci

    pooled = _pooled(groups)
    methods = list(dict.fromkeys(m for u in pooled.values() for m in u))
    lines = ["| method | units | " + " | ".join(n for n, *_ in MEASURES) + " |", "|---|---|---|---|---|"]
    for meth in methods:
        cells, n = [], 0
        for _, key, scale, digits, _ in MEASURES:
            v = [scale * u[meth][key] for u in pooled.values() if meth in u and u[meth].get(key) is not None]
            n = max(n, len(v))
            cells.append(mean_ci(v).format(digits=digits) if v else "")
        lines.append(f"| {meth} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default="docs/results", help="folder of the committed rows")
    p.add_argument("--method", default="tmu", help="the method compared (e.g. ceiling.labels)")
    p.add_argument("--others", default="finetune,original", help="comma-separated methods it is paired with")
    a = p.parse_args(argv)
    groups = load(Path(a.results))
    if not groups:
        raise SystemExit(f"no full-size Table 1 rows under {a.results} (expected {', '.join(n for _, n in GROUPS)})")
    print("# TMU Table 1 at full size: paired differences per seed group and pooled (issue 15)\n")
    print(
        f"Built by `python benchmarks/tmu_table1_pooled.py --method {a.method} --others {a.others}` from the rows in "
        f"{a.results} ({', '.join(n for _, n in GROUPS)}, tmu-ceiling.jsonl where present). Differences are "
        f"{a.method} minus the other; δ and agreement differences are computed from counts of D_f images (issue 23: "
        "equal counts are ties); p is the Wilcoxon signed-rank test's (zero differences dropped, zero_method "
        "'wilcox'); 'detectable' is 2.8 · sd / √n (80 % power, two-sided 5 %).\n"
    )
    print("## Paired differences, per seed group and pooled\n")
    print(table(groups, a.method, tuple(a.others.split(","))))
    print("\n## Means over all pooled units (95% bootstrap CI)\n")
    print(means(groups))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
