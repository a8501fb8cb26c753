"""Retrain from scratch on ``D_r``: the gold standard every other method is measured against (SPEC §5)."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..data.base import ImageDataset
from ..training.recipes import Recipe, get_recipe
from ..training.train import train_model
from ..utils import forked_rng, model_device
from .base import UnlearningData, UnlearningError, UnlearningMethod, register_method
from .common import reinitialise

log = logging.getLogger("oblivio")


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
        if self.epochs is not None and not isinstance(recipe, Recipe):  # your training function: its own option
            return recipe.with_options(epochs=self.epochs)
        if self.epochs is not None and self.epochs != recipe.epochs:
            recipe = recipe.scaled(self.epochs / max(recipe.epochs, 1)).replace(epochs=self.epochs)
        return recipe

    def _unlearn(self, model: nn.Module, data: UnlearningData, *, seed: int, progress: bool) -> nn.Module:
        recipe = self.resolved_recipe()
        reinitialise(model)
        result = train_model(model, data.retain, recipe=recipe, seed=seed, progress=progress, desc="retrain")
        self.info.update(recipe=recipe.name, epochs=result.epochs_run, n_train=len(data.retain))
        return model


def fresh_model(model: nn.Module, *, init_fn: Callable[[], nn.Module] | None = None) -> nn.Module:
    """A freshly initialised model of ``model``'s architecture: ``init_fn()``, or a copy with every layer reset."""
    if init_fn is not None:
        fresh = init_fn()
        if not isinstance(fresh, nn.Module):
            raise TypeError(f"init_fn returned a {type(fresh).__name__}, not a model")
        return fresh.to(model_device(model))
    fresh = reinitialise(copy.deepcopy(model))
    reset = getattr(fresh, "reset_parameters", None)
    if type(fresh).__module__.startswith("torch.nn") and callable(reset):
        reset()  # the whole model is one torch layer (reinitialise resets sub-modules only)
    # parameters that no reset_parameters() owns and that kept their trained values (a cls token, a custom scale)
    covered = {
        f"{m_name}.{p_name}" if m_name else p_name
        for m_name, m in fresh.named_modules()
        if callable(getattr(m, "reset_parameters", None))
        for p_name, _ in m.named_parameters(recurse=False)
    }
    trained = dict(model.named_parameters())
    kept = [
        n
        for n, p in fresh.named_parameters()
        if n not in covered and p.numel() and torch.equal(p.detach(), trained[n].detach())
    ]
    if kept:
        raise UnlearningError(
            f"cannot retrain gold from scratch: {len(kept)} parameter(s) of your model keep their trained values "
            f"after every layer's reset_parameters() (e.g. {kept[0]!r}: its module has none), so gold would start "
            "from weights that saw the forget set; pass init_fn=lambda: MyNet(...) (a freshly initialised model, or "
            "your pretrained start)"
        )
    return fresh


def retrain_gold(
    model: nn.Module, retain: ImageDataset, recipe: Any, *, init_fn: Any, seed: int, progress: bool
) -> nn.Module:
    """The gold model for ``oblivio.unlearn(..., train_fn=...)``: :func:`fresh_model`, trained from scratch on
    ``retain`` with ``recipe`` (an oblivio Recipe or your training function); the global RNG is seeded with ``seed``
    before the model is made and again before training, and restored afterwards."""
    with forked_rng(model):
        torch.manual_seed(seed)
        fresh = fresh_model(model, init_fn=init_fn)
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        train_model(fresh, retain, recipe=recipe, seed=seed, progress=progress, desc="gold")
    log.info(
        "trained the gold model (%s) on %d retain samples in %.1f s", recipe.name, len(retain), time.perf_counter() - t0
    )
    return fresh.eval()
