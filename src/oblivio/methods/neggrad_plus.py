"""NegGrad+: descent on ``D_r`` and ascent on ``D_f`` at the same time (Kurmanji et al. 2023), SPEC §5."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F
from torch import nn

from ..data.loader import ZipLoader
from ..training.loop import fit
from .base import UnlearningData, UnlearningMethod, register_method
from .common import OptimizerName, check_hparams, make_loader, make_optimizer


@register_method("neggrad+")
@dataclass(kw_only=True)
class NegGradPlus(UnlearningMethod):
    """Each step: ``alpha · CE(D_r batch) − (1 − alpha) · CE(D_f batch)``.

    The retain set drives the epoch; the (small) forget set is cycled beside it, one forget batch per retain batch.

    Args:
        alpha: weight of the retain (descent) term; ``1 − alpha`` weighs the forget (ascent) term.
        epochs: passes over ``D_r``.
        lr: learning rate.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        batch_size: retain mini-batch size.
        forget_batch_size: forget mini-batch size.
        optimizer: ``"sgd"`` or ``"adam"``.
        grad_clip: clip the global gradient norm to this value (``None``: no clipping). The ascent term is unbounded,
            so without it a few steps can blow the weights up (ours; the sources do not clip).

    Example:
        >>> from oblivio.methods import unlearn  # doctest: +SKIP
        >>> m_u = unlearn("neggrad+", original, forget=f, retain=r, alpha=0.7)  # doctest: +SKIP
    """

    source: ClassVar[str] = ("Kurmanji et al. 2023 (SCRUB paper's NegGrad+ baseline: a weighted sum of the retain and "
                             "negated forget losses); SGD momentum 0.9, weight decay 5e-4; alpha 0.6, lr 0.01, 3 "
                             "epochs "
                             "and gradient-norm clip 1 tuned on sklearn digits (whole-class forget)")

    alpha: float = 0.6
    epochs: int = 3
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    forget_batch_size: int = 32
    optimizer: OptimizerName = "sgd"
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        check_hparams(self, alpha=(lambda v: 0 <= v <= 1, "in [0, 1]"),
                      forget_batch_size=(lambda v: int(v) == v and v >= 1, "an integer >= 1"))

    def loss(self, model: nn.Module, batch: dict) -> tuple:
        """``alpha · CE_r − (1 − alpha) · CE_f`` on a ``{"retain", "forget"}`` batch pair."""
        r, f = batch["retain"], batch["forget"]
        ce_r = F.cross_entropy(model(r.x), r.y)
        ce_f = F.cross_entropy(model(f.x), f.y)
        loss = self.alpha * ce_r - (1 - self.alpha) * ce_f
        return loss, {"retain_ce": float(ce_r.detach()), "forget_ce": float(ce_f.detach())}

    def _unlearn(self, model: nn.Module, data: UnlearningData, *, seed: int, progress: bool) -> nn.Module:
        loader = ZipLoader({"retain": make_loader(data.retain, model, batch_size=self.batch_size, seed=seed),
                            "forget": make_loader(data.forget, model, batch_size=self.forget_batch_size,
                                                  seed=seed + 1)}, primary="retain")
        opt = make_optimizer(model.parameters(), optimizer=self.optimizer, lr=self.lr, momentum=self.momentum,
                             weight_decay=self.weight_decay)
        result = fit(model, loader, epochs=self.epochs, optimizer=opt, loss_fn=self.loss, grad_clip=self.grad_clip,
                     progress=progress, desc="neggrad+")
        self.info.update(epochs=result.epochs_run, history=result.history)
        return model
