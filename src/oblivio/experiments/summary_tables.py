"""Tables over every method: the headline summary, NeurIPS forget quality, alignment with bootstrap CIs, and
paired comparisons of one method against the others."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .forget_quality_rows import forget_quality_from_rows
from .table import CI_NOTE, GOLD_REFERENCE, GOLD_SEED, STD_NOTE, Table, _m, _methods, fmt_mean_std

SUMMARY_METRICS: tuple[tuple[str, str, float, int], ...] = (
    ("ACC_Dr (%)", "acc_retain", 100.0, 1),
    ("ACC_Df (%)", "acc_forget", 100.0, 1),
    ("ACC_test (%)", "acc_test", 100.0, 1),
    ("δ (points)", "delta_forget", 100.0, 1),
    ("Sample agreement (%)", "sample_agreement", 100.0, 1),
    ("Act. dist. L2", "activation_distance_l2", 1.0, 3),
    ("JS", "js_divergence", 1.0, 4),
    ("MIA loss-LR acc (%)", "mia_loss_lr_acc", 100.0, 1),
    (f"{GOLD_REFERENCE} MIA loss-LR acc (%)", "gold_mia_loss_lr_acc", 100.0, 1),
    ("SalUn MIA-efficacy (%)", "mia_salun_efficacy", 100.0, 1),
    (f"{GOLD_REFERENCE} SalUn MIA-efficacy (%)", "gold_mia_salun_efficacy", 100.0, 1),
)


def summary_table(rows: Sequence[dict]) -> Table:
    """One row per method over every scenario and seed: accuracies, gaps to gold, named MIA variants, cost."""
    body = []
    cols = ["Method", "Runs"] + [c[0] for c in SUMMARY_METRICS] + ["Method time (s)", "RTE (×)"]
    for m in _methods(rows):
        mr = [r for r in rows if r["method"] == m]
        line = [m, str(len(mr))]
        line += [fmt_mean_std((_m(r, k) for r in mr), scale=s, digits=d) for _, k, s, d in SUMMARY_METRICS]
        line += [
            fmt_mean_std(((r.get("cost") or {}).get("method_seconds") for r in mr), scale=1, digits=1),
            fmt_mean_std(((r.get("cost") or {}).get("rte") for r in mr), scale=1, digits=3),
        ]
        body.append(line)
    return Table(
        "summary",
        "Summary over all scenarios and seeds",
        cols,
        body,
        notes=[
            STD_NOTE,
            "Aligned = equal to gold, not lower: compare each MIA value with its gold reference column. "
            "RTE = method seconds / gold training seconds.",
        ],
    )


def forget_quality_table(rows: Sequence[dict]) -> Table:
    """NeurIPS 2023 forget quality ``F`` and final score per method (rows with stored ``scores``)."""
    res = forget_quality_from_rows(rows)
    body = [
        [
            r.scenario,
            r.method,
            str(r.n_models),
            f"{r.forget_quality:.4f}",
            f"{r.final_score:.4f}",
            f"{100 * r.ra_u:.1f} / {100 * r.ra_r:.1f}",
            f"{100 * r.ta_u:.1f} / {100 * r.ta_r:.1f}",
            f"{np.median(r.epsilons):.2f}",
        ]
        for r in res
    ]
    return Table(
        "forget-quality",
        "NeurIPS 2023 forget quality (N unlearned vs N retrained models)",
        ["Scenario", "Method", "N", "F", "Final score", "RA_u / RA_r (%)", "TA_u / TA_r (%)", "median ε"],
        body,
        notes=[
            "F is the mean per-example score 2^-floor(ε/0.5) (SPEC §8); even a perfect unlearner scores "
            "F ≈ 0.18-0.19. Final score = F × RA_u/RA_r × TA_u/TA_r. A 'gold' row compares two sets of "
            "gold models (the ceiling)."
        ],
    )


def alignment_ci_table(rows: Sequence[dict]) -> Table:
    """Per method: mean and 95% bootstrap CI of every alignment measure, the original model and gold as references.

    Measures (:data:`oblivio.experiments.stats.ALIGNMENT_MEASURES`): δ, sample agreement and κ with gold on
    ``D_f``, L2 activation distance, and each MIA's gap to the gold model's own value; plus ``ACC_test`` and
    ``ACC_Dr``. A row "original (no unlearning)" holds ``M_o``'s δ, sample agreement and (rows since issue 15)
    activation distance (doing nothing).
    """
    from .stats import ALIGNMENT_MEASURES, ORIGINAL_METHOD, mean_ci, original_rows

    measures = list(ALIGNMENT_MEASURES)
    cols = ["Method", "Runs"] + [ms.label for ms in measures] + ["ACC_test (%)", "ACC_Dr (%)"]
    body: list[list[str]] = []
    if not any(_m(r, "sample_agreement") is not None for r in rows):  # rows written before sample agreement
        return Table("alignment-ci", "Alignment with gold per method: mean [95% bootstrap CI]", cols, body)
    for m in _methods(rows):
        mr = [r for r in rows if r["method"] == m]
        line = [m, str(len(mr))]
        line += [mean_ci(ms.value(r) for r in mr).format(scale=ms.scale, digits=ms.digits) for ms in measures]
        line += [mean_ci(_m(r, k) for r in mr).format(scale=100) for k in ("acc_test", "acc_retain")]
        body.append(line)
    orig = original_rows(rows)
    if orig:
        line = [ORIGINAL_METHOD, str(len(orig))]
        line += [mean_ci(ms.value(r) for r in orig).format(scale=ms.scale, digits=ms.digits) for ms in measures]
        line += [mean_ci(_m(r, k) for r in orig).format(scale=100) for k in ("acc_test", "acc_retain")]
        body.append(line)
    return Table(
        "alignment-ci",
        "Alignment with gold per method: mean [95% bootstrap CI]",
        cols,
        body,
        notes=[
            CI_NOTE,
            "Sample agreement = share of D_f on which M_u and M_g are both right or both wrong; "
            "κ = Cohen's κ of those right/wrong outcomes (0 = chance at the same accuracies). MIA columns "
            "are gaps to the gold model's value (aligned = equal to gold, not lower). 'gold' is a second "
            "gold model (the noise floor); 'tmu.random-control' is TMU's aligned step with its hard set "
            "drawn at random at the decision rule's own count.",
        ],
    )


def paired_comparison_table(rows: Sequence[dict], *, method: str = "tmu") -> Table:
    """``method`` against every other method, paired per (forget request, seeds): difference, CI, Wilcoxon p.

    Empty when ``method`` has no rows. The verdict says ``"<method> better"`` / ``"<method> worse"`` only where the
    two-sided Wilcoxon signed-rank p is below 0.05, else ``"not significant"``.
    """
    from .stats import ORIGINAL_METHOD, compare, original_rows, wins_ties_losses

    if not any(r.get("method") == method for r in rows):
        return Table("paired", f"Paired comparisons: {method} vs each method", [], [])
    extra = original_rows(rows)  # "do nothing" as a pseudo-method (δ, sample agreement, activation distance)
    comps = compare(
        list(rows) + extra,
        method,
        others=[m for m in _methods(rows) if m != method] + ([ORIGINAL_METHOD] if extra else []),
    )
    cols = ["vs", "Measure", "Pairs", f"Mean diff ({method} − other) [95% CI]", "Wilcoxon p", "Verdict"]
    body: list[list[str]] = []
    bold: set[tuple[int, int]] = set()
    for c in comps:
        r = c.result
        diff = (
            f"{r.mean_diff * c.measure.scale:+.{c.measure.digits}f} [{r.low * c.measure.scale:+.{c.measure.digits}f},"
            f" {r.high * c.measure.scale:+.{c.measure.digits}f}]"
            if math.isfinite(r.low)
            else f"{r.mean_diff * c.measure.scale:+.{c.measure.digits}f}"
        )
        verdict = c.verdict if c.verdict == "not significant" else f"{method} {c.verdict}"
        if c.verdict != "not significant":
            bold.add((len(body), 5))
        body.append([c.other, c.measure.label, str(r.n), diff, f"{r.p_value:.3g}", verdict])
    wtl = wins_ties_losses(comps)
    notes = [
        "Pairs = runs of both methods on the same forget request with the same seeds. Direction: lower δ, "
        "activation distance and MIA gaps, higher sample agreement and κ are closer to gold. Verdicts need "
        "p < 0.05 (two-sided Wilcoxon signed-rank, zero differences dropped: zero_method 'wilcox'); δ and "
        "sample agreement are compared on their grid (counts of D_f images, so equal counts are ties, not float "
        "noise); the CI is a 95% percentile bootstrap of the mean difference."
    ]
    for key, word in (("better", "wins"), ("not significant", "ties (not significant)"), ("worse", "loses")):
        items = [GOLD_SEED + w[len("gold") :] if w.startswith("gold: ") else w for w in wtl[key]]
        notes.append(f"{method} {word}: " + ("; ".join(items) if items else "none") + ".")
    return Table("paired", f"Paired comparisons: {method} vs each method", cols, body, bold, notes)


__all__ = ["SUMMARY_METRICS", "alignment_ci_table", "forget_quality_table", "paired_comparison_table", "summary_table"]
