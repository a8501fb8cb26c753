"""Bad Teacher (Chundawat et al. 2023, "Can bad teaching induce forgetting?"), SPEC §5.

The student starts as the original model. On retain samples it is distilled toward the original model (the
*competent* teacher); on forget samples toward a randomly initialised copy of the architecture (the *incompetent*
teacher), whose near-uniform outputs carry no information about ``D_f``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..data.loader import stratified_sample
from ..training.loop import fit
from .base import UnlearningData, UnlearningMethod, register_method
from .common import OptimizerName, OptimizerSettings, check_hparams, frozen_copy, kd_loss, make_loader, reinitialise


@register_method("bad-teacher")
@dataclass(kw_only=True)
class BadTeacher(UnlearningMethod, OptimizerSettings):
    """Distil from a competent teacher on a sample of ``D_r`` and from an incompetent one on ``D_f``.

    Hyper-parameters: the optimiser settings of :class:`~oblivio.methods.common.OptimizerSettings` (``epochs`` are
    passes over ``retain sample ∪ D_f``; the authors use Adam, so ``momentum`` is unused by default), and

    Args:
        retain_fraction: class-stratified fraction of ``D_r`` used (drawn once per run, seeded).
        temperature: distillation temperature ``T`` (the loss is ``KL(teacher_T || student_T)``, not scaled by
            ``T²``; at the default ``T = 1`` the two agree).

    Example:
        >>> from oblivio.methods import unlearn  # doctest: +SKIP
        >>> m_u = unlearn("bad-teacher", original, forget=f, retain=r)  # doctest: +SKIP
    """

    source: ClassVar[str] = (
        "Chundawat et al. 2023 (AAAI), paper and released code: Adam lr 1e-4, one epoch, "
        "temperature 1, batch 256, 30% of the retain set"
    )

    retain_fraction: float = 0.3
    temperature: float = 1.0
    epochs: int = 1
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 256
    optimizer: OptimizerName = "adam"

    def __post_init__(self) -> None:
        check_hparams(self, retain_fraction=(lambda v: 0 < v <= 1, "in (0, 1]"))

    def _unlearn(self, model: nn.Module, data: UnlearningData, *, seed: int, progress: bool) -> nn.Module:
        competent = frozen_copy(model)
        incompetent = reinitialise(frozen_copy(model))  # drawn from the RNG seeded by the call
        retain = data.retain
        if self.retain_fraction < 1:
            k = max(1, round(self.retain_fraction * len(retain)))
            retain = retain.subset(stratified_sample(retain, k, seed=seed), name="retain sample")
        n_retain = len(retain)
        union = retain.concat(data.forget, name="retain sample + forget")
        loader = make_loader(union, model, batch_size=self.batch_size, seed=seed)
        opt = self.build_optimizer(model.parameters())

        def loss_fn(student: nn.Module, batch) -> tuple:
            is_forget = (batch.index >= n_retain).to(batch.x.device).unsqueeze(1)
            with torch.no_grad():
                teacher = torch.where(is_forget, incompetent(batch.x), competent(batch.x))
            loss = kd_loss(student(batch.x), teacher, temperature=self.temperature, scale=False)
            return loss, {"forget_share": float(is_forget.float().mean())}

        result = fit(
            model, loader, epochs=self.epochs, optimizer=opt, loss_fn=loss_fn, progress=progress, desc="bad-teacher"
        )
        self.info.update(epochs=result.epochs_run, n_retain_used=n_retain, history=result.history)
        return model
