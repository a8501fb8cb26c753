"""Fine-tune: keep training the original model on ``D_r`` only, with a learning rate larger than the one the
original training ended with (SPEC §5), hoping catastrophic forgetting erases ``D_f``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ..data.base import ImageDataset
from ..training.loop import Callback, fit
from .base import UnlearningData, UnlearningMethod, register_method
from .common import OptimizerName, check_hparams, make_loader, make_optimizer


@register_method("finetune")
@dataclass(kw_only=True)
class Finetune(UnlearningMethod):
    """Continue training on the retain set with plain cross-entropy.

    Args:
        epochs: passes over ``D_r``.
        lr: learning rate (the CPU recipe ends at 5e-4; 0.02 is "slightly larger" in the sense of the literature:
            a fresh, moderately large rate that lets the model drift away from what only ``D_f`` supported).
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        batch_size: mini-batch size.
        optimizer: ``"sgd"`` or ``"adam"``.

    Example:
        >>> from oblivio.methods import unlearn  # doctest: +SKIP
        >>> m_u = unlearn("finetune", original, forget=f, retain=r, epochs=5)  # doctest: +SKIP
    """

    source: ClassVar[str] = ("Jia et al. 2023 / Fan et al. 2024 (SalUn) repository FT baseline: SGD momentum 0.9, "
                             "weight decay 5e-4, lr in [0.01, 0.1] (0.02 chosen), 10 epochs halved to 5 for the CPU "
                             "scale (our choice)")

    epochs: int = 5
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    optimizer: OptimizerName = "sgd"

    def __post_init__(self) -> None:
        check_hparams(self)

    def _unlearn(self, model: nn.Module, data: UnlearningData, *, seed: int, progress: bool) -> nn.Module:
        callbacks = self._prepare(model, data)
        loader = make_loader(self._training_set(data, seed), model, batch_size=self.batch_size, seed=seed)
        opt = make_optimizer([p for p in model.parameters() if p.requires_grad], optimizer=self.optimizer, lr=self.lr,
                             momentum=self.momentum, weight_decay=self.weight_decay)
        result = fit(model, loader, epochs=self.epochs, optimizer=opt, callbacks=callbacks, progress=progress,
                     desc=self.name)
        self.info.update(epochs=result.epochs_run, history=result.history)
        return model

    # Hooks for the methods that are fine-tuning on other data (random-label) or with a constraint (salun).
    def _training_set(self, data: UnlearningData, seed: int) -> ImageDataset:
        """What to fine-tune on: ``D_r``."""
        return data.retain

    def _prepare(self, model: nn.Module, data: UnlearningData) -> list[Callback]:
        """Callbacks for the fine-tuning run (none)."""
        return []
