"""Every published paired comparison of δ and sample agreement, recomputed on the metric's grid (issue 23).

δ and sample agreement are counts of forget images over ``|D_f|``. Before issue 23 the paired tests ran on float
differences, and the original model's forget accuracy is stored as float32, so equal counts became ±1e-7 "wins" that
the Wilcoxon test ranked. This script reads the committed rows under ``docs/results/`` and, for each comparison that
the docs publish (the method under test against each other method and the untouched original), computes the
Wilcoxon signed-rank p both ways: on floats (as published) and on the grid (counts; zero differences dropped,
``zero_method="wilcox"``). It writes one row per comparison (with provenance) and a markdown table.

Usage::

    python benchmarks/tmu_pvalues_grid.py --results docs/results --out docs/results/tmu-headroom-pvalues
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MEASURES = (("δ", "delta_forget", "lower"), ("sample agreement", "sample_agreement", "higher"))
BENCH_FILES = (
    # (label, file, methods under test)
    ("Table 1, 3,000 images, seeds 0-2", "tmu-table1.jsonl", ("tmu",)),
    ("Table 1 full, seeds 0-2", "tmu-table1-full.jsonl", ("tmu",)),
    ("Table 1 full, fresh seeds 200-202", "tmu-table1-full-fresh.jsonl", ("tmu",)),
    ("forget quality N=16", "forget-quality-n16.jsonl", ("tmu",)),
    ("forget quality N=8", "forget-quality-controls.jsonl", ("tmu",)),
    ("Figure 3", "tmu-figure3.jsonl", ("tmu",)),
    ("two-stage full", "two-stage-full.jsonl", ("two-stage[min]", "two-stage[max]")),
)


def _jsonl(path: Path) -> list[dict]:
    from oblivio.experiments.rows import read_results

    return read_results(path, only_ok=False)


def _both(a: list, b: list, ns: list, float_form: str = "raw") -> tuple:
    """(float comparison as the publishing script computed it, grid comparison) of paired values ``a``, ``b`` with
    denominators ``ns``. ``float_form``: how the script formed its float differences, since each form has its own
    float noise: ``"raw"`` (``a − b`` of fractions: the runner's reports), ``"scaled-each"`` (``100a − 100b``:
    ``tmu_aligned_select.py --summary``), ``"scaled-diff"`` (``100 (a − b)``: ``tmu_table1_pooled.py``)."""
    from oblivio.experiments.stats import paired_difference

    if float_form == "scaled-each":
        f = paired_difference([100 * x for x in a], [100 * y for y in b])
    elif float_form == "scaled-diff":
        f = paired_difference([100 * (x - y) for x, y in zip(a, b, strict=True)], [0.0] * len(a))
    else:
        f = paired_difference(a, b)
    return f, paired_difference(a, b, grid=ns)


def bench_comparisons(label: str, rows: list[dict], methods: tuple[str, ...]) -> list[dict]:
    """Runner rows: each method under test against every other method and the original (δ and agreement)."""
    from oblivio.experiments.stats import ORIGINAL_METHOD, original_rows, paired_values

    rows = [r for r in rows if r.get("status", "ok") == "ok"]
    every = [*rows, *original_rows(rows)]
    names = list(dict.fromkeys(r["method"] for r in every))
    out = []
    for a in methods:
        if a not in names:
            continue
        for b in names:
            if b == a:
                continue
            for mname, key, direction in MEASURES:
                _, va, vb, ns = paired_values(
                    every, a, b, lambda r, k=key: (r.get("metrics") or {}).get(k), with_n=True
                )
                keep = [i for i, (x, y) in enumerate(zip(va, vb, strict=True)) if x is not None and y is not None]
                if len(keep) < 2:
                    continue
                va, vb, ns = [va[i] for i in keep], [vb[i] for i in keep], [ns[i] for i in keep]
                f, g = _both(va, vb, ns)
                out.append(_row(label, a, "original" if b == ORIGINAL_METHOD else b, mname, direction, f, g))
    return out


def _select_units(rows: list[dict], original_acc: dict | None) -> dict:
    units: dict = {}
    for r in rows:
        u = (r["seed"], r["forget_class"])
        units.setdefault(u, {})[r["method"]] = {**r["metrics"], "n": r["count"]}
        orig = {"sample_agreement": r["original_sample_agreement"], "n": r["count"]}
        if original_acc is not None:
            orig["delta_forget"] = abs(original_acc[f"{u[0]}:{u[1]}"] - r["metrics"]["gold_acc_forget"])
        units[u]["original"] = orig
    return units


def unit_comparisons(label: str, units: dict, pairs: list[tuple[str, str]], float_form: str) -> list[dict]:
    out = []
    for a, b in pairs:
        for mname, key, direction in MEASURES:
            us = [m for m in units.values() if key in m.get(a, {}) and key in m.get(b, {})]
            if len(us) < 2:
                continue
            f, g = _both([m[a][key] for m in us], [m[b][key] for m in us], [m[a]["n"] for m in us], float_form)
            out.append(_row(label, a, b, mname, direction, f, g))
    return out


def _row(label, a, b, measure, direction, f, g) -> dict:
    return {
        "rows": label,
        "a": a,
        "b": b,
        "measure": measure,
        "n": g.n,
        "zeros_on_grid": g.zeros,
        "zeros_as_floats": f.zeros,
        "mean_diff_points": 100 * g.mean_diff,
        "p_float": f.p_value,
        "p_grid": g.p_value,
        "verdict_float": f.verdict(direction),
        "verdict_grid": g.verdict(direction),
    }


def collect(results: Path) -> list[dict]:
    out = []
    for label, name, methods in BENCH_FILES:
        path = results / name
        if path.is_file():
            out += bench_comparisons(label, _jsonl(path), methods)
    # the issue-15 selection rows (their own layout) and the pooled groups
    sel = results / "tmu-aligned-select.jsonl"
    if sel.is_file():
        units = _select_units(_jsonl(sel), None)
        cands = sorted({m for u in units.values() for m in u} - {"finetune", "original"})
        out += unit_comparisons(
            "selection, 3,000 images, seeds 100-101",
            units,
            [(c, "finetune") for c in cands] + [(c, "original") for c in cands],
            "scaled-each",
        )
    repl = results / "tmu-table1-full-replication.jsonl"
    if repl.is_file():
        acc = json.loads((results / "tmu-table1-full-replication-original.json").read_text())
        rows = _jsonl(repl)
        thr = results / "tmu-threshold-explore.jsonl"
        if thr.is_file():
            rows += _jsonl(thr)
        units = _select_units(rows, acc)
        out += unit_comparisons(
            "Table 1 full replication, seeds 100-101",
            units,
            [(a, b) for a in ("tmu", "tmu.threshold") for b in ("finetune", "original", "tmu.random-control")],
            "scaled-each",
        )
    sys.path.insert(0, str(Path(__file__).parent))
    import tmu_table1_pooled as pooled

    groups = pooled.load(results)
    if groups:
        every = pooled._pooled(groups)
        for lab, units in [*groups.items(), (f"all {len(every)} pooled", every)]:
            for u in units.values():
                for m in u.values():
                    m.setdefault("n", m.get("n_forget") or 100)
            pairs = [("tmu", b) for b in ("finetune", "original", "finetune.1ep", "tmu.random-control", "gold")]
            pairs += [(c, b) for c in ("ceiling.count", "ceiling.labels") for b in ("tmu", "finetune", "gold")]
            out += unit_comparisons(f"Table 1 full: {lab}", units, pairs, "scaled-diff")
    return out


def markdown(rows: list[dict]) -> str:
    changed = [r for r in rows if f"{r['p_float']:.2g}" != f"{r['p_grid']:.2g}"]
    flipped = [r for r in rows if r["verdict_float"] != r["verdict_grid"]]
    lines = [
        "# Paired p-values of δ and sample agreement, on floats (as published) and on the grid (issue 23)\n",
        f"{len(rows)} comparisons from the committed rows; p moves (at 2 significant digits) in {len(changed)}, "
        f"the verdict (p < 0.05 and the sign) changes in {len(flipped)}. Two-sided Wilcoxon signed-rank, zero "
        "differences dropped (`zero_method='wilcox'`); 'zeros' = pairs whose difference is exactly zero. Rows: "
        "tmu-headroom-pvalues.jsonl (built by `python benchmarks/tmu_pvalues_grid.py`).\n",
        "| rows | A | B | measure | n | zeros (grid / floats) | mean A − B (points) | p floats | p grid | verdict "
        "floats → grid |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        v = (
            r["verdict_float"]
            if r["verdict_float"] == r["verdict_grid"]
            else (f"**{r['verdict_float']} → {r['verdict_grid']}**")
        )
        lines.append(
            f"| {r['rows']} | {r['a']} | {r['b']} | {r['measure']} | {r['n']} | {r['zeros_on_grid']} / "
            f"{r['zeros_as_floats']} | {r['mean_diff_points']:+.2f} | {r['p_float']:.3g} | {r['p_grid']:.3g} | {v} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default="docs/results")
    p.add_argument("--out", default=None, help="stem: writes STEM.jsonl and STEM.md (default: print the table)")
    a = p.parse_args(argv)
    rows = collect(Path(a.results))
    if a.out is None:
        print(markdown(rows), end="")
        return 0
    from oblivio.experiments.rows import provenance

    prov = provenance()
    stem = Path(a.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    from oblivio.utils import atomic_write_text

    atomic_write_text(
        stem.with_suffix(".jsonl"),
        "".join(json.dumps({**r, "provenance": prov}, sort_keys=True) + "\n" for r in rows),
    )
    atomic_write_text(stem.with_suffix(".md"), markdown(rows))
    print(f"{len(rows)} comparisons -> {stem}.jsonl / .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
