"""The gold-distribution table (issue 23): each method against G gold models instead of one gold draw.

Reads what the runner writes with ``EvalOptions(gold_models=G)``: ``expected_agreement`` (E),
``expected_agreement_best`` (E*), ``delta_mean_gold`` and ``activation_distance_mean_gold_l2`` per row, and the
original's ``original_*`` copies (:func:`oblivio.experiments.stats.original_rows`). The ``gold`` pseudo-method's
second gold model is outside the G, so its row is the held-out gold: the floor a retrained model reaches.
"""

from __future__ import annotations

from collections.abc import Sequence

from .stats import ORIGINAL_METHOD, mean_ci, original_rows
from .table import CI_NOTE, Table, _m, _methods


def gold_distribution_table(rows: Sequence[dict]) -> Table:
    """Per method: E, the gap E* − E, δ to the mean gold accuracy, the activation distance to the gold models' mean
    output (mean [95% bootstrap CI] over units); the original (doing nothing), the held-out gold and E* as references,
    and the protocol's headroom E* − E(original)."""
    rows = [r for r in rows if r.get("status", "ok") == "ok" and _m(r, "expected_agreement") is not None]
    cols = [
        "Method",
        "Runs",
        "E: expected agreement (%)",
        "E* − E (points)",
        "δ to mean gold (points)",
        "act. distance to mean gold L2",
    ]
    if not rows:
        return Table("gold-distribution", "Alignment against the gold distribution (G gold models)", cols, [])
    orig = original_rows(rows)
    body = []
    for name, mr in [*((m, [r for r in rows if r["method"] == m]) for m in _methods(rows)), (ORIGINAL_METHOD, orig)]:
        if not mr:
            continue
        e = [_m(r, "expected_agreement") for r in mr]
        gap = [
            _m(r, "expected_agreement_best") - _m(r, "expected_agreement")
            for r in mr
            if _m(r, "expected_agreement_best") is not None and _m(r, "expected_agreement") is not None
        ]
        body.append(
            [
                f"{name} (held-out gold)" if name == "gold" else name,
                str(len(mr)),
                mean_ci(e).format(scale=100),
                mean_ci(gap).format(scale=100),
                mean_ci(_m(r, "delta_mean_gold") for r in mr).format(scale=100),
                mean_ci(_m(r, "activation_distance_mean_gold_l2") for r in mr).format(digits=3),
            ]
        )
    best = [_m(r, "expected_agreement_best") for r in orig]
    body.append(["E* (best possible: right where most golds are)", str(len(orig)), mean_ci(best).format(scale=100)])
    body[-1] += ["", "", ""]
    headroom = [
        _m(r, "expected_agreement_best") - _m(r, "expected_agreement")
        for r in orig
        if _m(r, "expected_agreement_best") is not None and _m(r, "expected_agreement") is not None
    ]
    gs = sorted({int(_m(r, "gold_models")) for r in rows if _m(r, "gold_models")})
    return Table(
        "gold-distribution",
        "Alignment against the gold distribution (G gold models)",
        cols,
        body,
        notes=[
            CI_NOTE,
            f"G = {', '.join(map(str, gs))} gold models per unit (seeds gold + 1000·j). E = mean over D_f of p_i where "
            "the model is right, 1 − p_i where it is wrong (p_i: share of the G golds right on image i); E* = mean of "
            "max(p_i, 1 − p_i). The held-out gold is a further gold seed outside the G: the floor a retrained model "
            f"reaches. Headroom of the protocol, E* − E(doing nothing): {mean_ci(headroom).format(scale=100)} points.",
        ],
    )


__all__ = ["gold_distribution_table"]
