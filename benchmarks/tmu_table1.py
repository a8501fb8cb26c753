"""TMU Table 1 (and Table 3) with its controls and statistics: per-class accuracy, δ, sample agreement and
activation distance against the gold model, over several seeds.

A thin wrapper around ``oblivio bench tmu-table1`` with the CPU preset. Extra arguments are passed through, e.g.::

    python benchmarks/tmu_table1.py --seeds 3 --workers 2
    python benchmarks/tmu_table1.py --ray-address local

The methods are the paper's (finetune, neggrad, random-label, bad-teacher, tmu) and the two controls of SPEC §6:
``tmu.random-control`` (TMU's aligned step with a random hard set of the predictor's size) and ``gold`` (a second
gold seed). Results (resumable JSONL), a markdown and a self-contained HTML report go to ``results/tmu-table1``
unless ``--out`` says otherwise.

``--publish RESULTS.jsonl`` instead copies finished rows into the repository: ``docs/results/tmu-table1.jsonl``
(the rows, so that ``oblivio report docs/results/tmu-table1.jsonl`` rebuilds every table from a fresh clone),
``docs/results/tmu-table1.md`` / ``.html`` and the figures as PNG. Several results files may be given (chunks of one
protocol); rows are merged by cell key. docs/benchmarks.md records the commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from _bench import run

DOCS_RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
TABLES = ("tmu-table1", "alignment-ci", "paired", "predictor-null", "tmu-table3", "summary")


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def publish(results: list[str], *, out: Path = DOCS_RESULTS, stem: str = "tmu-table1", intro: list[str] = ()) -> Path:
    """Merge the finished rows of ``results`` and write the rows, the report and its figures under ``out``."""
    from oblivio.experiments.report import build_figures, write_report
    from oblivio.experiments.runner import read_results

    rows: dict[str, dict] = {}
    for path in results:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no results file {path}")
        for r in read_results(path):
            rows[r["key"]] = r
    if not rows:
        raise ValueError(f"no finished rows in {results}")
    from oblivio.experiments.bench import TMU_TABLE1_METHODS

    order = {(m if isinstance(m, str) else m.get("label") or m["name"]): i for i, m in enumerate(TMU_TABLE1_METHODS)}
    ordered = sorted(rows.values(), key=lambda r: (r.get("forget_class") or 0, (r.get("seeds") or {}).get("train", 0),
                                                   order.get(r.get("method"), len(order))))
    out.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in ordered)
    _atomic_write(out / f"{stem}.jsonl", lines.encode("utf-8"))
    intro = list(intro) + [f"Rows: docs/results/{stem}.jsonl (rebuild: oblivio report docs/results/{stem}.jsonl)."]
    write_report(ordered, out, title="oblivio benchmark: tmu-table1 (multi-seed, with controls)", tables=TABLES,
                 intro=intro, plots=True, stem=stem)
    for i, (caption, png) in enumerate(build_figures(ordered, TABLES)):
        _atomic_write(out / f"{stem}-fig{i + 1}.png", png)
        print(f"figure {i + 1}: {caption}")
    print(f"{len(ordered)} rows -> {out / (stem + '.jsonl')}")
    return out / f"{stem}.jsonl"


if __name__ == "__main__":
    if "--publish" in sys.argv:
        p = argparse.ArgumentParser(description="copy finished Table-1 rows and their report into docs/results/")
        p.add_argument("--publish", nargs="+", required=True, metavar="RESULTS.jsonl")
        p.add_argument("--note", action="append", default=[], help="a line for the report's introduction")
        args = p.parse_args()
        publish(args.publish, intro=args.note)
    else:
        run("tmu-table1")
