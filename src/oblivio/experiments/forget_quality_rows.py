"""NeurIPS 2023 forget quality (SPEC §8) from result rows: group the rows that carry ``scores`` and score each group.

Read by the report (:mod:`oblivio.experiments.summary_tables`) and by the benchmark that writes those rows
(:mod:`oblivio.experiments.forget_quality_run`); it needs no runner, so the report reads rows without importing one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..metrics.forget_quality import final_score, forget_quality


@dataclass
class ForgetQualityResult:
    """Forget quality of one method on one scenario.

    Attributes:
        method: the method's display label.
        scenario: the forget request.
        n_models: N, models per side.
        forget_quality: ``F``, the mean per-example score ``H``.
        final_score: ``F × (RA_u / RA_r) × (TA_u / TA_r)``.
        epsilons: per-example ε (length ``|D_f|``).
        ra_u, ra_r, ta_u, ta_r: mean retain / test accuracy of the unlearned and retrained models.
        rows: the result rows it was computed from.
    """

    method: str
    scenario: str
    n_models: int
    forget_quality: float
    final_score: float
    epsilons: np.ndarray
    ra_u: float
    ra_r: float
    ta_u: float
    ta_r: float
    rows: list[dict] = field(default_factory=list, repr=False)

    def as_row(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "scenario": self.scenario,
            "n_models": self.n_models,
            "forget_quality": self.forget_quality,
            "final_score": self.final_score,
            "ra_u": self.ra_u,
            "ra_r": self.ra_r,
            "ta_u": self.ta_u,
            "ta_r": self.ta_r,
            "median_epsilon": float(np.median(self.epsilons)) if self.epsilons.size else float("nan"),
        }


def forget_quality_from_rows(rows: Sequence[dict]) -> list[ForgetQualityResult]:
    """Group result rows that carry ``scores`` by (scenario, method) and compute F and the final score.

    The unlearned side is every row's ``scores.forget``; the retrained side is ``scores.gold_forget`` of the
    distinct gold seeds. Groups need at least 2 models per side.
    """
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("status", "ok") == "ok" and r.get("scores"):
            groups[(r["scenario"], r["method"])].append(r)
    out = []
    for (scenario, method), grp in groups.items():
        grp = sorted(grp, key=lambda r: (r["seeds"]["unlearn"], r["seeds"]["gold"]))
        golds: dict[Any, dict] = {}
        for r in grp:
            golds.setdefault(r["seeds"]["gold"], r)
        if len(grp) < 2 or len(golds) < 2:
            continue
        n = min(len(grp), len(golds))  # equal sides; a failed cell leaves one side short
        grp = grp[:n]
        gold_rows = [golds[s] for s in sorted(golds)][:n]
        u = np.asarray([r["scores"]["forget"] for r in grp], dtype=np.float64)
        g = np.asarray([r["scores"]["gold_forget"] for r in gold_rows], dtype=np.float64)
        res = forget_quality(u, g)
        ra_u = [r["metrics"]["acc_retain"] for r in grp]
        ta_u = [r["metrics"]["acc_test"] for r in grp]
        ra_r = [r["metrics"]["gold_acc_retain"] for r in gold_rows]
        ta_r = [r["metrics"]["gold_acc_test"] for r in gold_rows]
        out.append(
            ForgetQualityResult(
                method=method,
                scenario=scenario,
                n_models=n,
                forget_quality=float(res.forget_quality),
                final_score=float(final_score(res.forget_quality, ra_u, ra_r, ta_u, ta_r)),
                epsilons=np.asarray(res.epsilons),
                ra_u=float(np.mean(ra_u)),
                ra_r=float(np.mean(ra_r)),
                ta_u=float(np.mean(ta_u)),
                ta_r=float(np.mean(ta_r)),
                rows=grp,
            )
        )
    return out


__all__ = ["ForgetQualityResult", "forget_quality_from_rows"]
