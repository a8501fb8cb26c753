"""``oblivio report RESULTS.jsonl``: tables (mean ± std over seeds) from a results file, as text, markdown, HTML."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_import_arg, help_text


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="tables and an HTML report from a results JSONL file", description=help_text(__doc__)
    )
    p.add_argument("results", help="results JSONL file written by 'oblivio bench' or the Runner")
    p.add_argument("--tables", help="comma-separated table keys (default: every table with data)")
    p.add_argument("--out", help="folder for report.md and report.html (default: beside the results file)")
    p.add_argument("--title", default=None, help="report title")
    p.add_argument("--no-plots", action="store_true", help="no figures in the HTML report")
    p.add_argument("--pdf", action="store_true", help="also print the HTML report to report.pdf (needs Chromium)")
    add_import_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments.report import write_report
    from ..experiments.runner import read_results
    from ..utils import check_output_dir

    path = Path(args.results)
    if not path.is_file():
        raise ValueError(f"results file {path} does not exist")
    check_output_dir(args.out or path.parent, option="--out", files=("report.md", "report.html"))
    rows = read_results(path)
    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    files = write_report(
        rows,
        args.out or path.parent,
        title=args.title or f"oblivio report: {path.name}",
        tables=tables,
        plots=not args.no_plots,
        pdf=args.pdf,
    )
    for t in files.tables:
        print(t.to_text() + "\n")
    print(
        f"report: {files.markdown}\n        {files.html}"
        + (f"\n        {files.html.with_suffix('.pdf')}" if args.pdf else "")
    )
    return 0
