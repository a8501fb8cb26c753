"""Copy a 004 study's results into docs/results: the summary and shift rows (``X.jsonl``, every row with commit,
dirty flag and time), the report (``X.md``) and the per-cell rows trimmed to what rescoring needs
(``X-cells.jsonl.gz``: seeds, scores, accuracies, δ, agreement, cost, provenance commit / dirty / time).

Usage:
    python scripts/study004_export.py results/study004-tiny docs/results/study004-tiny
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path

KEEP_METRICS = (
    "acc_forget",
    "acc_retain",
    "acc_test",
    "gold_acc_forget",
    "gold_acc_retain",
    "gold_acc_test",
    "delta_forget",
    "sample_agreement",
    "original_acc_forget",
    "original_sample_agreement",
)


def main(src: str, dest: str) -> None:
    src_dir, dest_stem = Path(src), Path(dest)
    rows = [
        json.loads(line)
        for name in ("study004-summary.jsonl", "study004-shift.jsonl")
        for line in (src_dir / name).read_text().splitlines()
        if line.strip()
    ]
    dest_stem.with_suffix(".jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    shutil.copyfile(src_dir / "report.md", dest_stem.with_suffix(".md"))
    with gzip.open(f"{dest_stem}-cells.jsonl.gz", "wt") as fh:
        for line in (src_dir / "results.jsonl").read_text().splitlines():
            r = json.loads(line)
            if r.get("status") != "ok":
                continue
            p = r["provenance"]
            fh.write(
                json.dumps(
                    {
                        "scenario": r["scenario"],
                        "method": r["method"],
                        "seeds": r["seeds"],
                        "n_forget": r["n_forget"],
                        "scores": r.get("scores"),
                        "metrics": {k: r["metrics"].get(k) for k in KEEP_METRICS},
                        "cost": {k: r["cost"].get(k) for k in ("method_cpu_seconds", "gold_train_cpu_seconds")},
                        "git_commit": p.get("git_commit"),
                        "git_dirty": p.get("git_dirty"),
                        "time": p.get("finished_at"),
                        "wall_seconds": p.get("wall_seconds"),
                    },
                    sort_keys=True,
                )
                + "\n"
            )
    print(f"{len(rows)} rows -> {dest_stem.with_suffix('.jsonl')}; cells -> {dest_stem}-cells.jsonl.gz")


if __name__ == "__main__":
    main(*sys.argv[1:3])
