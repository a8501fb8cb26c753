"""Random labelling: fine-tune on ``D`` with a random wrong label on every forget sample (SPEC §5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..data.base import ImageDataset
from .base import UnlearningData, register_method
from .common import relabelled_union
from .finetune import Finetune


@register_method("random-label")
@dataclass(kw_only=True)
class RandomLabel(Finetune):
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

    def _training_set(self, data: UnlearningData, seed: int) -> ImageDataset:
        """``D_r ∪ D_f`` with a random wrong label on every forget sample."""
        union, _ = relabelled_union(data.retain, data.forget, seed=seed)
        return union
