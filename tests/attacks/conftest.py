"""Fixtures for the attack tests: the shared tiny ledger fixtures (tests/_ledger_fixtures.py)."""

from __future__ import annotations

import pytest

from _ledger_fixtures import cli, ledger_store, make_service, tiny_experiment  # noqa: F401  (fixtures)


@pytest.fixture()
def service_method():
    """The method ``make_service`` applies unless told otherwise."""
    return "test-attack-sgd"
