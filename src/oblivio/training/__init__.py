"""The one training loop (:func:`fit`), its callbacks, and documented recipes."""

from .dynamics import DynamicsSummary, TrainingDynamics
from .evaluate import accuracy, predict_features, predict_logits
from .loop import (
    Callback,
    DivergenceError,
    EvaluateEach,
    FitResult,
    KeepBest,
    LambdaCallback,
    StopWhen,
    TrainState,
    cross_entropy_loss,
    fit,
)
from .recipes import CPU, PAPER, RECIPES, TINY, Recipe, get_recipe
from .train import train_model

__all__ = [
    "CPU",
    "PAPER",
    "RECIPES",
    "TINY",
    "Callback",
    "DivergenceError",
    "DynamicsSummary",
    "EvaluateEach",
    "FitResult",
    "KeepBest",
    "LambdaCallback",
    "Recipe",
    "StopWhen",
    "TrainState",
    "TrainingDynamics",
    "accuracy",
    "cross_entropy_loss",
    "fit",
    "get_recipe",
    "predict_features",
    "predict_logits",
    "train_model",
]
