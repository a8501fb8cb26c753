"""Retrain from scratch on ``D_r``: the gold standard every other method is measured against (SPEC §5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ..training.recipes import Recipe, get_recipe
from ..training.train import train_model
from .base import UnlearningData, UnlearningMethod, register_method
from .common import reinitialise


@register_method("retrain")
@dataclass(kw_only=True)
class Retrain(UnlearningMethod):
    """Re-initialise the model's weights and train on the retain set with a :class:`~oblivio.training.Recipe`.

    This is exact unlearning: the result is a sample of the gold model ``M_g`` (for the seed given to the call).

    Args:
        recipe: a recipe preset name (``"cpu"``, ``"paper"``, ``"tiny"``) or a :class:`Recipe`; use the recipe the
            original model was trained with.
        epochs: override the recipe's epoch count (its learning-rate milestones are scaled alike).

    Example:
        >>> from oblivio.methods import create_method  # doctest: +SKIP
        >>> gold = create_method("retrain", recipe="cpu")(original, forget=f, retain=r, seed=1)  # doctest: +SKIP
    """

    source: ClassVar[str] = "the recipe the original model was trained with (oblivio CPU preset by default)"

    recipe: str | Recipe = "cpu"
    epochs: int | None = None

    def __post_init__(self) -> None:
        get_recipe(self.recipe)  # unknown preset names fail here, naming the valid ones
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")

    def resolved_recipe(self) -> Recipe:
        """The recipe with the ``epochs`` override applied."""
        recipe = get_recipe(self.recipe)
        if self.epochs is not None and self.epochs != recipe.epochs:
            recipe = recipe.scaled(self.epochs / max(recipe.epochs, 1)).replace(epochs=self.epochs)
        return recipe

    def _unlearn(self, model: nn.Module, data: UnlearningData, *, seed: int, progress: bool) -> nn.Module:
        recipe = self.resolved_recipe()
        reinitialise(model)
        result = train_model(model, data.retain, recipe=recipe, seed=seed, progress=progress, desc="retrain")
        self.info.update(recipe=recipe.name, epochs=result.epochs_run, n_train=len(data.retain))
        return model
