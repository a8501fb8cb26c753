"""Held-out evidence for TMU's decision (issue 23): what the training run itself says about each training image.

TMU's default decides which forget images a retrained model would get wrong from ``M_o``'s own margin and the twin
problem's share. Both are read *after* ``M_o`` has memorised ``D_f``. Two kinds of evidence are gathered without
that bias, once per original model, and every later request reads them:

* **K-fold held-out outputs**: K models, each trained once with the original's recipe on ``D`` without one fold; an
  image's held-out output comes from the model that never saw it, a draw from nearly the gold distribution of a
  request that removes it (``Experiment.kfold_evidence``; cost: ``K − 1`` trainings, amortised over requests).
* **Training dynamics** of ``M_o`` (:class:`~oblivio.training.dynamics.TrainingDynamics`): area under the margin,
  learned epoch and forgetting events, recorded from the training steps' own logits at no extra cost.

:class:`HeldOutEvidence` holds them by sample id; :func:`evidence_scores` turns them into a per-image score, higher =
more likely that a retrained model still classifies the image correctly ("easy").

Example:
    >>> import torch
    >>> ev = HeldOutEvidence(ids=torch.tensor([5, 6, 7]), kfold_logits=torch.tensor([[3., 0.], [0., 2.], [1., 0.]]))
    >>> evidence_scores(ev, "kfold", ids=torch.tensor([6, 5]), labels=torch.tensor([0, 0])).tolist()
    [-2.0, 3.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from ...training.dynamics import DynamicsSummary

__all__ = [
    "EVIDENCE_SCORES",
    "EvidenceError",
    "HeldOutEvidence",
    "evidence_scores",
    "kfold_soft_targets",
    "needed_evidence",
]

EvidenceScore = Literal["kfold", "aum", "learned", "forgetting", "kfold+aum"]
EVIDENCE_SCORES: tuple[str, ...] = ("kfold", "aum", "learned", "forgetting", "kfold+aum")


class EvidenceError(ValueError):
    """The evidence a TMU variant reads is missing (the message names how to provide it)."""


@dataclass
class HeldOutEvidence:
    """Per training image, evidence gathered outside the request (by sample id).

    Attributes:
        ids: ``[N]`` sample ids the K-fold logits are given for (sorted or not).
        kfold_logits: ``[N, C]`` held-out logits: each from the K-fold model that did not train on the image.
        folds: K.
        dynamics: the original's training dynamics (its own ids).
    """

    ids: torch.Tensor | None = None
    kfold_logits: torch.Tensor | None = None
    folds: int | None = None
    dynamics: DynamicsSummary | None = None

    def kfold_for(self, ids: torch.Tensor) -> torch.Tensor:
        """The held-out logits of the given sample ids, in that order."""
        if self.kfold_logits is None or self.ids is None:
            raise EvidenceError(
                "this TMU variant reads K-fold held-out outputs: set method.evidence = HeldOutEvidence(ids=..., "
                "kfold_logits=...) (the experiments layer: Experiment.kfold_evidence(seed=..., folds=K))"
            )
        pos = {int(i): p for p, i in enumerate(self.ids.tolist())}
        missing = [int(i) for i in torch.as_tensor(ids).tolist() if int(i) not in pos]
        if missing:
            raise EvidenceError(f"no K-fold held-out output for sample ids {missing[:5]} (of {len(missing)})")
        return self.kfold_logits[torch.tensor([pos[int(i)] for i in torch.as_tensor(ids).tolist()])].double()

    def dynamics_for(self, ids: torch.Tensor) -> DynamicsSummary:
        if self.dynamics is None:
            raise EvidenceError(
                "this TMU variant reads the original's training dynamics: set method.evidence = "
                "HeldOutEvidence(dynamics=...) (record them with oblivio.training.TrainingDynamics while the original "
                "trains; the experiments layer: Experiment.original_dynamics(seed=...))"
            )
        return self.dynamics.select(torch.as_tensor(ids))


def _margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    y = torch.as_tensor(labels).long().reshape(-1, 1)
    z = logits.double()
    return z.gather(1, y).squeeze(1) - z.scatter(1, y, float("-inf")).max(1).values


def _rank01(x: torch.Tensor) -> torch.Tensor:
    """Average ranks scaled to [0, 1] (ties share their mean rank)."""
    x = x.double()
    order = torch.argsort(x, stable=True)
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(x.numel(), dtype=torch.float64)
    for v in torch.unique(x):  # average the ranks of ties
        m = x == v
        if int(m.sum()) > 1:
            ranks[m] = ranks[m].mean()
    return ranks / max(1, x.numel() - 1)


def evidence_scores(evidence: HeldOutEvidence, kind: str, *, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """A score per image (higher = more likely easy) from ``evidence``.

    * ``"kfold"``: the held-out model's true-class margin (negative: it misclassifies the image);
    * ``"aum"``: the area under the margin of ``M_o``'s training;
    * ``"learned"``: minus the epoch from which ``M_o`` kept the image right;
    * ``"forgetting"``: minus ``M_o``'s forgetting events on it;
    * ``"kfold+aum"``: the mean of the two scores' ranks (scale-free).
    """
    if kind not in EVIDENCE_SCORES:
        raise ValueError(f"unknown evidence score {kind!r}; use one of {', '.join(EVIDENCE_SCORES)}")
    if kind == "kfold":
        return _margin(evidence.kfold_for(ids), labels)
    if kind == "kfold+aum":
        k = _margin(evidence.kfold_for(ids), labels)
        a = evidence.dynamics_for(ids).aum.double()
        return (_rank01(k) + _rank01(a)) / 2
    d = evidence.dynamics_for(ids)
    if kind == "aum":
        return d.aum.double()
    if kind == "learned":
        return -d.learned_epoch.double()
    return -d.forgetting_events.double()


def kfold_soft_targets(evidence: HeldOutEvidence, ids: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
    """The held-out models' output distributions ``softmax(z / T)`` for the given ids, ``[n, C]``: what a model that
    never saw each image predicts for it (TMU's soft target remedy, issue 23)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return (evidence.kfold_for(ids) / temperature).softmax(1).float()


def needed_evidence(tmu: Any) -> tuple[str, ...]:
    """Which held-out evidence a TMU configuration reads: ``"kfold"`` (K-fold scores, the K-fold count, held-out
    targets) and / or ``"dynamics"`` (the training-dynamics scores)."""
    need = set()
    if tmu.hard_score in ("kfold", "kfold+aum") or tmu.hard_count == "evidence":
        need.add("kfold")
    if tmu.hard_targets == "kfold-soft" or getattr(tmu, "easy_targets", "label") == "kfold-soft":
        need.add("kfold")
    if tmu.hard_score in ("aum", "learned", "forgetting", "kfold+aum"):
        need.add("dynamics")
    return tuple(sorted(need))
