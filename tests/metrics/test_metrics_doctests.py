"""The docstring examples of oblivio.metrics run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "__init__",
    "_attack_search",
    "alignment",
    "mia",
    "forget_quality",
    "ulira",
    "tta",
    "cost",
    "cost_ratio",
    "extras",
    "report",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module("oblivio.metrics" if name == "__init__" else f"oblivio.metrics.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
