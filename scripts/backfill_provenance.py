"""Give every committed result row a commit, a dirty flag and a time, saying plainly where one was never recorded.

RULES: every row under ``docs/results/*.jsonl`` carries commit, dirty flag and time. Rows written before the runner
recorded them (the issue-15 scripts' rows, and runner rows from before ``git_dirty`` existed) lack some. This script
never invents a value: a field that was not recorded becomes the text ``"unknown (recorded before provenance)"``, and
the row gains ``provenance.backfill`` with what *is* known from git: the commit that first added the row to its file
(``first_committed_in``, with that commit's date), and the run commit the docs name for the file where they name one
(``documented_run_commit``, quoted with its source). Recorded fields are never changed. Idempotent.

Usage::

    python scripts/backfill_provenance.py docs/results/*.jsonl          # rewrite in place (atomically)
    python scripts/backfill_provenance.py --check docs/results/*.jsonl  # exit 1 if a row lacks a field
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

UNKNOWN = "unknown (recorded before provenance)"
TIME_KEYS = ("finished_at", "started_at", "recorded_at")
DOCUMENTED = {
    # file -> (commit, where the docs say so); only what docs/benchmarks.md states for the run
    "tmu-table1-full-replication.jsonl": ("f1a789d", "docs/benchmarks.md: 'at commit f1a789d' in the command block"),
    "tmu-ceiling.jsonl": ("e55be90", "docs/benchmarks.md: 'at commit e55be90' in the command block"),
    "tmu-aligned-select.jsonl": (
        "54e2ad3",
        "docs/benchmarks.md: 'TMU code of commit 54e2ad3, run from a snapshot of it'",
    ),
}


def complete(row: dict) -> bool:
    """Whether ``row`` has a commit, a dirty flag and a time (recorded or explicitly unknown)."""
    p = row.get("provenance") or {}
    return (
        p.get("git_commit") is not None
        and p.get("git_dirty") is not None
        and any(p.get(k) is not None for k in TIME_KEYS)
    )


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def first_commits(path: Path) -> dict[str, tuple[str, str]]:
    """``{row key: (commit, date)}``: the oldest commit whose version of ``path`` holds a row with that key."""
    root = Path(_git("rev-parse", "--show-toplevel", cwd=path.parent).strip())
    rel = path.resolve().relative_to(root)
    out: dict[str, tuple[str, str]] = {}
    log = _git("log", "--reverse", "--format=%H %cI", "--", str(rel), cwd=root).split("\n")
    for line in filter(None, log):
        commit, date = line.split(" ", 1)
        try:
            text = _git("show", f"{commit}:{rel}", cwd=root)
        except subprocess.CalledProcessError:  # the commit deleted the file
            continue
        for ln in text.splitlines():
            try:
                key = _row_key(json.loads(ln))
            except (json.JSONDecodeError, TypeError):
                continue
            out.setdefault(key, (commit[:12], date))
    return out


def _row_key(row: dict) -> str:
    return str(row.get("key")) + "|" + str(row.get("method"))


def backfill(path: Path) -> tuple[list[str], int]:
    """The file's lines with provenance completed, and how many rows changed."""
    lines = path.read_text().splitlines()
    firsts: dict | None = None
    changed = 0
    out = []
    for ln in lines:
        if not ln.strip():
            continue
        row = json.loads(ln)
        if complete(row):
            out.append(ln)
            continue
        if firsts is None:
            firsts = first_commits(path)
        p = dict(row.get("provenance") or {})
        filled = [k for k in ("git_commit", "git_dirty") if p.get(k) is None]
        for k in filled:
            p[k] = UNKNOWN
        if not any(p.get(k) is not None for k in TIME_KEYS):
            p["recorded_at"] = UNKNOWN
            filled.append("recorded_at")
        first = firsts.get(_row_key(row))
        info = {"filled": filled, "by": "scripts/backfill_provenance.py (issue 23)"}
        if first is not None:
            info["first_committed_in"] = {"commit": first[0], "date": first[1]}
        if path.name in DOCUMENTED:
            commit, source = DOCUMENTED[path.name]
            info["documented_run_commit"] = {"commit": commit, "source": source}
        p["backfill"] = info
        row["provenance"] = p
        out.append(json.dumps(row, sort_keys=True, allow_nan=False))
        changed += 1
    return out, changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--check", action="store_true", help="only report rows that lack a field")
    a = ap.parse_args(argv)
    bad = 0
    for path in a.files:
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        missing = sum(not complete(r) for r in rows)
        if a.check:
            if missing:
                print(f"{path}: {missing} of {len(rows)} rows lack commit, dirty flag or time")
            bad += missing
            continue
        if not missing:
            continue
        lines, changed = backfill(path)
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        from oblivio.utils import atomic_write_text

        atomic_write_text(path, "\n".join(lines) + "\n")
        print(f"{path}: {changed} rows completed")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
