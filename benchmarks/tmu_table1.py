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
    ordered = sorted(
        rows.values(),
        key=lambda r: (
            r.get("forget_class") or 0,
            (r.get("seeds") or {}).get("train", 0),
            order.get(r.get("method"), len(order)),
        ),
    )
    out.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in ordered)
    _atomic_write(out / f"{stem}.jsonl", lines.encode("utf-8"))
    intro = list(intro) + [f"Rows: docs/results/{stem}.jsonl (rebuild: oblivio report docs/results/{stem}.jsonl)."]
    write_report(
        ordered,
        out,
        title="oblivio benchmark: tmu-table1 (multi-seed, with controls)",
        tables=TABLES,
        intro=intro,
        plots=True,
        stem=stem,
    )
    for i, (caption, png) in enumerate(build_figures(ordered, keys=TABLES)):
        _atomic_write(out / f"{stem}-fig{i + 1}.png", png)
        print(f"figure {i + 1}: {caption}")
    _atomic_write(out / f"{stem}-alignment.png", alignment_figure(ordered))
    print(f"figure: {stem}-alignment.png (δ vs sample agreement vs activation distance, 95% CIs)")
    print(f"{len(ordered)} rows -> {out / (stem + '.jsonl')}")
    return out / f"{stem}.jsonl"


def alignment_figure(rows: list[dict]) -> bytes:
    """One point per method: mean sample agreement (x) against mean δ (left) and mean activation distance (right),
    each with its 95% bootstrap CI as error bars; the untouched original is a point too (its activation distance
    only where the rows record ``original_activation_distance_l2``, since issue 15). Returns PNG bytes (issue 15's
    figure)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from oblivio.experiments.stats import mean_ci, original_rows

    by: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("status", "ok") == "ok":
            by.setdefault(r["method"], []).append(r)
    points = {}
    for name, rs in by.items():
        m = [r["metrics"] for r in rs]
        points[name] = (
            mean_ci([x.get("sample_agreement") for x in m]),
            mean_ci([x.get("delta_forget") for x in m]),
            mean_ci([x.get("activation_distance_l2") for x in m]),
        )
    # the original model, once per pairing unit (stats.original_rows: the "do nothing" pseudo-rows)
    orig = [o["metrics"] for o in original_rows(rows)]
    acts = [m.get("activation_distance_l2") for m in orig if m.get("activation_distance_l2") is not None]
    points["original (no unlearning)"] = (
        mean_ci([m.get("sample_agreement") for m in orig]),
        mean_ci([m.get("delta_forget") for m in orig]),
        mean_ci(acts) if acts else None,
    )
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(points)}
    for ax, j, label in (
        (axes[0], 1, "δ = |ACC_Df(M_u) − ACC_Df(M_g)| (points)"),
        (axes[1], 2, "activation distance L2 to gold on D_f"),
    ):
        for name, pt in points.items():
            a, y = pt[0], pt[j]
            if y is None or a.n == 0 or y.n == 0:
                continue
            scale = 100 if j == 1 else 1
            ax.errorbar(
                a.mean * 100,
                y.mean * scale,
                xerr=[[100 * (a.mean - a.low)], [100 * (a.high - a.mean)]],
                yerr=[[scale * (y.mean - y.low)], [scale * (y.high - y.mean)]],
                fmt="o",
                capsize=3,
                label=name,
                color=colours[name],
            )
        ax.set_xlabel("sample agreement with gold on D_f (%)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    axes[0].set_title("closer to gold: right and down", fontsize=9)
    axes[1].set_title("closer to gold: right and down", fontsize=9)
    fig.suptitle("TMU Table 1 protocol: mean over (class, seed) units, 95% bootstrap CIs", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


if __name__ == "__main__":
    if "--publish" in sys.argv:
        p = argparse.ArgumentParser(description="copy finished Table-1 rows and their report into docs/results/")
        p.add_argument("--publish", nargs="+", required=True, metavar="RESULTS.jsonl")
        p.add_argument("--note", action="append", default=[], help="a line for the report's introduction")
        p.add_argument(
            "--stem",
            default="tmu-table1",
            help="file stem under docs/results/ (e.g. tmu-table1-full for the full-size run)",
        )
        args = p.parse_args()
        publish(args.publish, intro=args.note, stem=args.stem)
    else:
        run("tmu-table1")
