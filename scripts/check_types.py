"""Type check src/oblivio with mypy and hold every module to its listed error count (issue 25).

mypy runs once over the package (its configuration is ``[tool.mypy]`` in pyproject.toml). Every module must be
free of errors except the ones listed in ``scripts/mypy_pending.txt``, each with the number of errors it has today.
The check fails when

* a module that is not listed has an error (the public API can never be listed: ``oblivio/__init__``, ``api``,
  ``methods``, ``metrics``, ``ledger``, ``scenarios``),
* a listed module has more errors than its count, or
* a listed module has fewer (lower the count, or remove the line at 0: the list only shrinks).

Run by ``make lint`` (so by ``make test`` and CI) and by the pre-commit hook::

    python scripts/check_types.py            # prints what failed, exit 1; exit 0 when clean
    python scripts/check_types.py --counts   # the current per-module counts, in the list's format
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PENDING = ROOT / "scripts" / "mypy_pending.txt"
PUBLIC_API = (
    "src/oblivio/__init__.py",
    "src/oblivio/api.py",
    "src/oblivio/methods/",
    "src/oblivio/metrics/",
    "src/oblivio/ledger/",
    "src/oblivio/scenarios/",
)
"""Paths (files, or folders ending in ``/``) that must type-check cleanly: never listed as pending."""

_ERROR = re.compile(r"^(?P<path>[^:\s]+\.py):\d+(?::\d+)?: error: ")


def read_pending(path: Path = PENDING) -> dict[str, int]:
    """``{module path: allowed error count}`` from the list (``path count`` per line, ``#`` comments)."""
    out: dict[str, int] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise SystemExit(f"{path}:{n}: expected 'src/oblivio/<module>.py <error count>', got {line!r}")
        out[parts[0]] = int(parts[1])
    return out


def error_counts(mypy_output: str) -> Counter[str]:
    """Errors per file in mypy's output (notes are not errors)."""
    return Counter(m["path"] for m in map(_ERROR.match, mypy_output.splitlines()) if m)


def judge(counts: Counter[str], pending: dict[str, int]) -> list[str]:
    """The problems, one line each (empty when the check passes)."""
    problems = []
    for path in sorted(pending):
        if path.startswith(PUBLIC_API):
            problems.append(f"{path} is public API and must type-check cleanly: remove it from {PENDING.name}")
    for path, n in sorted(counts.items()):
        if path not in pending:
            problems.append(f"{path}: {n} type error(s) in a module that must be clean (see mypy's output above)")
        elif n > pending[path]:
            problems.append(f"{path}: {n} type errors, more than the {pending[path]} listed: fix the new ones")
    for path, allowed in sorted(pending.items()):
        n = counts.get(path, 0)
        if n < allowed:
            fix = "remove its line" if n == 0 else f"lower its count to {n}"
            problems.append(f"{path}: {n} type error(s), fewer than the {allowed} listed: {fix} in {PENDING.name}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", action="store_true", help="print the current per-module error counts")
    args = parser.parse_args(argv)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if proc.returncode not in (0, 1) or proc.stderr.strip():  # 2: mypy itself failed (configuration, crash)
        sys.stderr.write(proc.stdout + proc.stderr)
        print(f"mypy failed to run (exit {proc.returncode})", file=sys.stderr)
        return 2
    counts = error_counts(proc.stdout)
    if args.counts:
        for path, n in sorted(counts.items()):
            print(f"{path} {n}")
        return 0
    pending = read_pending()
    problems = judge(counts, pending)
    listed = sum(counts.get(p, 0) for p in pending)
    if problems:
        sys.stdout.write(proc.stdout)
        print("\n".join(["", "type check failed:", *problems]))
        return 1
    print(
        f"mypy: no errors outside the pending list; {listed} error(s) in the {len(pending)} pending module(s) of "
        f"{PENDING.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
