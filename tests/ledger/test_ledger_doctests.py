"""The examples in the ledger's and the request CLI's docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "name",
    [
        "oblivio.ledger.db",
        "oblivio.ledger.service",
        "oblivio.ledger.intake",
        "oblivio.ledger.verdict",
        "oblivio.ledger.paths",
        "oblivio.ledger.verification",
        "oblivio.cli.request",
    ],
)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
