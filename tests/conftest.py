"""Shared fixtures: tiny real data (sklearn digits) and small models, CPU only, single-threaded.

Convention: methods that a test registers for itself are named "test-..."; registry-driven suites skip them.
"""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("OBLIVIO_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def digits():
    from oblivio.data import load_dataset

    return load_dataset("digits")


@pytest.fixture()
def tmp_store(tmp_path):
    return tmp_path / "store"


# -- the ledger tests on PostgreSQL (tests/_ledger_fixtures.py parametrises them): say how many run, and how they did


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "postgres: a ledger test on the PostgreSQL server that OBLIVIO_TEST_PG_URL names (skipped without)"
    )
    config.addinivalue_line(
        "markers",
        "sqlite_only(reason): a ledger test that only means something on SQLite (it damages or locks the file)",
    )


def _pg_server() -> str | None:
    url = os.environ.get("OBLIVIO_TEST_PG_URL")
    if not url:
        return None
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host") or "local socket"
    return f"{host}:{parsed.port or parsed.query.get('port') or 5432}"


def pytest_report_collectionfinish(config, items):
    n = sum(1 for item in items if item.get_closest_marker("postgres") is not None)
    if not n:
        return []
    server = _pg_server()
    if server is None:
        return [
            f"PostgreSQL: {n} ledger tests will be skipped (OBLIVIO_TEST_PG_URL is not set; make test starts a server)"
        ]
    return [f"PostgreSQL at {server}: {n} ledger tests will run against it"]


_PG_OUTCOMES: dict[str, str] = {}


def pytest_runtest_logreport(report):
    if "postgres" not in report.keywords:
        return
    before = _PG_OUTCOMES.get(report.nodeid)
    if report.failed:
        _PG_OUTCOMES[report.nodeid] = "failed"
    elif report.skipped and before != "failed":
        _PG_OUTCOMES[report.nodeid] = "skipped"
    elif report.when == "call" and before is None:
        _PG_OUTCOMES[report.nodeid] = "passed"


def pytest_terminal_summary(terminalreporter):
    if not _PG_OUTCOMES:
        return
    counts = {k: sum(v == k for v in _PG_OUTCOMES.values()) for k in ("passed", "failed", "skipped")}
    server = _pg_server()
    where = f"PostgreSQL at {server}" if server else "PostgreSQL (no server: OBLIVIO_TEST_PG_URL is not set)"
    terminalreporter.write_line(
        f"{where}: {len(_PG_OUTCOMES)} ledger tests, {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped"
    )
