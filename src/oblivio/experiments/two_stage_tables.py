"""The two-stage paper's tables (Kim & Woo 2022, Tables 2-5) from result rows.

The saving point, neutralisation epochs and neutralised forget accuracy are read from the method's ``info`` under
the keys that :class:`oblivio.methods.two_stage.TwoStageInfo` declares, and the mislabel mode from the
hyper-parameter ``mislabel``; nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..methods.two_stage import TwoStageInfo
from ..metrics.tta import TTA_VIEWS
from .table import (
    GOLD_REFERENCE,
    STD_NOTE,
    Table,
    _finite,
    _forget_ratio,
    _gold_values,
    _m,
    _methods,
    _scenario_order,
    fmt_mean_std,
)


def two_stage_info(row: dict) -> TwoStageInfo:
    """The ``info`` of a two-stage row, typed by the keys the method declares (empty for other methods' rows)."""
    return row.get("info") or {}  # type: ignore[return-value]


def two_stage_accuracy_table(rows: Sequence[dict]) -> Table:
    """Two-stage Table 2: accuracy of the retrained (unlearned) model vs the scratch (gold) model."""
    body = []
    for sc in _scenario_order(rows):
        sr = [r for r in rows if r["scenario"] == sc]
        for m in _methods(sr):
            mr = [r for r in sr if r["method"] == m]
            body.append(
                [sc, m]
                + [fmt_mean_std(_m(r, f"acc_{s}") for r in mr) for s in ("test", "retain", "forget")]
                + [fmt_mean_std(_gold_values(mr, f"gold_acc_{s}")) for s in ("test", "retain", "forget")]
            )
    return Table(
        "two-stage-table2",
        "Two-stage Table 2: accuracy of the retrained model vs a model trained from scratch",
        [
            "Scenario",
            "Method",
            "ACC_test (%)",
            "ACC_Dr (%)",
            "ACC_Df (%)",
            "Scratch ACC_test (%)",
            "Scratch ACC_Dr (%)",
            "Scratch ACC_Df (%)",
        ],
        body,
        notes=[STD_NOTE, "Scratch = the gold model (same recipe on D_r only)."],
    )


def saving_point_table(rows: Sequence[dict]) -> Table:
    """Two-stage Table 3: epochs to the saving point of the retraining stage vs the scratch model's epochs."""
    body = []
    for sc in _scenario_order(rows):
        sr = [r for r in rows if r["scenario"] == sc]
        for m in _methods(sr):
            if m == "gold":
                continue
            mr = [r for r in sr if r["method"] == m]
            sp = [two_stage_info(r).get("saving_point") for r in mr]
            if not _finite(sp):
                continue
            body.append(
                [
                    sc,
                    m,
                    fmt_mean_std(sp, scale=1, digits=1),
                    fmt_mean_std(((r.get("cost") or {}).get("gold_epochs") for r in mr), scale=1, digits=0),
                    fmt_mean_std(((r.get("cost") or {}).get("rte") for r in mr), scale=1, digits=3),
                ]
            )
    return Table(
        "two-stage-table3",
        "Two-stage Table 3: epochs to the saving point",
        ["Scenario", "Method", "Epochs to saving point", "Scratch epochs (recipe)", "RTE (× retraining time)"],
        body,
        notes=[
            STD_NOTE,
            "Read from the method's info key saving_point. The scratch column is the "
            "gold model's full recipe (it keeps no saving point); "
            "oblivio.experiments.analyses.saving_point_comparison trains a scratch model with the "
            "same best-on-validation rule.",
        ],
    )


def tta_mislabel_table(rows: Sequence[dict]) -> Table:
    """Two-stage Table 4: forget-set accuracy under test-time augmentation, minimum vs maximum mislabel."""
    body = []
    chance = _finite(_m(r, "chance") for r in rows)
    for sc in _scenario_order(rows):
        sr = [r for r in rows if r["scenario"] == sc and _m(r, "tta_identity") is not None]
        for m in [m for m in _methods(sr) if m != "gold"]:
            mr = [r for r in sr if r["method"] == m]
            hp = mr[0].get("hparams") or {}
            mode = str(hp["mislabel"]) if "mislabel" in hp else ""
            body.append([sc, m, mode] + [fmt_mean_std(_m(r, f"tta_{v}") for r in mr) for v in TTA_VIEWS])
        if sr:
            body.append([sc, GOLD_REFERENCE, ""] + [fmt_mean_std(_gold_values(sr, f"gold_tta_{v}")) for v in TTA_VIEWS])
    notes = [STD_NOTE]
    if chance:
        notes.append(f"Chance = {100 * chance[0]:.1f}%.")
    return Table(
        "two-stage-table4",
        "Two-stage Table 4: ACC_Df under test-time augmentation (min vs max mislabel)",
        ["Scenario", "Method", "Mislabel", "ACC_Df (%)", "h-flip (%)", "v-flip (%)", "centre crop 90% (%)"],
        body,
        notes=notes,
    )


def neutralisation_table(rows: Sequence[dict]) -> Table:
    """Two-stage Table 5: neutralisation epochs against the forget ratio."""
    body = []
    for sc in _scenario_order(rows):
        sr = [r for r in rows if r["scenario"] == sc]
        for m in _methods(sr):
            mr = [r for r in sr if r["method"] == m]
            ne = [two_stage_info(r).get("neutralisation_epochs") for r in mr]
            if not _finite(ne):
                continue
            ratio = _forget_ratio(mr[0])
            body.append(
                [
                    sc,
                    f"{100 * ratio:.1f}" if ratio is not None else "n/a",
                    m,
                    fmt_mean_std(ne, scale=1),
                    fmt_mean_std(two_stage_info(r).get("forget_acc_neutralised") for r in mr),
                    fmt_mean_std(_m(r, "acc_forget") for r in mr),
                ]
            )
    return Table(
        "two-stage-table5",
        "Two-stage Table 5: neutralisation epochs vs forget ratio",
        [
            "Scenario",
            "Forget ratio (%)",
            "Method",
            "Neutralisation epochs",
            "ACC_Df neutralised (%)",
            "ACC_Df final (%)",
        ],
        body,
        notes=[STD_NOTE, "Read from the method's info key neutralisation_epochs."],
    )


__all__ = [
    "neutralisation_table",
    "saving_point_table",
    "tta_mislabel_table",
    "two_stage_accuracy_table",
    "two_stage_info",
]
