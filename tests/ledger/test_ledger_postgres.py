"""The ledger on PostgreSQL (skipped unless ``OBLIVIO_TEST_PG_URL`` names a server, e.g.
``postgresql+psycopg://user@/postgres?host=/tmp&port=5432``; each test creates and drops its own database)."""

from __future__ import annotations

import os
import uuid

import pytest

from oblivio.ledger import ApplyInProgressError

PG_URL = os.environ.get("OBLIVIO_TEST_PG_URL")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="set OBLIVIO_TEST_PG_URL to test on PostgreSQL"),
]


@pytest.fixture()
def pg_url():
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"oblivio_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_workflow_on_postgres(make_service, pg_url, tmp_path):
    svc = make_service(db_url=pg_url)
    a = svc.add_request([1, 2, 3], requester="alice")
    assert svc.add_request([3, 2], requester="bob").status == "rejected"
    result = svc.apply()
    assert result.status == "succeeded" and result.runs[0].request_ids == (a.id,)
    assert svc.list_requests()[0].status == "applied"
    report = svc.report()
    assert report["version"]["id"] == 2  # NaN metrics were stored as null: PostgreSQL's JSON has no NaN
    svc.write_report(tmp_path / "out")
    nan = make_service(workdir=tmp_path / "ledger", db_url=pg_url, method="test-ledger-nan")
    nan.add_request([9], requester="carol")
    assert nan.apply().status == "failed" and nan.current_version().id == 2


def test_lease_race_on_postgres(pg_url, lease_race):
    assert sorted(lease_race(pg_url, 6)) == [False] * 5 + [True]


def test_busy_apply_on_postgres(make_service, pg_url):
    svc = make_service(db_url=pg_url)
    svc.add_request([4], requester="alice")
    assert svc.ledger.try_acquire("elsewhere|1|x", 600)
    with pytest.raises(ApplyInProgressError):
        svc.apply()
    svc.ledger.release("elsewhere|1|x")
    assert svc.apply().status == "succeeded"


def test_failed_cancelled_and_artefacts_on_postgres(make_service, pg_url, tmp_path):
    from sqlalchemy import create_engine, text

    svc = make_service(db_url=pg_url, method="test-ledger-nan")
    a = svc.add_request([4, 5], requester="alice")
    b = svc.add_request([6], requester="bob")
    assert svc.apply().status == "failed"
    assert [r.status for r in svc.list_requests()] == ["failed", "failed"]
    assert svc.cancel_request(b.id, by="dpo").status == "cancelled"
    result = svc.apply(method="test-ledger-sgd")
    assert result.status == "succeeded" and result.runs[-1].request_ids == (a.id,)
    assert svc.current_version().forgotten_ids == (4, 5)
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT path, status FROM artefacts ORDER BY id")).all()
    engine.dispose()
    assert [status for _, status in rows] == ["committed", "committed"]  # the original and the run's model
    assert {path for path, _ in rows} == {v.path for v in svc.list_versions()}
