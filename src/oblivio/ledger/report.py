"""The verification report of a model version: a JSON-able dict and a self-contained HTML page.

Sections:

* what was served: the version (hash, parent), the run (method, hyper-parameters, seed, times), the requests;
* alignment: against the gold model when the run measured one (``--gold``); else against TMU's twin estimate (the
  share of forget samples its predictor calls "easy" estimates the gold model's forget accuracy); else the
  unlearned model's own accuracies only, said plainly;
* membership inference, each variant named, with the gold model's value beside the model's (aligned means equal,
  not lower);
* cost: seconds of the run, and the ratio to retraining when the gold model's training time is known.

The HTML has inline CSS and no external assets, and every value is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any

from ..utils import atomic_write_text
from .db import RequestRecord, RunRecord, VersionRecord
from .schema import utcnow

# (key, label) of the membership-inference metrics evaluate_unlearning reports.
MIA_ROWS = (
    ("mia_loss_lr_acc", "Loss-based logistic regression, forget vs test (NeurIPS starting kit): accuracy"),
    ("mia_loss_lr_auc", "Loss-based logistic regression, forget vs test: AUC"),
    ("mia_loss_lr_tpr_at_1pct_fpr", "Loss-based logistic regression, forget vs test: TPR at 1% FPR"),
    ("mia_salun_efficacy", "SalUn MIA-efficacy (SVC on true-class confidence, retain vs test, applied to forget)"),
)
ACC_ROWS = (
    ("acc_forget", "Accuracy on the forget set D_f"),
    ("acc_retain", "Accuracy on the retain set D_r"),
    ("acc_test", "Accuracy on the test set D_test"),
)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def build_report(
    version: VersionRecord,
    run: RunRecord | None,
    requests: list[RequestRecord],
    *,
    experiment: dict | None = None,
    oblivio_version: str = "",
) -> dict:
    """Assemble the report dict of ``version`` (see the module docstring for its sections)."""
    m = dict(version.metrics or {})
    reference = m.get("alignment_reference", "none" if run is not None else "original")
    accuracy = [
        {"metric": key, "label": label, "model": _num(m.get(key)), "gold": _num(m.get(f"gold_{key}"))}
        for key, label in ACC_ROWS
    ]
    alignment: dict[str, Any] = {"reference": reference}
    if reference == "gold":
        alignment.update(
            delta_forget=_num(m.get("delta_forget")),
            activation_distance_l2=_num(m.get("activation_distance_l2")),
            js_divergence=_num(m.get("js_divergence")),
            note="Aligned means the model behaves like the gold model retrained without the forgotten "
            "data: delta_forget = |acc_forget - gold acc_forget| near 0.",
        )
    elif reference == "twin":
        alignment.update(
            estimated_gold_acc_forget=_num(m.get("twin_est_gold_acc_forget")),
            estimated_delta_forget=_num(m.get("twin_est_delta_forget")),
            predicted_easy=m.get("twin_predicted_easy"),
            predicted_hard=m.get("twin_predicted_hard"),
            note="No gold model was trained; the gold forget accuracy is estimated by the method's "
            "predictor (share of forget samples predicted 'easy'). Rerun apply with --gold to "
            "measure it.",
        )
    elif reference == "original":
        alignment["note"] = "This is the original model (nothing forgotten yet)."
    else:
        alignment["note"] = (
            "No gold model and no twin estimate: only the unlearned model's own numbers are "
            "reported. Rerun apply with --gold to measure alignment."
        )
    mia = [
        {"metric": key, "label": label, "model": _num(m.get(key)), "gold": _num(m.get(f"gold_{key}"))}
        for key, label in MIA_ROWS
        if key in m
    ]
    headline = []
    if m.get("unchanged"):
        parent = run.parent_version_id if run is not None else version.parent_id
        headline.append(
            f"NO-OP: the unlearning method returned the weights of version {parent} unchanged (same "
            "state_dict hash). The requests below are recorded as applied, but the model did not "
            "change."
        )
    if m.get("mia_skipped"):
        headline.append(f"Membership inference (loss MIA) not computed: {m['mia_skipped']}.")
    if m.get("per_example") is not None and m.get("per_example_n_flagged"):
        headline.append(
            f"Per-example check: {m['per_example_n_flagged']} of {m['per_example_n']} forget samples "
            "still have a lower loss than "
            f"{100 * (1 - float(m.get('per_example_alpha', 0.05))):.0f}% of unseen test samples."
        )
    cost = {
        "seconds": _num(m.get("seconds")) if run is not None else None,
        "gold_seconds": _num(m.get("gold_seconds")),
        "cost_ratio_to_retraining": _num(m.get("cost_ratio")),
    }
    return {
        "title": f"oblivio verification report: model version {version.id}"
        + (" (no-op: model unchanged)" if m.get("unchanged") else ""),
        "headline": headline,
        "per_example": m.get("per_example"),
        "generated_at": utcnow().isoformat(timespec="seconds") + "Z",
        "oblivio_version": oblivio_version,
        "experiment": experiment,
        "version": version.to_dict(),
        "run": run.to_dict() if run is not None else None,
        "requests": [{k: v for k, v in r.to_dict().items() if k != "sample_ids"} for r in requests],
        "n_forgotten_total": len(version.forgotten_ids),
        "accuracy": accuracy,
        "alignment": alignment,
        "membership_inference": mia,
        "cost": cost,
        "method_info": m.get("method_info", {}),
        "metrics": m,
    }


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:980px;
color:#1d232a;line-height:1.45;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.6em 0;width:100%}th,td{border:1px solid #d0d7de;padding:.3em .6em;
text-align:left;vertical-align:top}th{background:#f3f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#57606a;font-size:.92em}.warn{border:2px solid #cf222e;background:#fff5f5;padding:.5em 1em}
.ok{color:#1a7f37}.bad{color:#cf222e}code{background:#f3f5f7;padding:0 .2em}
"""


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _kv_table(pairs: list[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in pairs)
    return f"<table>{rows}</table>"


def _metric_table(rows: list[dict], *, gold_col: bool) -> str:
    head = "<tr><th>metric</th><th>model</th>" + ("<th>gold</th>" if gold_col else "") + "</tr>"
    body = ""
    for r in rows:
        body += (
            f"<tr><td>{_e(r['label'])} <code>{_e(r['metric'])}</code></td>"
            f"<td class=num>{_e(_fmt(r['model']))}</td>"
            + (f"<td class=num>{_e(_fmt(r['gold']))}</td>" if gold_col else "")
            + "</tr>"
        )
    return f"<table>{head}{body}</table>"


def render_html(report: dict) -> str:
    """The report as one self-contained HTML page (inline CSS, no scripts, no external assets, all escaped)."""
    v, run, align, cost = report["version"], report["run"], report["alignment"], report["cost"]
    has_gold = align.get("reference") == "gold"
    parts = [
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{_e(report['title'])}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(report['title'])}</h1>",
        f"<p class=note>generated {_e(report['generated_at'])} by oblivio {_e(report['oblivio_version'])}</p>",
        *[f"<p class=warn>{_e(line)}</p>" for line in report.get("headline", [])],
        "<h2>Model version</h2>",
        _kv_table(
            [
                ("version", v["id"]),
                ("state_dict SHA-256", v["hash"]),
                ("file", v["path"]),
                ("parent version", v["parent"]),
                ("created (UTC)", v["created_at"]),
                ("current", v["is_current"]),
                ("samples forgotten in total", report["n_forgotten_total"]),
            ]
        ),
    ]
    if report.get("experiment"):
        parts += [
            "<h2>Experiment</h2>",
            _kv_table(
                [
                    (k, json.dumps(val, sort_keys=True) if isinstance(val, (dict, list)) else val)
                    for k, val in sorted(report["experiment"].items())
                ]
            ),
        ]
    if run is not None:
        parts += [
            "<h2>Run</h2>",
            _kv_table(
                [
                    ("run", run["id"]),
                    ("method", run["method"]),
                    ("hyper-parameters", json.dumps(run["hparams"], sort_keys=True)),
                    ("seed", run["seed"]),
                    ("started (UTC)", run["started_at"]),
                    ("ended (UTC)", run["ended_at"]),
                    ("status", run["status"]),
                    ("samples in the forget set", run["n_forget"]),
                ]
            ),
        ]
        head = "<tr><th>request</th><th>requester</th><th>created (UTC)</th><th>samples</th><th>reason</th></tr>"
        body = "".join(
            f"<tr><td>#{_e(r['id'])}</td><td>{_e(r['requester'])}</td><td>{_e(r['created_at'])}</td>"
            f"<td class=num>{_e(r['n_samples'])}</td><td>{_e(r['reason'])}</td></tr>"
            for r in report["requests"]
        )
        parts += ["<h2>Requests served</h2>", f"<table>{head}{body}</table>"]
    parts += ["<h2>Accuracy</h2>", _metric_table(report["accuracy"], gold_col=has_gold)]
    parts += ["<h2>Alignment</h2>", f"<p>reference: <b>{_e(align.get('reference'))}</b></p>"]
    pairs = [(k, val) for k, val in align.items() if k not in ("reference", "note")]
    if pairs:
        parts.append(_kv_table(pairs))
    if align.get("note"):
        parts.append(f"<p class=note>{_e(align['note'])}</p>")
    if report["membership_inference"]:
        parts += [
            "<h2>Membership inference</h2>",
            _metric_table(report["membership_inference"], gold_col=has_gold),
            "<p class=note>Aligned means the model's value equals the gold model's, not that it is lower. "
            "n/a: not computable here (the loss attack's 10-split cross-validation needs at least 10 "
            "forget samples).</p>",
        ]
    if report.get("per_example"):
        alpha = float(report["metrics"].get("per_example_alpha", 0.05))
        head = (
            "<tr><th>sample id</th><th>loss</th><th>quantile among unseen test losses</th>"
            "<th>quantile before (parent)</th><th>looks like a member</th></tr>"
        )
        body = "".join(
            f"<tr><td>{_e(r['id'])}</td><td class=num>{_e(_fmt(r['loss']))}</td>"
            f"<td class=num>{_e(_fmt(r['quantile']))}</td><td class=num>{_e(_fmt(r['quantile_parent']))}</td>"
            f"<td>{'yes' if r['flagged'] else 'no'}</td></tr>"
            for r in report["per_example"]
        )
        parts += [
            "<h2>Per-example membership check</h2>",
            f"<table>{head}{body}</table>",
            f"<p class=note>For each forget sample: the share of unseen test samples whose loss is at most its "
            f"loss. For a sample the model never saw this is about uniform on [0, 1]; below {alpha:g} the "
            "sample still looks like a training member. Works for requests of any size.</p>",
        ]
    if run is not None:
        parts += [
            "<h2>Cost</h2>",
            _kv_table(
                [
                    ("seconds of the run", cost["seconds"]),
                    ("seconds to retrain (gold)", cost["gold_seconds"]),
                    ("ratio run / retraining", cost["cost_ratio_to_retraining"]),
                ]
            ),
        ]
    if report.get("method_info"):
        parts += ["<h2>Method report</h2>", _kv_table(sorted(report["method_info"].items()))]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(report: dict, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``report-v<ID>.json`` and ``report-v<ID>.html`` atomically; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"report-v{report['version']['id']}"
    json_path = atomic_write_text(out / f"{stem}.json", json.dumps(report, indent=2, sort_keys=True, allow_nan=False))
    html_path = atomic_write_text(out / f"{stem}.html", render_html(report))
    return json_path, html_path
