"""Fixtures for the ledger tests: the shared tiny ledger fixtures (tests/_ledger_fixtures.py) and a lease race."""

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
    return "test-ledger-sgd"


@pytest.fixture()
def lease_race():
    """``race(url, n)``: ``n`` ledgers on ``url`` try to take the apply lease at the same instant; their results."""
    import threading

    from oblivio.ledger import Ledger, new_holder

    def race(url: str, n: int = 6) -> list[bool]:
        ledgers = [Ledger(url) for _ in range(n)]
        barrier = threading.Barrier(n)
        wins: list[bool] = []

        def contend(ledger):
            barrier.wait()
            wins.append(ledger.try_acquire(new_holder(), 60))

        threads = [threading.Thread(target=contend, args=(lg,)) for lg in ledgers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for lg in ledgers:
            lg.dispose()
        return wins

    return race
