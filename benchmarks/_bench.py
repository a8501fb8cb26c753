"""Shared by the benchmark scripts: run ``oblivio bench NAME`` with the CPU preset, printing the command first."""

from __future__ import annotations

import shlex
import sys

from oblivio.cli import main


def command(benchmark: str, extra: list[str]) -> list[str]:
    """The ``oblivio`` arguments a script runs (CPU preset and ``results/NAME`` unless ``extra`` says otherwise)."""
    args = ["bench", benchmark]
    if "--preset" not in extra:
        args += ["--preset", "cpu"]
    if "--out" not in extra:
        args += ["--out", f"results/{benchmark}"]
    return args + extra


def run(benchmark: str) -> None:
    argv = command(benchmark, sys.argv[1:])
    print("reproduce with: oblivio " + shlex.join(argv), flush=True)
    sys.exit(main(argv))
