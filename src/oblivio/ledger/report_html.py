"""The verification report as one self-contained HTML page (inline CSS, no scripts, no external assets, every
value HTML-escaped), laid out for the reader who reads only the top:

1. the **verdict** (first screen at 1280 px): what was forgotten, whether the model behaves on those samples like a
   retrained model within the noise floor (:mod:`oblivio.ledger.verdict`), the membership check, what it cost;
2. the **requests** this version has forgotten;
3. the details: accuracy, alignment, membership inference, the per-example check, the run and its
   hyper-parameters (non-default values marked), cost, the model version, the experiment, the method's report.

Fractions are shown in percent with the unit in the header; internal names get human labels
(:mod:`oblivio.experiments.labels`) with the internal name beside them. A print stylesheet makes the page a
document (A4, no cut tables).
"""

from __future__ import annotations

import html
import json
from typing import Any

from ..experiments.labels import fmt_value, label, unit_of

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em auto;max-width:980px;
color:#1d232a;line-height:1.45;padding:0 1em}
h1{font-size:1.45em;margin:.2em 0}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #d0d7de}
h3{font-size:1.02em;margin:1.3em 0 .3em}
table{border-collapse:collapse;margin:.6em 0;width:100%}th,td{border:1px solid #d0d7de;padding:.3em .6em;
text-align:left;vertical-align:top}td.wrap{overflow-wrap:anywhere}th{background:#f3f5f7}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}td.num,td.unit{white-space:nowrap}
.note{color:#57606a;font-size:.92em}.warn{border:2px solid #cf222e;background:#fff5f5;padding:.5em 1em}
code{background:#f3f5f7;padding:0 .2em;font-size:.88em}.meta{color:#57606a;font-size:.9em;margin:.1em 0 .8em}
.verdict{border:2px solid #9a6700;background:#fff8e6;border-radius:6px;padding:.7em 1.1em;margin:.8em 0}
.verdict.yes{border-color:#1a7f37;background:#f0fff4}.verdict.no{border-color:#cf222e;background:#fff5f5}
.answer{font-size:1.3em;font-weight:650;margin:.1em 0 .5em}
dl.facts{display:grid;grid-template-columns:12em 1fr;gap:.35em 1em;margin:0}dl.facts dt{font-weight:600}
dl.facts dd{margin:0}tr.changed td{background:#fff8c5}summary{cursor:pointer;margin:.4em 0}
.mark{font-weight:700;color:#9a6700}
@page{size:A4;margin:14mm}
@media print{body{margin:0;max-width:none;padding:0;font-size:10pt;color:#000}summary{font-weight:600}
.verdict,figure,tr{break-inside:avoid}h2,h3{break-after:avoid}thead{display:table-header-group}
code{background:none}th{background:#eee}}
"""


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _pct(v: Any) -> str:
    return "n/a" if not isinstance(v, (int, float)) or v != v else f"{100 * v:.1f}"


def _name(key: str) -> str:
    """A labelled internal name: ``Label <code>key</code>``."""
    return f"{_e(label(key))} <code>{_e(key)}</code>"


def _kv(pairs: list[tuple[str, Any]]) -> tuple[str, bool]:
    """A two-column table of (already escaped) names and values; returns the HTML and whether a value is n/a."""
    rows, missing = [], False
    for name, value in pairs:
        text = "n/a" if value is None else str(value)
        missing |= text == "n/a"
        rows.append(f"<tr><th>{name}</th><td class=wrap>{_e(text)}</td></tr>")
    return f"<table>{''.join(rows)}</table>", missing


def _na_note(reason: str = "") -> str:
    return f"<p class=note>n/a: not computable here{': ' + _e(reason) if reason else '.'}</p>"


def _metric_table(rows: list[dict], *, gold_col: bool) -> tuple[str, bool]:
    """Measure | unit | this model | retrained model (gold); returns the HTML and whether a cell is n/a."""
    head = "<tr><th>measure</th><th>unit</th><th class=num>this model</th>" + (
        "<th class=num>retrained model (gold)</th>" if gold_col else ""
    )
    body, missing = "", False
    for r in rows:
        cells = [fmt_value(r["metric"], r["model"])] + ([fmt_value(r["metric"], r["gold"])] if gold_col else [])
        missing |= "n/a" in cells
        body += (
            f"<tr><td>{_name(r['metric'])}</td><td class=unit>{_e(unit_of(r['metric']))}</td>"
            + "".join(f"<td class=num>{_e(c)}</td>" for c in cells)
            + "</tr>"
        )
    return f"<table><thead>{head}</tr></thead><tbody>{body}</tbody></table>", missing


def _verdict(report: dict) -> str:
    v, forgotten, m = report["verdict"], report["forgotten"], report["metrics"]
    if report["run"] is None:  # version 1: nothing to judge
        return (
            '<section id="verdict" class="verdict nm"><p class=answer>The original model: nothing has been forgotten '
            "yet</p><p>Requests are served by <code>oblivio request apply</code>; each apply writes a new version "
            "with its own verdict.</p></section>"
        )
    css = {"yes": "yes", "no": "no"}.get(v["answer"], "nm")
    answer = {
        "yes": "Behaves like a retrained model on the forgotten samples: yes, within the noise floor",
        "no": "Behaves like a retrained model on the forgotten samples: no, outside the noise floor",
    }.get(v["answer"], "Behaves like a retrained model on the forgotten samples: not measured")
    if v.get("estimated"):
        answer += " (estimated, no retrained model)"
    reqs = forgotten["requests"]
    served = [r for r in reqs if r["this_run"]]

    def ids(rs: list[dict], most: int = 8) -> str:  # a long list stays one line: the table below has them all
        head = ", ".join("#" + str(r["id"]) for r in rs[:most])
        return head + (f" and {len(rs) - most} more" if len(rs) > most else "")

    what = (
        f"{forgotten['samples']} training samples from {len(reqs)} request{'s' if len(reqs) != 1 else ''} "
        f"({ids(reqs)}); this run served {ids(served) or 'no request'} ({forgotten['this_run_samples']} samples)."
    )
    facts = [
        ("What was forgotten", _e(what)),
        ("Compared with a retrained model", _e(v.get("detail") or v["sentence"])),
    ]
    n_flag, n_ex = m.get("per_example_n_flagged"), m.get("per_example_n")
    if report.get("per_example") and isinstance(n_ex, int):
        alpha = float(m.get("per_example_alpha", 0.05))
        facts.append(
            (
                "Membership check",
                _e(
                    f"{n_flag or 0} of {n_ex} forgotten samples still have a lower loss than {100 * (1 - alpha):.0f}% "
                    f"of unseen test samples (they still look like training members; for samples never trained on, "
                    f"about {100 * alpha:.0f}% would by chance)."
                ),
            )
        )
    elif m.get("mia_loss_lr_acc") is not None:
        gold = m.get("gold_mia_loss_lr_acc")
        facts.append(
            (
                "Membership inference",
                _e(
                    f"loss-based attack accuracy {fmt_value('mia_loss_lr_acc', m['mia_loss_lr_acc'], digits=1)}%"
                    + (
                        f" (retrained model: {fmt_value('mia_loss_lr_acc', gold, digits=1)}%)"
                        if gold is not None
                        else ""
                    )
                    + "; aligned means equal to the retrained model's, not lower."
                ),
            )
        )
    if report.get("cost_summary"):
        facts.append(("What it cost", _e(report["cost_summary"]["sentence"])))
    dl = "".join(f"<dt>{k}</dt><dd>{val}</dd>" for k, val in facts)
    return (
        f'<section id="verdict" class="verdict {css}"><p class=answer>{_e(answer)}</p>'
        f"<dl class=facts>{dl}</dl>"
        '<p class=note>"Within the noise floor": the gap to the retrained model on the forgotten samples is no '
        "larger than chance explains (two-sided p &ge; 0.05); see "
        "<a href='#how-measured'>how it is measured</a>.</p></section>"
    )


def _requests(report: dict) -> str:
    reqs = report["forgotten"]["requests"]
    if not reqs:
        return ""
    head = (
        "<tr><th>request</th><th>requester</th><th>created (UTC)</th><th class=num>samples</th><th>reason</th>"
        "<th>status</th><th>applied by</th></tr>"
    )
    body = "".join(
        f"<tr><td>#{_e(r['id'])}</td><td>{_e(r['requester'])}</td><td>{_e(r['created_at'])}</td>"
        f"<td class=num>{_e(r['n_samples'])}</td><td>{_e(r['reason'])}</td><td>{_e(r['status'])}</td>"
        f"<td>{'this run' if r['this_run'] else _e('version ' + str(r['applied_version']))}</td></tr>"
        for r in reqs
    )
    return (
        f'<section id="requests"><h2>Requests forgotten by this version</h2><table><thead>{head}</thead>'
        f"<tbody>{body}</tbody></table></section>"
    )


def _hparams(report: dict) -> str:
    rows = report.get("hparams") or []
    if not rows:
        return ""
    method = report["run"]["method"]

    def show(key: str, value: Any) -> str:
        return "None" if value is None else fmt_value(key, value)  # None is a setting here (e.g. "automatic")

    described: dict[str, str] = {}
    lines: list[tuple[bool, str]] = []
    for r in rows:
        mark = "<span class=mark title='differs from the default'>&#9679;</span> " if r["changed"] else ""
        default = "unknown" if r["changed"] is None else show(r["key"], r["default"])
        text = r["description"]
        if text and text in described:  # one docstring entry describing several knobs: once
            text = f"see {described[text]}"
        elif text:
            described[text] = r["key"]
        lines.append(
            (
                bool(r["changed"]) or r["changed"] is None,
                f"<tr{' class=changed' if r['changed'] else ''}><td>{mark}{_name(r['key'])}</td>"
                f"<td>{_e(show(r['key'], r['value']))}</td><td>{_e(default)}</td><td class=note>{_e(text)}</td></tr>",
            )
        )
    n_changed = sum(1 for r in rows if r["changed"])
    if report.get("hparams_defaults_known"):
        note = (
            f"{n_changed} of {len(rows)} values differ from the defaults of the registered method {_e(repr(method))} "
            "(marked &#9679;, listed first)."
        )
    else:
        note = f"The method {_e(repr(method))} is not registered in this process: its defaults are unknown."
    head = "<tr><th>hyper-parameter</th><th>value</th><th>default</th><th>what it does</th></tr>"
    shown = "".join(line for keep, line in lines if keep)
    rest = [line for keep, line in lines if not keep]
    table = f"<table><thead>{head}</thead><tbody>{shown}</tbody></table>" if shown else ""
    if rest:  # the values at their defaults: one click away (all of them are in the JSON report too)
        table += (
            f"<details><summary>{len(rest)} hyper-parameter{'s' if len(rest) != 1 else ''} at the default</summary>"
            f"<table><thead>{head}</thead><tbody>{''.join(rest)}</tbody></table></details>"
        )
    return f"<h3>Hyper-parameters</h3><p class=note>{note}</p>{table}"


def _labelled(items: list[tuple[str, Any]]) -> tuple[str, bool]:
    """Labelled internal names with their values in their units (a unit column)."""
    body, missing = "", False
    for key, value in items:
        text = fmt_value(key, value)
        missing |= text == "n/a"
        cls = "num" if isinstance(value, (int, float)) or value is None else "wrap"
        body += f"<tr><td>{_name(key)}</td><td class=unit>{_e(unit_of(key))}</td><td class={cls}>{_e(text)}</td></tr>"
    head = "<tr><th>measure</th><th>unit</th><th class=num>value</th></tr>"
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>", missing


def render_html(report: dict) -> str:
    """The report as one self-contained HTML page (see the module docstring)."""
    v, run, align, m = report["version"], report["run"], report["alignment"], report["metrics"]
    has_gold = align.get("reference") == "gold"
    parts = [
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{_e(report['title'])}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>{_e(report['title'])}</h1>",
        f"<p class=meta>generated {_e(report['generated_at'])} by oblivio {_e(report['oblivio_version'])}; "
        f"model {_e(v['hash'][:16])}</p>",
        *[f"<p class=warn>{_e(line)}</p>" for line in report.get("headline", []) if line.startswith("NO-OP")],
        _verdict(report) if "verdict" in report else "",
        _requests(report) if "forgotten" in report else "",
        "<h2>Details</h2>",
        *[f"<p class=warn>{_e(line)}</p>" for line in report.get("headline", []) if not line.startswith("NO-OP")],
    ]
    table, missing = _metric_table(report["accuracy"], gold_col=has_gold)
    parts += ["<h3>Accuracy</h3>", table, _na_note() if missing else ""]
    parts.append(f"<h3>Alignment with a retrained model</h3><p>reference: <b>{_e(align.get('reference'))}</b></p>")
    pairs = [(k, val) for k, val in align.items() if k not in ("reference", "note")]
    if pairs:
        keys = {
            "estimated_gold_acc_forget": "twin_est_gold_acc_forget",
            "estimated_delta_forget": "twin_est_delta_forget",
            "predicted_easy": "twin_predicted_easy",
            "predicted_hard": "twin_predicted_hard",
        }
        table, missing = _labelled([(keys.get(k, k), val) for k, val in pairs])
        parts += [table, _na_note() if missing else ""]
    if align.get("note"):
        parts.append(f"<p class=note>{_e(align['note'])}</p>")
    if report["membership_inference"]:
        table, missing = _metric_table(report["membership_inference"], gold_col=has_gold)
        parts += [
            "<h3>Membership inference</h3>",
            table,
            "<p class=note>Aligned means the model's value equals the retrained model's, not that it is lower.</p>",
            _na_note(m.get("mia_skipped") or "") if missing else "",
        ]
    if report.get("per_example"):
        alpha = float(m.get("per_example_alpha", 0.05))
        head = (
            "<tr><th>sample id</th><th class=num>loss</th><th class=num>quantile among unseen test losses (%)</th>"
            "<th class=num>quantile before, parent version (%)</th><th>looks like a member</th></tr>"
        )
        body = "".join(
            f"<tr><td>{_e(r['id'])}</td><td class=num>{_e(fmt_value('loss', r['loss']))}</td>"
            f"<td class=num>{_e(_pct(r['quantile']))}</td>"
            f"<td class=num>{_e(_pct(r['quantile_parent']))}</td>"
            f"<td>{'yes' if r['flagged'] else 'no'}</td></tr>"
            for r in report["per_example"]
        )
        parts += [
            "<h3>Per-example membership check</h3>",
            f"<table><thead>{head}</thead><tbody>{body}</tbody></table>",
            f"<p class=note>For each forget sample: the share of unseen test samples whose loss is at most its "
            f"loss. For a sample the model never saw this is about uniform on [0, 100]%; below {100 * alpha:g}% the "
            "sample still looks like a training member. Works for requests of any size.</p>",
        ]
    if run is not None:
        cost = report["cost"]
        table, missing = _labelled(
            [
                ("seconds", cost["seconds"]),
                ("cpu_seconds", (report.get("method_info") or {}).get("cpu_seconds")),
                ("gold_seconds", cost["gold_seconds"]),
                ("cost_ratio", cost["cost_ratio_to_retraining"]),
            ]
        )
        parts += ["<h3>Cost</h3>", table, _na_note("retraining is timed only by apply --gold") if missing else ""]
        table, _ = _kv(
            [
                (_e("run"), run["id"]),
                (_e("method"), run["method"]),
                (_e("seed"), run["seed"]),
                (_e("started (UTC)"), run["started_at"]),
                (_e("ended (UTC)"), run["ended_at"]),
                (_e("status"), run["status"]),
                (_e("samples in the forget set (cumulative)"), run["n_forget"]),
            ]
        )
        parts += ["<h3>Run</h3>", table, _hparams(report)]
    table, _ = _kv(
        [
            (_e("version"), v["id"]),
            (_e("state_dict SHA-256"), v["hash"]),
            (_e("file"), v["path"]),
            (_e("parent version"), v["parent"] if v["parent"] is not None else "none (the original)"),
            (_e("created (UTC)"), v["created_at"]),
            (_e("current"), "yes" if v["is_current"] else "no"),
            (_e("samples forgotten in total"), report["n_forgotten_total"]),
        ]
    )
    parts += ["<h3>Model version</h3>", table]
    if report.get("experiment"):
        table, _ = _kv(
            [
                (_name(k), json.dumps(val, sort_keys=True) if isinstance(val, (dict, list)) else val)
                for k, val in sorted(report["experiment"].items())
                if val is not None
            ]
        )
        parts += ["<h3>Experiment</h3>", table]
    info = report.get("method_info") or {}
    if info:
        table, missing = _labelled(sorted(info.items()))
        parts += ["<h3>Method report</h3>", table, _na_note() if missing else ""]
    parts.append(_how_measured(report))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def _how_measured(report: dict) -> str:
    v = report.get("verdict") or {}
    test = v.get("test")
    alpha = v.get("alpha", 0.05)
    return (
        "<h3 id=how-measured>How the verdict is measured</h3><p class=note>"
        "The model's accuracy on the forgotten samples is compared with a model retrained without them: measured "
        "(gold, <code>apply --gold</code>) or estimated by TMU's twin problem. It is <i>within the noise floor</i> "
        f"when the gap is no larger than chance explains at the {100 * alpha:g}% level (two-sided): with a measured "
        "gold model, an exact McNemar test on the samples the two models disagree on; with the estimate, an exact "
        "binomial test against the estimated accuracy. Without either the answer is <i>not measured</i>. "
        + (f"Here: {_e(test)}. " if test else "")
        + "Definition and caveats: docs/workflow.md, section \u201cThe verdict\u201d.</p>"
    )


__all__ = ["CSS", "render_html"]
