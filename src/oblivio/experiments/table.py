"""The pieces every report table shares: ``mean ± std`` numbers, the rendered :class:`Table`, and row helpers.

A value is shown as ``mean ± std`` where ``std`` is the sample standard deviation (``ddof=1``) over the runs of a
group; a value without ``±`` comes from a single run. The table builders live in :mod:`.tmu_tables`,
:mod:`.two_stage_tables` and :mod:`.summary_tables`; :mod:`.report` assembles them into documents.
"""

from __future__ import annotations

import html
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .stats import finite_values

# ---------------------------------------------------------------------------------------------- numbers
_finite = finite_values  # one definition of "a finite number" for the report and the statistics


def mean_std(values: Iterable[Any]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (``ddof=1``; 0 for one value) and count of the finite values.

    Example:
        >>> mean_std([1.0, 2.0, 3.0, None, float("nan")])
        (2.0, 1.0, 3)
    """
    xs = _finite(values)
    if not xs:
        return math.nan, math.nan, 0
    a = np.asarray(xs, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0, int(a.size)


def fmt_mean_std(values: Iterable[Any], *, scale: float = 100.0, digits: int = 1) -> str:
    """``"mean ± std"`` of the finite values times ``scale`` (``"n/a"`` when there are none; no ``±`` for one).

    Example:
        >>> fmt_mean_std([0.80, 0.90])
        '85.0 ± 7.1'
        >>> fmt_mean_std([0.123], scale=1, digits=3)
        '0.123'
    """
    m, s, n = mean_std(values)
    if n == 0:
        return "n/a"
    if n == 1:
        return f"{m * scale:.{digits}f}"
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


# ---------------------------------------------------------------------------------------------- tables
TEXT_WIDTH = 120  # terminal tables fit this many columns (Table.to_text); the markdown / HTML reports hold it all


HTML_WIDTH_PX = 1150
"""Width budget of one HTML table block: the report's content column at a 1280 px window (80rem less margins)."""

_CHAR_PX, _HEAD_CHAR_PX, _CELL_PAD_PX = 7.6, 8.2, 18
_NUMERIC = re.compile(r"^\s*([+\-−]?\d|[+\-−]?\.\d|n/a$|\[)")


def _html_col_px(header: str, cells: Sequence[str]) -> float:
    """Estimated pixel width of a column at the report's table font (.85rem): the longest cell on one line, or the
    longest word of the header (headers wrap), plus padding."""
    widest_cell = max((len(str(c)) for c in cells), default=0) * _CHAR_PX
    widest_word = max((len(w) for w in str(header).split()), default=0) * _HEAD_CHAR_PX
    return max(widest_cell, widest_word) + _CELL_PAD_PX


@dataclass
class Table:
    """A rendered table: string cells, optional bold cells, notes under it.

    Attributes:
        key: short id (``"tmu-table1"``).
        title: caption.
        columns: header cells.
        rows: body cells (strings).
        bold: ``(row, column)`` positions shown in bold (e.g. the best method of a row).
        notes: sentences printed under the table.
        group: the columns after the first come in groups of this size (a method's ``ACC_test`` and ``ACC_Df``),
            kept together when a wide table is split into blocks.
    """

    key: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    bold: set[tuple[int, int]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    group: int = 1

    def __bool__(self) -> bool:
        return bool(self.rows)

    def to_markdown(self) -> str:
        def cell(text: str, i: int, j: int) -> str:
            text = str(text).replace("|", "\\|").replace("\n", " ")
            return f"**{text}**" if (i, j) in self.bold and text not in ("", "n/a") else text

        lines = [
            "| " + " | ".join(cell(c, -1, j) for j, c in enumerate(self.columns)) + " |",
            "|" + "|".join("---" for _ in self.columns) + "|",
        ]
        lines += ["| " + " | ".join(cell(c, i, j) for j, c in enumerate(r)) + " |" for i, r in enumerate(self.rows)]
        return "\n".join(lines)

    def to_text(self, *, width: int | None = TEXT_WIDTH) -> str:
        """Aligned plain text (for the terminal), at most ``width`` columns: columns that do not fit go to further
        blocks, each repeating the first (key) column (``width=None``: one block however wide)."""
        cells = [self.columns] + self.rows
        widths = [max(len(str(r[j])) for r in cells) for j in range(len(self.columns))]
        blocks: list[list[int]] = [[0]]
        used = widths[0] if widths else 0
        for j in range(1, len(self.columns)):
            if width is not None and used + 2 + widths[j] > width and len(blocks[-1]) > 1:
                blocks.append([0])
                used = widths[0]
            blocks[-1].append(j)
            used += 2 + widths[j]
        out = [self.title]
        for b, idx in enumerate(blocks):
            if b:
                out.append("")
            out += ["  ".join(str(r[j]).ljust(widths[j]) for j in idx).rstrip() for r in cells[:1]]
            out.append("  ".join("-" * widths[j] for j in idx))
            out += ["  ".join(str(r[j]).ljust(widths[j]) for j in idx).rstrip() for r in self.rows]
        return "\n".join(out)

    def column_blocks(self, *, max_width_px: int = HTML_WIDTH_PX) -> list[list[int]]:
        """Column indices split into blocks that fit ``max_width_px`` at the report's font (each block repeats the
        first, key column), by the same rule as :meth:`to_text`: estimated pixel widths, headers wrapping at
        spaces, cells on one line."""
        px = [_html_col_px(self.columns[j], [r[j] for r in self.rows]) for j in range(len(self.columns))]
        g = max(1, self.group)
        units = [list(range(j, min(j + g, len(self.columns)))) for j in range(1, len(self.columns), g)]
        blocks: list[list[int]] = [[0]]
        used = px[0] if px else 0
        for unit in units:
            need = sum(px[j] for j in unit)
            if used + need > max_width_px and len(blocks[-1]) > 1:
                blocks.append([0])
                used = px[0]
            blocks[-1].extend(unit)
            used += need
        return blocks

    def to_html(self, *, max_width_px: int = HTML_WIDTH_PX) -> str:
        """The table as HTML, split into column blocks that fit ``max_width_px`` (a laptop window at 1280 px; the
        print stylesheet fits the same blocks on an A4 landscape page), each block repeating the key column, so
        that no column is cut off in a screenshot or on paper."""
        e = html.escape
        blocks = self.column_blocks(max_width_px=max_width_px)
        # text columns (no cell starts like a number) align left, number columns right
        text_col = [j == 0 or not any(_NUMERIC.match(str(r[j])) for r in self.rows) for j in range(len(self.columns))]
        parts = []
        for b, idx in enumerate(blocks):
            head = "".join(f"<th{' class=t' if text_col[j] else ''}>{e(str(self.columns[j]))}</th>" for j in idx)
            body = []
            for i, r in enumerate(self.rows):
                tds = "".join(
                    f"<td{' class=t' if text_col[j] else ''}>"
                    + (f"<strong>{e(str(r[j]))}</strong>" if (i, j) in self.bold else e(str(r[j])))
                    + "</td>"
                    for j in idx
                )
                body.append(f"<tr>{tds}</tr>")
            cont = (
                f'<p class="cont">{e(self.title)}, continued (columns {idx[1] + 1}-{idx[-1] + 1} of '
                f"{len(self.columns)})</p>"
                if b
                else ""
            )
            # The wrapper still scrolls a table sideways inside the page should a block be wider than estimated.
            parts.append(
                f'{cont}<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
                f"<tbody>{''.join(body)}</tbody></table></div>"
            )
        notes = "".join(f'<p class="note">{e(n)}</p>' for n in self.notes)
        return f'<section id="{e(self.key)}"><h2>{e(self.title)}</h2>{"".join(parts)}{notes}</section>'


GOLD_REFERENCE = "gold reference"
"""The gold model of a request (retrained without D_f, training seed as the original's): the target to match."""


GOLD_SEED = "gold (2nd seed)"
"""The method row "gold": a second gold model with another training seed, i.e. the noise floor of every measure."""


STD_NOTE = "Values are mean ± sample std over runs (seeds); a value without ± comes from one run. Accuracies in %."


CI_NOTE = (
    "Values are means over runs (forget classes × seeds) with a 95% percentile bootstrap CI in brackets "
    "(scipy.stats.bootstrap, 10,000 resamples, seed 0; oblivio.experiments.stats)."
)


# ---------------------------------------------------------------------------------------------- rows
def _m(row: dict, key: str) -> Any:
    return (row.get("metrics") or {}).get(key)


def _methods(rows: Sequence[dict]) -> list[str]:
    """Method labels in first-seen order, with the ``gold`` reference last."""
    names = list(dict.fromkeys(r["method"] for r in rows))
    return [n for n in names if n != "gold"] + (["gold"] if "gold" in names else [])


def _class_label(rows: Sequence[dict], k: Any) -> str:
    for r in rows:
        if r.get("forget_class") == k and r.get("forget_class_name") not in (None, str(k)):
            return f"{k} ({r['forget_class_name']})"
    return str(k)


def _sort_key(v: Any) -> tuple:
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))


def _gold_values(rows: Sequence[dict], key: str) -> list[Any]:
    """The gold model's metric, once per distinct gold model (rows of several methods share one)."""
    seen: dict[tuple, Any] = {}
    for r in rows:
        s = r.get("seeds") or {}
        seen.setdefault((r.get("scenario"), s.get("train"), s.get("request"), s.get("gold")), _m(r, key))
    return list(seen.values())


def _by_class(rows: Sequence[dict]) -> dict[Any, list[dict]]:
    groups: dict[Any, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("forget_class") is not None:
            groups[r["forget_class"]].append(r)
    return dict(sorted(groups.items(), key=lambda kv: _sort_key(kv[0])))


def _scenario_order(rows: Sequence[dict]) -> list[str]:
    firsts: dict[str, dict] = {}
    for r in rows:
        firsts.setdefault(r["scenario"], r)
    return sorted(firsts, key=lambda s: (_forget_ratio(firsts[s]) or 0.0, s))


def _forget_ratio(row: dict) -> float | None:
    nf, nr = row.get("n_forget"), row.get("n_retain")
    return nf / (nf + nr) if nf and nr is not None else None


__all__ = [
    "CI_NOTE",
    "GOLD_REFERENCE",
    "GOLD_SEED",
    "HTML_WIDTH_PX",
    "STD_NOTE",
    "TEXT_WIDTH",
    "Table",
    "fmt_mean_std",
    "mean_std",
]
