"""Rebuild committed report files (``docs/results/X.md`` / ``.html``) from their rows ``X.jsonl`` with today's table
code, keeping each report's title, its hand-written introduction and its set of tables.

Used in issue 23 after the paired comparisons moved onto the metric's grid: only the tables change (the p-values of
δ and sample agreement, the notes that say how they are computed). The provenance lines are recomputed from the rows.

Usage::

    python scripts/regenerate_reports.py docs/results/tmu-table1-full.md docs/results/tmu-figure3.md ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rebuild(md: Path) -> None:
    from oblivio.experiments.report import TABLES, build_tables, write_report

    rows_path = md.with_suffix(".jsonl")
    rows = [json.loads(x) for x in rows_path.read_text().splitlines() if x.strip()]
    text = md.read_text(encoding="utf-8").splitlines()
    title = text[0].removeprefix("# ").strip()
    head = []
    for line in text[1:]:
        if line.startswith("## "):
            break
        head.append(line)
    auto = ("Finished between", "Config ", "Dates unknown", "No finished runs")
    intro = [
        ln.rstrip()
        for ln in head
        if ln.strip() and not ln.startswith(auto) and " runs; oblivio " not in ln and not ln.startswith("1 runs;")
    ]
    # the tables the report had, in its order (matched by title)
    order = [ln.removeprefix("## ").strip() for ln in text if ln.startswith("## ")]
    found = {}
    for k in TABLES:
        for t in build_tables(rows, keys=[k]):
            if t.title in order:
                found[k] = order.index(t.title)
    keys = sorted(found, key=found.get)
    html = md.with_suffix(".html")
    write_report(rows, md.parent, title=title, tables=keys, intro=intro, plots=html.is_file(), stem=md.stem)
    if not html.is_file():
        print(f"{md}: no HTML beside it before; keeping the one written now")
    print(f"{md}: {len(rows)} rows, tables {', '.join(keys)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reports", nargs="+", type=Path)
    for md in p.parse_args(argv).reports:
        rebuild(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
