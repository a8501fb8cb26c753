"""Fixtures for the ledger tests: the tiny digits experiment (original trained once) and service factories."""

from __future__ import annotations

import pytest

import ledger_methods  # noqa: F401  (registers the test-only methods)


@pytest.fixture(scope="session")
def ledger_store(tmp_path_factory):
    return tmp_path_factory.mktemp("ledger-store")


@pytest.fixture(scope="session")
def tiny_experiment(ledger_store):
    from oblivio.experiments import Experiment

    exp = Experiment("tiny", store=ledger_store, device="cpu", progress=False)
    exp.original()  # trained once (~5 s), then loaded from the store
    return exp


@pytest.fixture()
def make_service(tiny_experiment, tmp_path):
    from oblivio.ledger import DeletionService

    made = []

    def make(workdir=None, **kwargs):
        kwargs.setdefault("method", "test-ledger-sgd")
        svc = DeletionService(workdir or tmp_path / "ledger", experiment=tiny_experiment, **kwargs)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()


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
