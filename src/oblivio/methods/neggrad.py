"""Negative gradient (gradient ascent on ``D_f``), SPEC §5."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F
from torch import nn

from ..training.loop import fit
from .base import UnlearningData, UnlearningMethod, register_method
from .common import OptimizerName, check_hparams, make_loader, make_optimizer


def ascent_loss(model: nn.Module, batch) -> tuple:
    """Minus the cross-entropy on a forget batch (minimising it climbs the forget loss)."""
    ce = F.cross_entropy(model(batch.x), batch.y)
    return -ce, {"forget_ce": float(ce.detach())}


@register_method("neggrad")
@dataclass(kw_only=True)
class NegGrad(UnlearningMethod):
    """Gradient ascent on the forget set: maximise its cross-entropy, starting from the original model.

    Nothing holds the rest of the model in place, so too many steps destroy retain accuracy too; that is the known
    weakness this baseline illustrates (see ``neggrad+``).

    Args:
        epochs: passes over ``D_f``.
        lr: learning rate.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        batch_size: mini-batch size.
        optimizer: ``"sgd"`` or ``"adam"``.
        grad_clip: clip the global gradient norm to this value (``None``: no clipping). The ascent term is unbounded,
            so without it a few steps can blow the weights up (ours; the sources do not clip).

    Example:
        >>> from oblivio.methods import unlearn  # doctest: +SKIP
        >>> m_u = unlearn("neggrad", original, forget=f, retain=r, epochs=5, lr=0.01)  # doctest: +SKIP
    """

    source: ClassVar[str] = ("Golatkar et al. 2020 / Jia et al. 2023 (GA baseline): SGD momentum 0.9, weight decay "
                             "5e-4, 5 epochs over D_f; lr 0.01, batch 32 and gradient-norm clip 1 tuned on sklearn "
                             "digits "
                             "(the CIFAR value, about 1e-4 with batch 256 over thousands of samples, takes almost no "
                             "step on a 100-sample forget set)")

    epochs: int = 5
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 32
    optimizer: OptimizerName = "sgd"
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        check_hparams(self)

    def _unlearn(self, model: nn.Module, data: UnlearningData, *, seed: int, progress: bool) -> nn.Module:
        loader = make_loader(data.forget, model, batch_size=self.batch_size, seed=seed)
        opt = make_optimizer(model.parameters(), optimizer=self.optimizer, lr=self.lr, momentum=self.momentum,
                             weight_decay=self.weight_decay)
        result = fit(model, loader, epochs=self.epochs, optimizer=opt, loss_fn=ascent_loss, grad_clip=self.grad_clip,
                     progress=progress, desc="neggrad")
        self.info.update(epochs=result.epochs_run, history=result.history)
        return model
