"""Fixtures for the attack tests: the shared tiny ledger fixtures (tests/_ledger_fixtures.py)."""

from __future__ import annotations

import pytest

import _ledger_fixtures
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


@pytest.fixture()
def no_unlearning(monkeypatch):
    """The test methods' training fails the test: a bad output path must be refused before it."""

    def trained(*args, **kwargs):
        raise AssertionError("the unlearning ran before the output path was checked")

    monkeypatch.setattr(_ledger_fixtures.AttackOneStep, "_unlearn", trained)
