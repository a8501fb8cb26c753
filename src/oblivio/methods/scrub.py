"""SCRUB (Kurmanji et al. 2023, "Towards Unbounded Machine Unlearning"), SPEC §5.

The student starts as the original model ``M_o`` and a frozen copy of ``M_o`` is the teacher. Each epoch, while
``epoch < msteps``, a *max* pass over ``D_f`` raises the student's KL divergence from the teacher; then a *min* pass
over ``D_r`` lowers ``gamma · CE + alpha · KL`` so the student stays close to the teacher where it should.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..training.loop import fit
from .base import UnlearningData, UnlearningMethod, register_method
from .common import OptimizerName, Phases, check_hparams, frozen_copy, kd_loss, make_loader, make_optimizer


@register_method("scrub")
@dataclass(kw_only=True)
class Scrub(UnlearningMethod):
    """Alternate max-steps on ``D_f`` and min-steps on ``D_r`` with one optimiser.

    Args:
        epochs: total epochs (min pass every epoch).
        msteps: epochs that also run the max pass first (``epoch < msteps``).
        alpha: weight of the KL term in the min-steps.
        gamma: weight of the cross-entropy term in the min-steps.
        temperature: distillation temperature ``T`` (KL scaled by ``T²``).
        lr: learning rate.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        batch_size: retain (min-step) mini-batch size.
        forget_batch_size: forget (max-step) mini-batch size.
        optimizer: ``"sgd"`` or ``"adam"``.
        grad_clip: clip the global gradient norm to this value (``None``: no clipping); the max-steps are unbounded
            ascent (ours: without it the CPU-scale learning rate diverges).

    Example:
        >>> from oblivio.methods import unlearn  # doctest: +SKIP
        >>> m_u = unlearn("scrub", original, forget=f, retain=r, msteps=2, epochs=3)  # doctest: +SKIP
    """

    source: ClassVar[str] = ("Kurmanji et al. 2023 (NeurIPS) released small-scale CIFAR settings: SGD momentum 0.9, "
                             "weight decay 5e-4, msteps 2, epochs 3, alpha 0.001, gamma 0.99, T 4, forget batch 32; "
                             "lr raised from 5e-4 to 0.02 with gradient-norm clip 1 for the CPU scale (tuned on "
                             "sklearn "
                             "digits, whole-class forget)")

    epochs: int = 3
    msteps: int = 2
    alpha: float = 0.001
    gamma: float = 0.99
    temperature: float = 4.0
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    forget_batch_size: int = 32
    optimizer: OptimizerName = "sgd"
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        nonneg = (lambda v: v >= 0, "a number >= 0")
        check_hparams(self, msteps=(lambda v: int(v) == v and v >= 0, "an integer >= 0"), alpha=nonneg, gamma=nonneg,
                      forget_batch_size=(lambda v: int(v) == v and v >= 1, "an integer >= 1"))

    def _unlearn(self, model: nn.Module, data: UnlearningData, *, seed: int, progress: bool) -> nn.Module:
        teacher = frozen_copy(model)
        phases = Phases([
            ("max", make_loader(data.forget, model, batch_size=self.forget_batch_size, seed=seed + 1),
             lambda epoch: epoch < self.msteps),
            ("min", make_loader(data.retain, model, batch_size=self.batch_size, seed=seed), None),
        ])

        def loss_fn(student: nn.Module, batch: dict) -> tuple:
            (tag, b), = batch.items()
            logits = student(b.x)
            with torch.no_grad():
                target = teacher(b.x)
            kl = kd_loss(logits, target, self.temperature)
            if tag == "max":
                return -kl, {"forget_kl": float(kl.detach())}
            ce = F.cross_entropy(logits, b.y)
            return self.gamma * ce + self.alpha * kl, {"retain_ce": float(ce.detach())}

        opt = make_optimizer(model.parameters(), optimizer=self.optimizer, lr=self.lr, momentum=self.momentum,
                             weight_decay=self.weight_decay)
        result = fit(model, phases, epochs=self.epochs, optimizer=opt, loss_fn=loss_fn, grad_clip=self.grad_clip,
                     progress=progress, desc="scrub")
        self.info.update(epochs=result.epochs_run, max_epochs=min(self.msteps, result.epochs_run),
                         history=result.history)
        return model
