"""Request shapes where TMU's twin estimate does not transfer, detected before the aligned step runs (issue 23).

TMU estimates how many forget images a retrained model gets wrong from a *twin problem*: unseen images memorised by a
twin model that still trains on ``D``. That stands in for the request only while the request leaves its classes
mostly intact. Measured failures (docs/tmu.md, "No catastrophic answers"): on sklearn digits ``class-subset:0:100``
(about three quarters of the class) TMU drove ``D_f`` to 0% where gold keeps 93%; on Fashion-MNIST at 80% of a class
it went the other way (δ 34). Three checks, each a reason:

* **class share**: the request removes more than ``max_class_share`` of some class's training images (the gold model
  loses that class's support, the twin model does not);
* **twin problem made up**: most twin images are augmented copies (the holdout has too few real images of the class),
  so the twin error rate is that of distorted images, not of unseen ones (on digits at 40% of a class it put the
  error rate near 50% where gold's is under 10%);
* **twin target not reached**: a twin model never memorised its twin set as ``M_o`` memorised ``D_f``, so the twin
  problem does not mimic the request;
* **twin spread**: the disjoint twin sets disagree about the error rate by more than ``max_twin_spread`` (the estimate
  is too uncertain to act on).

Example:
    >>> import torch
    >>> from oblivio.data import ImageDataset
    >>> d = ImageDataset(torch.rand(10, 1, 4, 4), torch.tensor([0] * 8 + [1] * 2), ("a", "b"))
    >>> class_shares(d.subset([0, 1, 2, 3, 4, 5]), d.subset([6, 7, 8, 9]))
    {0: 0.75}
    >>> shape_reasons(d.subset([0, 1, 2, 3, 4, 5]), d.subset([6, 7, 8, 9]), max_class_share=0.5)
    ['the request removes 75% of class 0 (a), above 50%: the twin problem cannot mimic a class losing its support']
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from ...data.base import ImageDataset
from ...models.adapters import unwrap
from ..base import UnlearningData, UnlearningError, create_method

__all__ = ["GUARD_MODES", "MAX_AUGMENTED_SHARE", "class_shares", "guarded_run", "shape_reasons", "twin_reasons"]

log = logging.getLogger("oblivio.methods.tmu")

GuardMode = Literal["fallback", "refuse", "off"]
GUARD_MODES = ("fallback", "refuse", "off")


def class_shares(forget: ImageDataset, retain: ImageDataset) -> dict[int, float]:
    """For each class in ``D_f``: the share of that class's training images (``D_r ∪ D_f``) the request removes."""
    n_cls = forget.num_classes
    f = torch.bincount(forget.labels.long(), minlength=n_cls)
    r = torch.bincount(retain.labels.long(), minlength=n_cls)
    return {int(c): float(f[c] / (f[c] + r[c])) for c in torch.nonzero(f).squeeze(1).tolist()}


def shape_reasons(forget: ImageDataset, retain: ImageDataset, *, max_class_share: float) -> list[str]:
    """Why the request's shape is outside what TMU's twin estimate covers (empty: inside)."""
    out = []
    for c, share in sorted(class_shares(forget, retain).items(), key=lambda kv: -kv[1]):
        if share > max_class_share:
            out.append(
                f"the request removes {share:.0%} of class {c} ({forget.classes[c]}), above {max_class_share:.0%}: "
                "the twin problem cannot mimic a class losing its support"
            )
            break
    return out


MAX_AUGMENTED_SHARE = 0.5
"""Above this share of augmented copies in the twin sets, the twin problem does not stand for unseen images."""


def twin_reasons(
    reached: Sequence[bool],
    twin_labels: torch.Tensor,
    n_twins: int,
    *,
    max_twin_spread: float,
    augmented: Sequence[int] | None = None,
) -> list[str]:
    """Why the twin estimate is not to be acted on (empty: it is): twin sets mostly augmented (``augmented``: copies
    per twin set), a twin target not reached, or the disjoint twin sets' gold error rates spread by more than
    ``max_twin_spread``."""
    out = []
    n_tw = int(torch.as_tensor(twin_labels).numel())
    if augmented is not None and n_tw and sum(augmented) / n_tw > MAX_AUGMENTED_SHARE:
        out.append(
            f"{sum(augmented)} of {n_tw} twin images are augmented copies (the holdout has too few real images of "
            "the class): the twin problem does not stand for unseen images"
        )
    if not all(reached):
        out.append(
            f"{sum(not r for r in reached)} of {len(reached)} twin model(s) never memorised their twin set as M_o "
            "memorised D_f: the twin problem does not mimic this request"
        )
    labels = torch.as_tensor(twin_labels).double()
    if n_twins > 1 and labels.numel() >= n_twins:
        rates = [float(1 - part.mean()) for part in labels.chunk(n_twins)]
        spread = max(rates) - min(rates)
        if spread > max_twin_spread:
            out.append(
                f"the {n_twins} twin sets put the error rate between {min(rates):.0%} and {max(rates):.0%} (spread "
                f"{spread:.0%} > {max_twin_spread:.0%}): the estimate is too uncertain to act on"
            )
    return out


def guarded_run(
    tmu: Any, model: nn.Module, data: UnlearningData, reasons: list[str], *, seed: int, progress: bool
) -> nn.Module:
    """The guard's answer to a request TMU's estimate does not cover (``tmu.guard``): refuse, naming the fallback
    method, or run it in place of TMU; ``tmu.info`` records why (``guard_reason``) and what ran (``guard_fallback``,
    ``fallback_info``)."""
    info = tmu.info
    info.update(guard_triggered=True, guard_reason="; ".join(reasons))
    if tmu.guard == "refuse":
        raise UnlearningError(
            f"tmu does not answer this request: {reasons[0]}; use method {tmu.guard_fallback!r} (or tmu with "
            "guard='off' to run it anyway)"
        )
    log.warning("tmu: %s; running %s instead (guard='fallback')", "; ".join(reasons), tmu.guard_fallback)
    fallback = create_method(tmu.guard_fallback)
    out = fallback(
        unwrap(model),
        forget=data.forget,
        retain=data.retain,
        holdout=data.holdout if fallback.needs_holdout else None,
        seed=seed,
        progress=progress,
        inplace=True,
    )
    info.update(
        guard_fallback=tmu.guard_fallback,
        fallback_info={k: v for k, v in fallback.info.items() if isinstance(v, (int, float, str, bool))},
    )
    return out
