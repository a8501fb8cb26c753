"""What tests/ledger and tests/attacks share: the tiny digits experiment, a service factory, the CLI, test methods,
and the two ledger backends.

Each directory's conftest imports the fixtures from here, so each still has its own session store and experiment
(the original trained once per directory, ~5 s), and names the method its services apply by default in a
``service_method`` fixture. Importing this module registers the test-only methods (named "test-...", which the
registry-driven suites skip); ``_ledger_worker.py`` imports it too, to apply in a separate process.

Backends: every test that uses a ledger (through ``make_service``, ``run_cli``, ``ledger_url`` or ``ledger_backend``)
runs twice, on SQLite (``[sqlite]``) and on PostgreSQL (``[postgresql]``, a fresh database per test on the server
that ``OBLIVIO_TEST_PG_URL`` names; skipped, with the reason, when it is not set). The PostgreSQL run puts its
database in ``$OBLIVIO_LEDGER_URL``, so services, the CLI and worker processes of the test all use it. A test marked
``sqlite_only`` (it damages or locks the SQLite file itself) runs on SQLite alone and says why in its marker.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from oblivio.methods import METHODS, UnlearningMethod, register_method

STARTED = threading.Event()  # set by "test-ledger-gate" when its apply has begun
GATE = threading.Event()  # "test-ledger-gate" waits for it (at most 60 s)


def _register(name: str):
    def decorator(cls):
        if name in METHODS:  # imported twice (test module and worker): keep the first
            return cls
        return register_method(name)(cls)

    return decorator


def _sgd_step_on_retain(model, data, lr: float):
    """One SGD step on the first (at most 32) retain samples: the weights always change."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    n = min(32, len(data.retain))
    x = data.retain.float_images(torch.arange(n)).to(next(model.parameters()).device)
    model.train()
    F.cross_entropy(model(x), data.retain.labels[:n].to(x.device)).backward()
    opt.step()
    return model


@dataclass(kw_only=True)
class _Diverges(UnlearningMethod):
    """Training that blows up: every weight becomes NaN."""

    def _unlearn(self, model, data, *, seed, progress):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float("nan"))
        return model


# -- the ledger tests' methods ------------------------------------------------------------------------------------


@_register("test-ledger-sgd")
@dataclass(kw_only=True)
class OneStep(UnlearningMethod):
    """One SGD step on the first retain batch; reports TMU-style predicted easy / hard counts."""

    lr: float = 0.01
    sleep: float = 0.0

    def _unlearn(self, model, data, *, seed, progress):
        if self.sleep:
            time.sleep(self.sleep)
        _sgd_step_on_retain(model, data, self.lr)
        self.info.update(predicted_easy=len(data.forget) // 2, predicted_hard=len(data.forget) - len(data.forget) // 2)
        return model


@_register("test-ledger-nan")
@dataclass(kw_only=True)
class Diverges(_Diverges):
    """Training that blows up: every weight becomes NaN."""


@_register("test-ledger-gate")
@dataclass(kw_only=True)
class Gated(UnlearningMethod):
    """Signals STARTED, then waits for GATE (to hold the apply lease while a test tries a second apply)."""

    def _unlearn(self, model, data, *, seed, progress):
        STARTED.set()
        if not GATE.wait(60):
            raise RuntimeError("test gate never opened")
        return model


# -- the attack tests' methods ------------------------------------------------------------------------------------


@_register("test-attack-sgd")
@dataclass(kw_only=True)
class AttackOneStep(UnlearningMethod):
    """One SGD step on the first retain batch: the weights always change."""

    lr: float = 0.05

    def _unlearn(self, model, data, *, seed, progress):
        return _sgd_step_on_retain(model, data, self.lr)


@_register("test-attack-noop")
@dataclass(kw_only=True)
class AllEasy(UnlearningMethod):
    """What TMU does when it predicts every forget sample easy: returns the model unchanged."""

    def _unlearn(self, model, data, *, seed, progress):
        self.info.update(predicted_easy=len(data.forget), predicted_hard=0)
        return model


@_register("test-attack-nan")
@dataclass(kw_only=True)
class AttackDiverges(_Diverges):
    """Training that blows up: every weight becomes NaN."""


# -- fixtures (imported by tests/ledger/conftest.py and tests/attacks/conftest.py) -----------------------------------

PG_URL = os.environ.get("OBLIVIO_TEST_PG_URL")
PG_SKIP = (
    "PostgreSQL ledger tests skipped: set OBLIVIO_TEST_PG_URL to a server (make test and scripts/with_postgres.sh "
    "start a throwaway one)"
)


def pytest_generate_tests(metafunc):
    """Run every test that uses a ledger on both backends (``sqlite_only`` tests on SQLite alone)."""
    if "ledger_backend" not in metafunc.fixturenames:
        return
    params = [pytest.param("sqlite", id="sqlite")]
    if metafunc.definition.get_closest_marker("sqlite_only") is None:
        marks = [pytest.mark.postgres] + ([] if PG_URL else [pytest.mark.skip(reason=PG_SKIP)])
        params.append(pytest.param("postgresql", id="postgresql", marks=marks))
    metafunc.parametrize("ledger_backend", params, indirect=True)


@dataclass(frozen=True)
class LedgerBackend:
    """The ledger database of one test: ``name`` is ``"sqlite"`` or ``"postgresql"``; ``url`` the PostgreSQL
    database made for the test (None on SQLite: each service uses ``<workdir>/ledger.db``)."""

    name: str
    url: str | None


@pytest.fixture()
def ledger_backend(request):
    """The backend this test runs on (parametrised by :func:`pytest_generate_tests`); on PostgreSQL a fresh
    database, named in ``$OBLIVIO_LEDGER_URL`` for the test's services, CLI calls and worker processes, dropped
    after the test. (The variable is set and restored here, not with ``monkeypatch``, whose ``undo()`` in a test
    would drop it half-way.)"""
    name = getattr(request, "param", "sqlite")
    saved = os.environ.pop("OBLIVIO_LEDGER_URL", None)
    try:
        if name == "sqlite":
            yield LedgerBackend("sqlite", None)
        else:
            yield from _postgres_database()
    finally:
        os.environ.pop("OBLIVIO_LEDGER_URL", None)
        if saved is not None:
            os.environ["OBLIVIO_LEDGER_URL"] = saved


def _postgres_database():
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    db = f"oblivio_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    url = make_url(PG_URL).set(database=db).render_as_string(hide_password=False)
    os.environ["OBLIVIO_LEDGER_URL"] = url
    try:
        yield LedgerBackend("postgresql", url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture()
def ledger_url(ledger_backend, tmp_path):
    """A SQLAlchemy URL of an empty ledger database on this test's backend (for tests that open a Ledger)."""
    return ledger_backend.url or f"sqlite:///{tmp_path / 'ledger-url.db'}"


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
def make_service(tiny_experiment, tmp_path, service_method, ledger_backend):
    """``make(workdir=None, **kwargs)``: a DeletionService on the tiny experiment (in ``tmp_path / "ledger"`` and
    applying ``service_method`` unless told otherwise) on this test's backend, closed after the test."""
    from oblivio.ledger import DeletionService

    made = []

    def make(workdir=None, **kwargs):
        kwargs.setdefault("method", service_method)
        svc = DeletionService(workdir or tmp_path / "ledger", experiment=tiny_experiment, **kwargs)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()


@pytest.fixture()
def cli(tiny_experiment, ledger_store, capsys):
    """``cli(*argv)`` runs ``oblivio`` in-process on the tiny preset; returns (exit code, stdout, stderr)."""
    from oblivio.cli import main

    def run(*argv, experiment=True):
        extra = (
            []
            if not experiment
            else ["--preset", "tiny", "--store", str(ledger_store), "--device", "cpu", "--no-progress"]
        )
        code = main([*argv, *extra])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
