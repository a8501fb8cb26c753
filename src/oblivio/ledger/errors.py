"""The ledger's error types, in a module of their own so that the records (which refuse a damaged row) and the
database layer both raise them without importing each other. ``oblivio.ledger.db`` re-exports them: that stays
their documented home (tracebacks and doctests name ``oblivio.ledger.db.LedgerError``)."""

from __future__ import annotations


class LedgerError(RuntimeError):
    """The ledger cannot do what was asked (wrong experiment, inconsistent state, lost lease...)."""

    __module__ = "oblivio.ledger.db"


class ApplyInProgressError(LedgerError):
    """Another process holds the apply lease."""

    __module__ = "oblivio.ledger.db"


__all__ = ["ApplyInProgressError", "LedgerError"]
