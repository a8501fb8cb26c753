"""Training recipes: documented hyper-parameter sets, each with a paper-scale and a CPU-scale preset.

``paper``: the schedule of the TMU / unlearning literature on CIFAR with ResNet-18 — SGD, learning rate 0.01,
momentum 0.9, weight decay 5e-4, 200 epochs, learning rate divided by 10 at epochs 100 and 150, batch 128,
random crop (padding 4) and horizontal flip.

``cpu``: the same optimiser at a scale a 2-core machine trains in minutes: 15 epochs, learning rate 0.05 divided by
10 at epochs 8 and 12, batch 128, no augmentation (so that, as at paper scale, the original model memorises its
training set and the gold model's accuracy on a forgotten subset falls below the original's). Tuned on
Fashion-MNIST with ``small-cnn``; see docs/recipes.md for the measured accuracies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from ..registry import Registry
from .class_weights import ClassWeightsSpec, normalise_class_weights

RECIPES: Registry = Registry("recipe")


@dataclass(frozen=True)
class Recipe:
    """How to train a model from scratch (original and gold models use the same recipe).

    Args:
        name: preset name (for reports).
        epochs: training epochs.
        lr: initial learning rate.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        milestones: epochs after which the learning rate is multiplied by ``gamma``.
        gamma: learning-rate decay factor.
        batch_size: mini-batch size.
        augment: augmentation spec for :class:`oblivio.data.Augment` (``"none"``, ``"crop4+flip"``...).
        optimizer: ``"sgd"`` or ``"adam"``.
        nesterov: Nesterov momentum (SGD only).
        class_weights: class weights of the cross-entropy (:mod:`oblivio.training.class_weights`): ``"none"``
            (default), ``"balanced"`` (``n / (C · n_c)`` on the set being trained on, as scikit-learn's
            ``compute_class_weight("balanced")``) or one weight per class. Left out of the recipe's hash (cache
            keys) while it is ``"none"``, so models stored before the field existed stay valid.
    """

    _JSON_OMIT_DEFAULTS: ClassVar[tuple[str, ...]] = ("class_weights",)

    name: str = "custom"
    epochs: int = 12
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = (6, 9)
    gamma: float = 0.1
    batch_size: int = 128
    augment: str = "none"
    optimizer: Literal["sgd", "adam"] = "sgd"
    nesterov: bool = False
    class_weights: ClassWeightsSpec = "none"

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        object.__setattr__(self, "class_weights", normalise_class_weights(self.class_weights))

    def make_optimizer(self, params: Iterable[torch.nn.Parameter], *, lr: float | None = None) -> torch.optim.Optimizer:
        lr = self.lr if lr is None else lr
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            nesterov=self.nesterov and self.momentum > 0,
        )

    def make_scheduler(self, optimizer: torch.optim.Optimizer):
        if not self.milestones:
            return None
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(self.milestones), gamma=self.gamma)

    def replace(self, **changes) -> Recipe:
        return dataclasses.replace(self, **changes)

    def scaled(self, factor: float) -> Recipe:
        """The same schedule over ``round(epochs * factor)`` epochs, milestones scaled alike (two-stage: 0.5)."""
        epochs = max(1, round(self.epochs * factor))
        milestones = tuple(sorted({max(1, round(m * factor)) for m in self.milestones if round(m * factor) < epochs}))
        return dataclasses.replace(self, epochs=epochs, milestones=milestones)


PAPER = Recipe(
    name="paper",
    epochs=200,
    lr=0.01,
    momentum=0.9,
    weight_decay=5e-4,
    milestones=(100, 150),
    gamma=0.1,
    batch_size=128,
    augment="crop4+flip",
)
CPU = Recipe(
    name="cpu",
    epochs=15,
    lr=0.05,
    momentum=0.9,
    weight_decay=5e-4,
    milestones=(8, 12),
    gamma=0.1,
    batch_size=128,
    augment="none",
)
TINY = Recipe(
    name="tiny", epochs=3, lr=0.05, momentum=0.9, weight_decay=5e-4, milestones=(), batch_size=64, augment="none"
)

RECIPES.register("paper")(lambda: PAPER)
RECIPES.register("cpu")(lambda: CPU)
RECIPES.register("tiny")(lambda: TINY)


def get_recipe(recipe: str | Recipe) -> Recipe:
    """A :class:`Recipe` from a preset name (``paper``, ``cpu``, ``tiny``) or a Recipe itself."""
    if isinstance(recipe, Recipe):
        return recipe
    return RECIPES.create(recipe)
