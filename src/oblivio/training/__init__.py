"""The one training loop (:func:`fit`), its callbacks, documented recipes, and your training function as a recipe
(:func:`register_recipe`)."""

from .dynamics import DynamicsSummary, TrainingDynamics
from .evaluate import accuracy, predict_features, predict_logits
from .functions import (
    RecipeSource,
    TrainData,
    TrainFunction,
    function_fingerprint,
    recipe_mismatch,
    register_recipe,
    resolve_recipe,
    unregister_recipe,
)
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
    "RecipeSource",
    "StopWhen",
    "TrainData",
    "TrainFunction",
    "TrainState",
    "TrainingDynamics",
    "accuracy",
    "cross_entropy_loss",
    "fit",
    "function_fingerprint",
    "get_recipe",
    "predict_features",
    "predict_logits",
    "recipe_mismatch",
    "register_recipe",
    "resolve_recipe",
    "train_model",
    "unregister_recipe",
]
