"""Random labelling: fine-tune on ``D`` with a random wrong label on every forget sample (SPEC §5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ..training.loop import fit
from .base import UnlearningData, UnlearningMethod, register_method
from .common import OptimizerName, check_hparams, make_loader, make_optimizer, relabelled_union


@register_method("random-label")
@dataclass(kw_only=True)
class RandomLabel(UnlearningMethod):
    """Train on ``D_r ∪ D_f`` where each forget sample gets a uniformly drawn wrong label (drawn once per run).

    Args:
        epochs: passes over ``D_r ∪ D_f``.
        lr: learning rate.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        batch_size: mini-batch size.
        optimizer: ``"sgd"`` or ``"adam"``.

    Example:
        >>> from oblivio.methods import unlearn  # doctest: +SKIP
        >>> m_u = unlearn("random-label", original, forget=f, retain=r, epochs=5)  # doctest: +SKIP
    """

    source: ClassVar[str] = ("Golatkar et al. 2020 / Fan et al. 2024 (SalUn repository RL baseline): SGD momentum 0.9, "
                             "weight decay 5e-4, lr 0.01-0.013; lr 0.02 and 5 epochs tuned on sklearn digits and the "
                             "CPU preset")

    epochs: int = 5
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    optimizer: OptimizerName = "sgd"

    def __post_init__(self) -> None:
        check_hparams(self)

    def _unlearn(self, model: nn.Module, data: UnlearningData, *, seed: int, progress: bool) -> nn.Module:
        union, wrong = relabelled_union(data.retain, data.forget, seed=seed)
        loader = make_loader(union, model, batch_size=self.batch_size, seed=seed)
        opt = make_optimizer(model.parameters(), optimizer=self.optimizer, lr=self.lr, momentum=self.momentum,
                             weight_decay=self.weight_decay)
        result = fit(model, loader, epochs=self.epochs, optimizer=opt, progress=progress, desc="random-label")
        self.info.update(epochs=result.epochs_run, history=result.history)
        return model
