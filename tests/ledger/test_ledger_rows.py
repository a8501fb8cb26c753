"""Rows every sound ledger has are read through Ledger.state() / Ledger.row(): a row removed by hand is a
LedgerError naming it, not an AttributeError on None (issue 25, found by mypy)."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from oblivio.ledger import Ledger, LedgerError
from oblivio.ledger.db import rowcount
from oblivio.ledger.schema import LedgerState, UnlearningRun


@pytest.fixture()
def ledger(tmp_path):
    led = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield led
    led.dispose()


def test_state_row_is_read_and_a_missing_one_is_named(ledger):
    with ledger.Session() as s:
        assert ledger.state(s).current_version_id is None
    assert ledger.current_version_id() is None
    with ledger.transaction() as s:
        s.execute(delete(LedgerState))  # changed by hand
        with pytest.raises(LedgerError, match=r"has no state row: it is damaged or was changed by hand"):
            ledger.state(s)


def test_missing_run_row_is_named(ledger):
    with ledger.Session() as s, pytest.raises(LedgerError, match=r"has no run 42: .* restore it from a backup"):
        ledger.row(s, UnlearningRun, 42, what="run 42")


def test_rowcount_reads_dml_results_and_refuses_others(ledger):
    with ledger.transaction() as s:
        assert rowcount(s.execute(delete(UnlearningRun))) == 0
        with pytest.raises(TypeError, match="CursorResult"):
            rowcount(s.execute(select(UnlearningRun)).scalars())
