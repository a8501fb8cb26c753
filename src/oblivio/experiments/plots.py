"""Figures for benchmark reports (matplotlib, the optional extra ``oblivio[plot]``).

Every function takes result rows (see :mod:`oblivio.experiments.runner`) and returns PNG bytes, ready to embed
in the HTML report. matplotlib is imported on first use with the non-interactive ``Agg`` backend.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..methods.two_stage import TwoStageInfo


def require_matplotlib():
    """``matplotlib.pyplot`` on the Agg backend, or an ImportError saying how to install it."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("plots need the optional dependency matplotlib: pip install 'oblivio[plot]'") from exc
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


FIG_WIDTH_IN = 11.0
"""Widest figure, in inches: at :data:`DPI` 1210 px, the content width of a report at a 1280 px window, so every
figure is shown at its own size (never scaled down: axes, ticks and legends stay legible)."""
DPI = 110


def _png(fig) -> bytes:
    plt = require_matplotlib()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _mean_std(values: Sequence[Any]) -> tuple[float, float]:
    xs = np.asarray([float(v) for v in values if isinstance(v, (int, float)) and np.isfinite(v)], dtype=np.float64)
    if xs.size == 0:
        return float("nan"), float("nan")
    return float(xs.mean()), float(xs.std(ddof=1)) if xs.size > 1 else 0.0


def grouped_bars(
    categories: Sequence[str],
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    ylabel: str,
    title: str = "",
    xlabel: str = "",
) -> bytes:
    """Grouped bar chart with error bars: one group per category, one bar per series ``{label: (means, stds)}``.

    One panel for one measure, at most :data:`FIG_WIDTH_IN` wide (bars get thinner, the figure no wider), the
    legend under the axes in up to five columns (a legend beside the axes took a third of the width)."""
    plt = require_matplotlib()
    n_series = max(1, len(series))
    ncol = min(n_series, 5)
    legend_rows = -(-n_series // ncol)
    width = min(FIG_WIDTH_IN, max(6.0, 0.22 * len(categories) * n_series + 2.0))
    fig, ax = plt.subplots(figsize=(width, 3.8 + 0.28 * legend_rows), layout="constrained")
    bar = 0.8 / n_series
    x = np.arange(len(categories))
    for i, (label, (means, stds)) in enumerate(series.items()):
        ax.bar(x + (i - (n_series - 1) / 2) * bar, means, bar, yerr=stds, label=label, capsize=2 if bar > 0.05 else 0)
    ax.set_xticks(x)
    ax.set_xticklabels(
        categories, rotation=30 if len(categories) > 6 else 0, ha="right" if len(categories) > 6 else "center"
    )
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    fig.legend(loc="outside lower center", ncol=ncol, frameon=False, fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def metric_by_class(rows: Sequence[dict], key: str, *, ylabel: str, scale: float = 1.0) -> bytes:
    """Mean ± std of ``metrics[key]`` per forget class (groups) and method (bars)."""
    classes = sorted({r["forget_class"] for r in rows if r.get("forget_class") is not None}, key=str)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    series: dict[str, tuple[Sequence[float], Sequence[float]]] = {}
    for m in methods:
        stats = [
            _mean_std(
                [(r.get("metrics") or {}).get(key) for r in rows if r["method"] == m and r.get("forget_class") == k]
            )
            for k in classes
        ]
        series[m] = ([scale * s[0] for s in stats], [scale * s[1] for s in stats])
    return grouped_bars([str(k) for k in classes], series, ylabel=ylabel, xlabel="forget class")


def delta_by_class(rows: Sequence[dict]) -> bytes:
    """δ = |ACC_Df(M_u) − ACC_Df(M_g)| in percent, per forget class and method."""
    return metric_by_class(rows, "delta_forget", ylabel="δ (percentage points)", scale=100.0)


def label_accuracy_vs_size(entries: Sequence[tuple[str, float, dict]]) -> bytes:
    """Predictor label accuracy against ``|D_f|``, one line per feature set (TMU Figure 3)."""
    plt = require_matplotlib()
    groups: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for fs, acc, row in entries:
        groups[fs][int(row.get("n_forget") or 0)].append(acc)
    fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
    for fs, by_n in groups.items():
        ns = sorted(by_n)
        stats = [_mean_std(by_n[n]) for n in ns]
        ax.errorbar(ns, [100 * s[0] for s in stats], yerr=[100 * s[1] for s in stats], marker="o", capsize=2, label=fs)
    ax.set_xlabel("|D_f|")
    ax.set_ylabel("label accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _png(fig)


def neutralisation_vs_ratio(rows: Sequence[dict]) -> bytes:
    """Neutralisation epochs (the two-stage ``info`` key ``neutralisation_epochs``) against the forget ratio
    (two-stage Table 5), one line per method."""
    plt = require_matplotlib()
    groups: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        info: TwoStageInfo = r.get("info") or {}  # type: ignore[assignment]
        v = info.get("neutralisation_epochs")
        nf, nr = r.get("n_forget"), r.get("n_retain")
        if v is None or not nf or nr is None:
            continue
        groups[r["method"]][round(100 * nf / (nf + nr), 2)].append(v)
    fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
    for m, by_ratio in groups.items():
        xs = sorted(by_ratio)
        stats = [_mean_std(by_ratio[x]) for x in xs]
        ax.errorbar(xs, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=2, label=m)
    ax.set_xlabel("forget ratio (%)")
    ax.set_ylabel("neutralisation epochs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _png(fig)


__all__ = [
    "DPI",
    "FIG_WIDTH_IN",
    "delta_by_class",
    "grouped_bars",
    "label_accuracy_vs_size",
    "metric_by_class",
    "neutralisation_vs_ratio",
    "require_matplotlib",
]
