"""Results JSONL -> tables shaped like the papers' tables (mean ± std over seeds), markdown and a self-contained HTML.

Every table is computed from result rows (see :mod:`oblivio.experiments.runner`), grouped, and shown as
``mean ± std`` where ``std`` is the sample standard deviation (``ddof=1``) over the runs of a group; a value
without ``±`` comes from a single run. Accuracies are shown in percent.

This module assembles the tables (:data:`TABLES`, :func:`build_tables`) into markdown and HTML documents with
figures (:func:`write_report`) and re-exports the builders, which live by family: :mod:`.table` (numbers, the
:class:`Table`, row helpers), :mod:`.tmu_tables`, :mod:`.two_stage_tables` and :mod:`.summary_tables`.

Tables:

* :func:`tmu_table1`: per forget class, the gold model's ``ACC_test`` / ``ACC_Df`` and each method's, with the
  mean over classes and the alignment gap ``δ = |ACC_Df(M_u) − ACC_Df(M_g)|`` (TMU Table 1).
* :func:`activation_distance_table`: L2 activation distance to gold per class and method (TMU Table 3).
* :func:`label_accuracy_table` / :func:`label_accuracy_by_size_table`: TMU's generalization-label predictor
  accuracy per feature set (Table 4) and against ``|D_f|`` (Figure 3), and :func:`predictor_null_table`, that
  accuracy against the fair null.
* :func:`two_stage_accuracy_table`, :func:`saving_point_table`, :func:`tta_mislabel_table`,
  :func:`neutralisation_table`: the two-stage paper's Tables 2-5.
* :func:`summary_table`: one row per method, the headline metrics with the gold model's value beside.
* :func:`forget_quality_table`: NeurIPS forget quality and final score per method.
* :func:`alignment_ci_table`, :func:`paired_comparison_table`: alignment with gold per method with bootstrap CIs,
  and one method against each other, paired.

Example:
    >>> rows = [{"method": "ft", "forget_class": 0, "seeds": {"train": s, "gold": s, "request": s},
    ...          "metrics": {"acc_test": a, "acc_forget": 0.5, "delta_forget": 0.1,
    ...                      "gold_acc_test": 0.9, "gold_acc_forget": 0.6}} for s, a in ((0, 0.8), (1, 0.9))]
    >>> print(tmu_table1(rows).to_markdown().splitlines()[2])
    | 0 | 90.0 ± 0.0 | 60.0 ± 0.0 | 85.0 ± 7.1 | 50.0 ± 0.0 |
"""

from __future__ import annotations

import base64
import html
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .gold_tables import gold_distribution_table
from .publish import export_pdf, write_report_file
from .summary_tables import (
    SUMMARY_METRICS,
    alignment_ci_table,
    forget_quality_table,
    paired_comparison_table,
    summary_table,
)
from .table import (
    CI_NOTE,
    GOLD_REFERENCE,
    GOLD_SEED,
    STD_NOTE,
    TEXT_WIDTH,
    Table,
    _by_class,
    _m,
    fmt_mean_std,
    mean_std,
)
from .tmu_tables import (
    _label_accuracy_entries,
    activation_distance_table,
    label_accuracy_by_size_table,
    label_accuracy_table,
    predictor_null_table,
    tmu_table1,
)
from .two_stage_tables import (
    neutralisation_table,
    saving_point_table,
    tta_mislabel_table,
    two_stage_accuracy_table,
    two_stage_info,
)

log = logging.getLogger("oblivio.report")


TABLES: dict[str, Callable[[Sequence[dict]], Table]] = {
    "tmu-table1": tmu_table1,
    "tmu-table3": activation_distance_table,
    "tmu-table4": label_accuracy_table,
    "tmu-figure3": label_accuracy_by_size_table,
    "two-stage-table2": two_stage_accuracy_table,
    "two-stage-table3": saving_point_table,
    "two-stage-table4": tta_mislabel_table,
    "two-stage-table5": neutralisation_table,
    "forget-quality": forget_quality_table,
    "summary": summary_table,
    "alignment-ci": alignment_ci_table,
    "paired": paired_comparison_table,
    "predictor-null": predictor_null_table,
    "gold-distribution": gold_distribution_table,
}
"""Every table builder by key."""


def build_tables(rows: Sequence[dict], *, keys: Sequence[str] | None = None) -> list[Table]:
    """The non-empty tables among ``keys`` (default: all) computed from ``rows`` (only ``status == "ok"`` rows)."""
    rows = [r for r in rows if r.get("status", "ok") == "ok"]
    out = []
    for k in keys or list(TABLES):
        if k not in TABLES:
            raise KeyError(f"unknown table {k!r}; valid: {', '.join(TABLES)}")
        t = TABLES[k](rows)
        if t:
            if any(c == "n/a" for r in t.rows for c in r) and NA_NOTE not in t.notes:
                t.notes.append(NA_NOTE)  # only under tables that show n/a
            out.append(_name_golds(t))
    return out


NA_NOTE = "n/a: not computable from these rows (the runs did not record this measure)."


def _name_golds(table: Table) -> Table:
    """Show the method "gold" (a second gold model) as ``GOLD_SEED`` in cells, headers and notes, so that it is
    never confused with the gold reference (every ``gold_*`` value and ``GOLD_REFERENCE`` column)."""

    def header(c: str) -> str:
        if c == "gold" or (c.startswith("gold ") and not c.startswith(GOLD_REFERENCE)):
            return GOLD_SEED + c[len("gold") :]
        return c

    table.columns = [header(str(c)) for c in table.columns]
    table.rows = [[GOLD_SEED if c == "gold" else c for c in r] for r in table.rows]
    table.notes = [n.replace("'gold'", f"'{GOLD_SEED}'") for n in table.notes]
    return table


# ---------------------------------------------------------------------------------------------- documents
def to_markdown(tables: Sequence[Table], *, title: str, intro: Sequence[str] = ()) -> str:
    parts = [f"# {title}", ""] + [f"{line}  " for line in intro] + [""]
    for t in tables:
        parts += [f"## {t.title}", "", t.to_markdown(), ""] + [f"_{n}_  " for n in t.notes] + [""]
    return "\n".join(parts)


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;color:#222;
max-width:80rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
.table-wrap{overflow-x:auto;max-width:100%}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}td{white-space:nowrap}
th{background:#f3f3f3;vertical-align:bottom}td.t,th.t{text-align:left}
tbody tr:nth-child(even){background:#fafafa}.cont{font-size:.8rem;color:#555;margin:.8rem 0 0}
.note{font-size:.8rem;color:#555;margin:.2rem 0}.meta{font-size:.8rem;color:#555}
figure{margin:1rem 0}figcaption{font-size:.85rem;color:#444}img{max-width:100%;height:auto}
@page{size:A4 landscape;margin:12mm}
@media print{body{margin:0;max-width:none;font-size:9pt}table{font-size:7.5pt}.table-wrap{overflow:visible}
h2{break-after:avoid}tr,figure,.note{break-inside:avoid}thead{display:table-header-group}
section{break-inside:auto}th{background:#eee}}"""
"""Screen: tables in column blocks that fit a 1280 px window (Table.to_html), headers wrapping, cells on one line.
Print: A4 landscape at a smaller table font, so the same blocks fit the page; rows and figures are not split."""


def to_html(
    tables: Sequence[Table], *, title: str, intro: Sequence[str] = (), figures: Sequence[tuple[str, bytes]] = ()
) -> str:
    """A self-contained HTML page: inline CSS, figures embedded as base64 PNG, every text escaped.

    Args:
        tables: the tables.
        title: page title.
        intro: lines shown under the title (command, provenance...).
        figures: ``(caption, png_bytes)`` pairs.
    """
    e = html.escape
    figs = "".join(
        f'<figure><img alt="{e(cap)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
        f"<figcaption>{e(cap)}</figcaption></figure>"
        for cap, png in figures
    )
    intro_html = "".join(f'<p class="meta">{e(line)}</p>' for line in intro)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body><h1>{e(title)}</h1>{intro_html}"
        + "".join(t.to_html() for t in tables)
        + figs
        + "</body></html>\n"
    )


def provenance_lines(rows: Sequence[dict]) -> list[str]:
    """A few lines on where the rows come from (versions, commits, hosts, dates, config hashes)."""
    prov = [r.get("provenance") or {} for r in rows]
    if not prov:
        return ["No finished runs."]

    def uniq(key: str) -> str:
        vals = sorted({str(p.get(key)) for p in prov if p.get(key) is not None})
        return ", ".join(vals[:5]) + (f" (+{len(vals) - 5} more)" if len(vals) > 5 else "") if vals else "unknown"

    dates = sorted(p["finished_at"] for p in prov if p.get("finished_at"))
    configs = {p.get("config_hash"): p.get("config") for p in prov if p.get("config_hash")}
    lines = [
        f"{len(rows)} runs; oblivio {uniq('oblivio_version')}; git commit {uniq('git_commit')}; "
        f"hosts {uniq('host')}; backends {uniq('backend')}; devices {uniq('device')}.",
        f"Finished between {dates[0]} and {dates[-1]}." if dates else "Dates unknown.",
    ]
    for h, c in configs.items():
        if isinstance(c, dict):
            rec = c.get("recipe") or {}
            lines.append(
                f"Config {h}: dataset {c.get('dataset')} (train size {c.get('train_size')}), model "
                f"{c.get('model')} {c.get('model_options')}, recipe {rec.get('name')} ({rec.get('epochs')} epochs)."
            )
    return lines


def build_figures(rows: Sequence[dict], *, keys: Sequence[str] | None = None) -> list[tuple[str, bytes]]:
    """PNG figures for the tables in ``keys`` that have data (needs ``pip install oblivio[plot]``)."""
    from . import plots

    # legends name the second gold model as the tables do (GOLD_SEED), never plain "gold"
    rows = [
        {**r, "method": GOLD_SEED} if r.get("method") == "gold" else r for r in rows if r.get("status", "ok") == "ok"
    ]
    keys = list(keys or TABLES)
    figs = []
    if "tmu-table1" in keys and _by_class(rows):
        figs.append(("δ per forget class and method (mean ± std over seeds)", plots.delta_by_class(rows)))
    if "tmu-table3" in keys and any(_m(r, "activation_distance_l2") is not None for r in rows) and _by_class(rows):
        figs.append(
            (
                f"Activation distance to the {GOLD_REFERENCE} per forget class",
                plots.metric_by_class(rows, "activation_distance_l2", ylabel="L2 activation distance"),
            )
        )
    size_entries = [e for e in _label_accuracy_entries(rows) if not e[0].endswith("(refit)")]
    if "tmu-figure3" in keys and len({int(e[2].get("n_forget") or 0) for e in size_entries}) > 1:  # a line
        figs.append(("Label accuracy vs |D_f|", plots.label_accuracy_vs_size(size_entries)))
    if "two-stage-table5" in keys and any(two_stage_info(r).get("neutralisation_epochs") is not None for r in rows):
        figs.append(("Neutralisation epochs vs forget ratio", plots.neutralisation_vs_ratio(rows)))
    return figs


@dataclass
class ReportFiles:
    """Paths written by :func:`write_report` and the tables they hold."""

    markdown: Path
    html: Path
    tables: list[Table]


def write_report(
    rows: Sequence[dict],
    out_dir: str | os.PathLike,
    *,
    title: str,
    tables: Sequence[str] | None = None,
    intro: Sequence[str] = (),
    plots: bool = True,
    stem: str = "report",
    pdf: bool = False,
) -> ReportFiles:
    """Write ``<stem>.md`` and ``<stem>.html`` (self-contained) into ``out_dir``, mode 0644 (reports are meant to
    be shared), and with ``pdf`` also ``<stem>.pdf`` (headless Chromium, :mod:`oblivio.experiments.publish`).

    Args:
        rows: result rows (error rows are ignored).
        out_dir: the folder (created).
        title: document title.
        tables: table keys (default: every table with data), see :data:`TABLES`.
        intro: lines under the title (e.g. the command that reproduces the results).
        plots: embed matplotlib figures in the HTML; skipped with a warning when matplotlib is missing.
        stem: file name stem.
        pdf: also print the HTML to ``<stem>.pdf`` (needs Chromium).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    built = build_tables(rows, keys=tables)
    ok_rows = [r for r in rows if r.get("status", "ok") == "ok"]
    intro = list(intro) + provenance_lines(ok_rows)
    figures: list[tuple[str, bytes]] = []
    if plots:
        try:
            figures = build_figures(ok_rows, keys=tables)
        except ImportError as exc:
            log.warning("%s; the HTML report has no figures", exc)
    md = write_report_file(out / f"{stem}.md", to_markdown(built, title=title, intro=intro))
    page = write_report_file(out / f"{stem}.html", to_html(built, title=title, intro=intro, figures=figures))
    if pdf:
        export_pdf(page)
    return ReportFiles(md, page, built)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "report"


__all__ = [
    "CI_NOTE",
    "GOLD_REFERENCE",
    "GOLD_SEED",
    "STD_NOTE",
    "SUMMARY_METRICS",
    "TABLES",
    "TEXT_WIDTH",
    "ReportFiles",
    "Table",
    "activation_distance_table",
    "alignment_ci_table",
    "build_figures",
    "build_tables",
    "fmt_mean_std",
    "forget_quality_table",
    "label_accuracy_by_size_table",
    "label_accuracy_table",
    "mean_std",
    "neutralisation_table",
    "paired_comparison_table",
    "predictor_null_table",
    "provenance_lines",
    "saving_point_table",
    "summary_table",
    "tmu_table1",
    "to_html",
    "to_markdown",
    "tta_mislabel_table",
    "two_stage_accuracy_table",
    "write_report",
]
