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

    How this differs from the SalUn repository's RL baseline (``Classification/unlearn/RL.py``), which is not a
    single method: on CIFAR-10 / SVHN each epoch first runs the forget batches with labels drawn afresh **per batch**
    by ``torch.randint(0, C)`` and then the retain batches, in two separate loops; on CIFAR-100 / TinyImageNet it
    redraws the forget labels **once per epoch** and shuffles them into the retain set. In both, the draw is over all
    ``C`` classes, so about ``1/C`` of the "random" labels are the true one. Here the labels are drawn once per run
    (seeded by the unlearning seed), always wrong (uniform over the other ``C − 1`` classes), and mixed with the
    retain samples in one shuffled pass, which is SalUn's CIFAR-100 form with a fixed draw. A fixed wrong label is
    a stronger and reproducible push than a fresh, sometimes-correct one; we have not measured the difference.

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
