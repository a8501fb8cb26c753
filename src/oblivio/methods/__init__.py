"""Unlearning methods, one module each, behind one interface (:class:`UnlearningMethod`)."""

from __future__ import annotations

import importlib

from .base import (
    METHODS,
    UnlearningData,
    UnlearningError,
    UnlearningMethod,
    create_method,
    describe_method,
    list_methods,
    register_method,
    register_variant,
    unlearn,
)

# Each module registers its method(s) on import. Add new modules here.
_METHOD_MODULES: list[str] = [
    "retrain",
    "finetune",
    "neggrad",
    "neggrad_plus",
    "random_label",
    "bad_teacher",
    "scrub",
    "salun",
    "two_stage",
    "challenge_recipes",
    "tmu",
    "variants",
]

for _module in _METHOD_MODULES:
    importlib.import_module(f"{__name__}.{_module}")

__all__ = [
    "METHODS",
    "UnlearningData",
    "UnlearningError",
    "UnlearningMethod",
    "create_method",
    "describe_method",
    "list_methods",
    "register_method",
    "register_variant",
    "unlearn",
]
