"""Fixtures for the attack tests: the shared tiny ledger fixtures (tests/_ledger_fixtures.py)."""

from __future__ import annotations

import pytest

from _ledger_fixtures import (  # noqa: F401  (fixtures, and the hook that runs ledger tests on both backends)
    cli,
    ledger_backend,
    ledger_store,
    ledger_url,
    make_service,
    pytest_generate_tests,
    tiny_experiment,
)


@pytest.fixture()
def service_method():
    """The method ``make_service`` applies unless told otherwise."""
    return "test-attack-sgd"
