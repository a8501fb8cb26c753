"""Train a model from scratch with a :class:`Recipe` (original and gold models)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from torch import nn

from ..data.base import ImageDataset
from ..data.loader import TensorLoader
from ..utils import model_device
from .class_weights import resolve_class_weights, weighted_cross_entropy
from .loop import Callback, FitResult, fit
from .recipes import Recipe, get_recipe


def train_model(
    model: nn.Module,
    dataset: ImageDataset,
    *,
    recipe: Recipe | str = "cpu",
    seed: int = 0,
    callbacks: Sequence[Callback] = (),
    checkpoint: str | os.PathLike | None = None,
    fraction: float = 1.0,
    progress: bool = True,
    desc: str = "train",
) -> FitResult:
    """Train ``model`` in place on ``dataset`` following ``recipe``.

    The loss is the cross-entropy, weighted by the recipe's ``class_weights`` resolved on ``dataset``'s labels
    (``"balanced"``: ``n / (C · n_c)`` of this training set; see :mod:`oblivio.training.class_weights`).

    Args:
        model: a freshly initialised (or resumed) model; batches go to its device.
        dataset: training data.
        recipe: a :class:`Recipe` or preset name.
        seed: data-order / augmentation seed (weight init is the caller's, through the global seed).
        callbacks: extra :class:`Callback` hooks.
        checkpoint: resumable training-state file (see :func:`fit`).
        fraction: use this random fraction of ``dataset`` each epoch (two-stage retraining uses 0.5).
        progress: show a progress bar.
        desc: progress-bar label.
    """
    recipe = get_recipe(recipe)
    if len(dataset) == 0:
        raise ValueError(f"cannot train on an empty dataset ({dataset.name})")
    weights = resolve_class_weights(recipe.class_weights, dataset.labels, dataset.num_classes)  # errors before work
    check = getattr(model, "check_input", None)
    if check is not None:
        check(dataset.image_shape, dataset.num_classes)
    loader = TensorLoader(
        dataset,
        batch_size=recipe.batch_size,
        shuffle=True,
        augment=recipe.augment,
        seed=seed,
        device=model_device(model),
        fraction=fraction,
    )
    optimizer = recipe.make_optimizer(model.parameters())
    scheduler = recipe.make_scheduler(optimizer)
    return fit(
        model,
        loader,
        epochs=recipe.epochs,
        optimizer=optimizer,
        scheduler=scheduler,
        loss_fn=weighted_cross_entropy(weights),
        callbacks=callbacks,
        checkpoint=checkpoint,
        progress=progress,
        desc=desc,
    )
