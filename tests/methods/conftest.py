"""Fixtures for the method tests: one small original model on sklearn digits, trained once per session."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch

# small-cnn narrow enough to train in about two seconds on one core, wide enough to memorise digits.
MODEL_OPTIONS = {"width": 8, "hidden": 64}


@pytest.fixture(scope="session")
def mu_world(digits):
    """The original model (memorises its training set) and two forget requests on digits.

    ``subset``: 30 random training images of class 3 (the project's main scenario); ``whole``: every training image
    of class 3 (the gold model gets them all wrong, so forgetting is visible in accuracy).
    """
    from oblivio.models import create_model
    from oblivio.scenarios import make_unlearning_splits
    from oblivio.training.recipes import Recipe
    from oblivio.training.train import train_model

    mean, std = digits.train.stats()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = create_model(
            "small-cnn",
            num_classes=digits.num_classes,
            in_channels=1,
            image_size=(8, 8),
            mean=mean,
            std=std,
            **MODEL_OPTIONS,
        )
        recipe = Recipe(name="test", epochs=10, lr=0.05, milestones=(6, 8), batch_size=32)
        train_model(model, digits.train, recipe=recipe, seed=0, progress=False)
    model.eval()
    return SimpleNamespace(
        original=model,
        subset=make_unlearning_splits(digits, "class-subset:3:30", seed=0),
        whole=make_unlearning_splits(digits, "class:3", seed=0),
    )


@pytest.fixture()
def original(mu_world):
    """A private copy of the original model (a test may not change the session's)."""
    return copy.deepcopy(mu_world.original)
