"""NegGrad+: descent on ``D_r`` and ascent on ``D_f`` at the same time (Kurmanji et al. 2023), SPEC §5."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..data.loader import ZipLoader
from ..training.class_weights import ce
from ..training.loop import fit
from .base import UnlearningData, UnlearningMethod, register_method
from .common import ClassWeighted, OptimizerName, OptimizerSettings, check_hparams, make_loader


@register_method("neggrad+")
@dataclass(kw_only=True)
class NegGradPlus(UnlearningMethod, OptimizerSettings, ClassWeighted):
    """Each step: ``alpha · (CE(D_r batch) + L2) − (1 − alpha) · CE(D_f batch)``.

    The defaults are the reference implementation's (the SCRUB repository, ``small_scale_unlearning.ipynb``,
    ``negative_grad`` / ``run_neggrad_epoch``): ``alpha`` 0.95, 10 epochs, plain SGD at lr 0.01 (no momentum, no
    optimiser weight decay), retain batches of 128 with forget batches of 64 cycled beside them, and a penalty
    ``L2 = (l2_to_original / 2) · ‖θ − θ_o‖²`` pulling the weights toward the original model's (weight 0.1, the
    reference's ``--weight-decay``), inside the retain term. No clipping, no cap. One difference: the reference
    trains with the model in eval mode (BatchNorm statistics frozen); :func:`~oblivio.training.loop.fit` trains in
    train mode, as every other method here does.

    Our tuned version is the named variant ``neggrad+capped`` (:mod:`oblivio.methods.variants`).

    Hyper-parameters: the optimiser settings of :class:`~oblivio.methods.common.OptimizerSettings` (``epochs`` are
    passes over ``D_r``: the retain set drives the epoch, the forget set is cycled beside it; ``batch_size`` is the
    retain batch), and

    Args:
        alpha: weight of the retain (descent) term; ``1 − alpha`` weighs the forget (ascent) term.
        l2_to_original: coefficient of the penalty ``(l2_to_original / 2) · ‖θ − θ_o‖²`` toward the original
            weights, added to the retain term (0: off).
        forget_batch_size: forget mini-batch size.
        grad_clip: clip the global gradient norm to this value (``None``: no clipping, the reference).
        ascent_cap: each forget sample's cross-entropy in the ascent term is capped at ``ascent_cap · ln C``
            (``None``: uncapped, the reference). Ours: see ``neggrad+capped``.

    Example:
        >>> from oblivio.methods import create_method
        >>> m = create_method("neggrad+")
        >>> (m.alpha, m.epochs, m.lr, m.momentum, m.l2_to_original, m.ascent_cap)
        (0.95, 10, 0.01, 0.0, 0.1, None)
    """

    source: ClassVar[str] = (
        "Kurmanji et al. 2023, SCRUB repository small_scale_unlearning.ipynb (negative_grad): "
        "alpha 0.95, 10 epochs, SGD lr 0.01 without momentum or weight decay, retain batch 128, "
        "forget batch 64, L2 penalty 0.1/2 to the original weights in the retain term; no clip, "
        "no cap"
    )

    alpha: float = 0.95
    epochs: int = 10
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    l2_to_original: float = 0.1
    batch_size: int = 128
    forget_batch_size: int = 64
    optimizer: OptimizerName = "sgd"
    grad_clip: float | None = None
    ascent_cap: float | None = None

    def __post_init__(self) -> None:
        check_hparams(
            self,
            alpha=(lambda v: 0 <= v <= 1, "in [0, 1]"),
            ascent_cap=(lambda v: v is None or v > 0, "positive or None"),
            l2_to_original=(lambda v: math.isfinite(v) and v >= 0, "a number >= 0"),
            forget_batch_size=(lambda v: int(v) == v and v >= 1, "an integer >= 1"),
        )
        self._anchor: list[torch.Tensor] | None = None
        self._check_class_weights()
        self._weights: torch.Tensor | None = None

    def loss(self, model: nn.Module, batch: dict) -> tuple:
        """``alpha · (CE_r + L2) − (1 − alpha) · CE_f`` on a ``{"retain", "forget"}`` batch pair.

        The L2 penalty toward the original weights needs the anchor set by :meth:`_unlearn`; without one (a direct
        call) it is left out.
        """
        r, f = batch["retain"], batch["forget"]
        ce_r = ce(model(r.x), r.y, self._weights)  # class-weighted when class_weights is set (on D_r)
        retain_term = ce_r
        if self.l2_to_original > 0 and self._anchor is not None:
            drift = sum(((p - p0) ** 2).sum() for p, p0 in zip(model.parameters(), self._anchor))
            retain_term = ce_r + 0.5 * self.l2_to_original * drift
        logits_f = model(f.x)
        per_sample = F.cross_entropy(logits_f, f.y, reduction="none")
        if self.ascent_cap is not None:
            per_sample = per_sample.clamp(max=self.ascent_cap * math.log(logits_f.shape[1]))
        ce_f = per_sample.mean()
        loss = self.alpha * retain_term - (1 - self.alpha) * ce_f
        return loss, {"retain_ce": float(ce_r.detach()), "forget_ce": float(ce_f.detach())}

    def _unlearn(self, model: nn.Module, data: UnlearningData, *, seed: int, progress: bool) -> nn.Module:
        loader = ZipLoader(
            {
                "retain": make_loader(data.retain, model, batch_size=self.batch_size, seed=seed),
                "forget": make_loader(data.forget, model, batch_size=self.forget_batch_size, seed=seed + 1),
            },
            primary="retain",
        )
        self._anchor = [p.detach().clone() for p in model.parameters()]  # θ_o for the L2 penalty
        self._weights = self.resolved_class_weights(data.retain)
        opt = self.build_optimizer(model.parameters())
        try:
            result = fit(
                model,
                loader,
                epochs=self.epochs,
                optimizer=opt,
                loss_fn=self.loss,
                grad_clip=self.grad_clip,
                progress=progress,
                desc="neggrad+",
            )
        finally:
            self._anchor = None
        self.info.update(epochs=result.epochs_run, history=result.history)
        return model
