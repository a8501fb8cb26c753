"""The verification report of a model version: a JSON-able dict (:func:`build_report`) and a self-contained HTML
page (:func:`render_html`, laid out in :mod:`oblivio.ledger.report_html`), written with mode 0644.

Sections, in the order a reader needs them:

* the verdict (:mod:`oblivio.ledger.verdict`): what was forgotten (requests, samples), whether the model behaves on
  those samples like a model retrained without them, within the noise floor (yes / no / not measured, with the
  numbers), and what it cost;
* the requests this version has forgotten (this run's and earlier runs');
* alignment: against the gold model when the run measured one (``--gold``); else against TMU's twin estimate (the
  share of forget samples its predictor calls "easy" estimates the gold model's forget accuracy); else the
  unlearned model's own accuracies only, said plainly;
* membership inference, each variant named, with the gold model's value beside the model's (aligned means equal,
  not lower), and the per-example check of small requests;
* the run (method, hyper-parameters beside their defaults, seed, times), cost, the model version, the experiment.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ..experiments.labels import hparam_rows, label
from ..experiments.publish import export_pdf, write_report_file
from .db import RequestRecord, RunRecord, VersionRecord
from .report_html import render_html
from .schema import utcnow
from .verdict import cost_summary, noise_floor_verdict

# (key, label) of the membership-inference and accuracy metrics evaluate_unlearning reports (labels: one mapping,
# oblivio.experiments.labels).
MIA_ROWS = tuple(
    (key, label(key))
    for key in ("mia_loss_lr_acc", "mia_loss_lr_auc", "mia_loss_lr_tpr_at_1pct_fpr", "mia_salun_efficacy")
)
ACC_ROWS = tuple((key, label(key)) for key in ("acc_forget", "acc_retain", "acc_test"))


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
    forgotten_requests: list[RequestRecord] | None = None,
) -> dict:
    """Assemble the report dict of ``version`` (see the module docstring for its sections).

    Args:
        version: the model version.
        run: the run that produced it (None for version 1).
        requests: the requests that run served.
        experiment: the ledger's experiment config.
        oblivio_version: written into the report.
        forgotten_requests: every request whose samples this version has forgotten (this run's and earlier
            runs'); default: ``requests``.
    """
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
            sample_agreement=_num(m.get("sample_agreement")),
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
    forgotten = forgotten_requests if forgotten_requests is not None else requests
    served = {r.id for r in requests}
    if run is None:
        verdict = {
            "answer": "not measured",
            "reference": "original",
            "estimated": False,
            "sentence": "This is the original model: nothing has been forgotten yet.",
        }
    else:
        verdict = noise_floor_verdict({**m, "n_forget": m.get("n_forget", run.n_forget)})
    hparams, defaults_known = hparam_rows(run.method, run.hparams) if run is not None else ([], False)
    return {
        "title": f"oblivio verification report: model version {version.id}"
        + (" (no-op: model unchanged)" if m.get("unchanged") else ""),
        "headline": headline,
        "verdict": verdict,
        "forgotten": {
            "samples": len(version.forgotten_ids),
            "requests": [
                {**{k: v for k, v in r.to_dict().items() if k != "sample_ids"}, "this_run": r.id in served}
                for r in forgotten
            ],
            "this_run_samples": sum(len(r.sample_ids) for r in requests),
        },
        "cost_summary": cost_summary(m, method_info=m.get("method_info")) if run is not None else None,
        "per_example": m.get("per_example"),
        "generated_at": utcnow().isoformat(timespec="seconds") + "Z",
        "oblivio_version": oblivio_version,
        "experiment": experiment,
        "version": version.to_dict(),
        "run": run.to_dict() if run is not None else None,
        "hparams": hparams,
        "hparams_defaults_known": defaults_known,
        "requests": [{k: v for k, v in r.to_dict().items() if k != "sample_ids"} for r in requests],
        "n_forgotten_total": len(version.forgotten_ids),
        "accuracy": accuracy,
        "alignment": alignment,
        "membership_inference": mia,
        "cost": cost,
        "method_info": m.get("method_info", {}),
        "metrics": m,
    }


def write_report(report: dict, out_dir: str | os.PathLike, *, pdf: bool = False) -> tuple[Path, Path]:
    """Write ``report-v<ID>.json`` and ``report-v<ID>.html`` atomically, mode 0644 (reports are meant to be
    shared; the ledger database and model files stay private), and with ``pdf`` also ``report-v<ID>.pdf``
    (headless Chromium, :func:`oblivio.experiments.publish.export_pdf`); returns the JSON and HTML paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"report-v{report['version']['id']}"
    json_path = write_report_file(out / f"{stem}.json", json.dumps(report, indent=2, sort_keys=True, allow_nan=False))
    html_path = write_report_file(out / f"{stem}.html", render_html(report))
    if pdf:
        export_pdf(html_path)
    return json_path, html_path
