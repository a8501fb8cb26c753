"""Experiment configurations and their CPU-scale / paper-scale presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..registry import Registry
from ..training.recipes import CPU, PAPER, TINY, Recipe, get_recipe

PRESETS: Registry = Registry("preset")


@dataclass(frozen=True)
class ExperimentConfig:
    """What determines the original model (and, with a forget request, the gold model).

    Args:
        dataset: registered dataset name (``oblivio.data.list_datasets()``).
        dataset_options: keyword arguments for the loader (e.g. ``{"root": "/data/cifar"}``).
        train_size: when set, ``D`` is a class-stratified sample of this many training images (CPU presets).
        model: registered model name (``oblivio.models.list_models()``).
        model_options: extra keyword arguments for the model.
        recipe: the training :class:`Recipe` (or a preset name) used for original and gold models.
        seed: the training seed (weight init and data order).
        holdout_fraction: the share of the official test split given to methods as ``holdout``; the rest is the
            evaluation test set.
    """

    dataset: str = "fashion-mnist"
    dataset_options: dict = field(default_factory=dict)
    train_size: int | None = None
    model: str = "small-cnn"
    model_options: dict = field(default_factory=dict)
    recipe: Recipe = CPU
    seed: int = 0
    holdout_fraction: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipe", get_recipe(self.recipe))
        if self.train_size is not None and self.train_size <= 0:
            raise ValueError(f"train_size must be positive, got {self.train_size}")

    def replace(self, **changes: Any) -> ExperimentConfig:
        return dataclasses.replace(self, **changes)

    def data_key(self) -> dict:
        return {"dataset": self.dataset, "dataset_options": self.dataset_options, "train_size": self.train_size}

    def model_key(self) -> dict:
        return {
            **self.data_key(),
            "model": self.model,
            "model_options": self.model_options,
            "recipe": self.recipe,
            "seed": self.seed,
        }


def get_preset(name: str | ExperimentConfig) -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a preset name (``cpu``, ``paper``, ``tiny``...)."""
    if isinstance(name, ExperimentConfig):
        return name
    if name not in PRESETS:  # a study plug-in may register its own presets (oblivio.experiments.studies)
        from .studies import load_studies

        load_studies()
    return PRESETS.create(name)


# CPU scale: the embedded Fashion-MNIST, 20,000 training images, a narrow SmallCNN, 15 epochs (minutes on 2 cores).
CPU_PRESET = ExperimentConfig(
    dataset="fashion-mnist", train_size=20000, model="small-cnn", model_options={"width": 16, "hidden": 512}, recipe=CPU
)
# Paper scale (TMU Table 1): CIFAR-10, ResNet-18, 200 epochs. Needs the CIFAR-10 files and a GPU.
PAPER_PRESET = ExperimentConfig(dataset="cifar10", model="resnet18", recipe=PAPER)
# Paper schedule on the embedded data (the two-stage paper trains Fashion-MNIST with a small CNN).
PAPER_FMNIST_PRESET = ExperimentConfig(dataset="fashion-mnist", model="small-cnn", recipe=PAPER.replace(augment="none"))
# Seconds: sklearn digits, for tests and smoke runs.
TINY_PRESET = ExperimentConfig(
    dataset="digits", model="small-cnn", model_options={"width": 8, "hidden": 64}, recipe=TINY
)

PRESETS.register("cpu")(lambda: CPU_PRESET)
PRESETS.register("paper")(lambda: PAPER_PRESET)
PRESETS.register("paper-fmnist")(lambda: PAPER_FMNIST_PRESET)
PRESETS.register("tiny")(lambda: TINY_PRESET)
