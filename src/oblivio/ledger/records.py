"""The ledger's records: requests, runs, model versions and the lease as plain frozen data.

Each record is read from its ORM row (``from_row``) inside a session and stays usable after the session closes;
``to_dict`` gives its JSON form (reports, the CLI's ``--json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import LedgerError
from .schema import DeletionRequest, ModelVersion, UnlearningRun


class CorruptJSON(str):
    """The text of a JSON column that does not parse (the ledger engine's ``json_deserializer`` returns it instead
    of raising, so that the record that holds it can name its table, row and column)."""


def lenient_json_loads(text: str) -> Any:
    """``json.loads``, or :class:`CorruptJSON` for text that is not JSON (the engine's ``json_deserializer``)."""
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return CorruptJSON(text)


def _corrupt(table: str, row_id: Any, column: str, value: Any, expected: str) -> Exception:
    shown = str(value) if isinstance(value, CorruptJSON) else json.dumps(value, default=repr)
    return LedgerError(
        f"the ledger database is damaged or was edited by hand: {table} row {row_id}, column {column} holds "
        f"{shown[:80]} ({'not JSON' if isinstance(value, CorruptJSON) else 'not ' + expected}); restore the "
        "database from a backup. Nothing was changed."
    )


def strict_ids(value: Any, table: str, row_id: Any, column: str) -> tuple[int, ...]:
    """A stored id list as a tuple of ints; anything else (not JSON, not a list, ``1.5``, ``"x"``, ``true``) is a
    :class:`~oblivio.ledger.LedgerError` naming the row: a damaged ledger must never forget the wrong samples."""
    if not isinstance(value, list) or any(isinstance(i, bool) or not isinstance(i, int) for i in value):
        raise _corrupt(table, row_id, column, value, "a list of integer ids")
    return tuple(value)


def strict_mapping(value: Any, table: str, row_id: Any, column: str) -> dict:
    """A stored JSON object as a dict (``None`` is an empty one); anything else names the row."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _corrupt(table, row_id, column, value, "a JSON object")
    return dict(value)


@dataclass(frozen=True)
class RequestRecord:
    """A deletion request as stored (plain data, detached from any database session)."""

    id: int
    requester: str
    created_at: datetime
    sample_ids: tuple[int, ...]
    reason: str | None
    status: str
    status_detail: str | None
    base_version_id: int | None
    applied_version_id: int | None
    applied_run_id: int | None

    @classmethod
    def from_row(cls, r: DeletionRequest) -> RequestRecord:
        return cls(
            r.id,
            r.requester,
            r.created_at,
            strict_ids(r.sample_ids, "deletion_requests", r.id, "sample_ids"),
            r.reason,
            r.status,
            r.status_detail,
            r.base_version_id,
            r.applied_version_id,
            r.applied_run_id,
        )

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "requester": self.requester,
            "created_at": self.created_at.isoformat() + "Z",
            "n_samples": len(self.sample_ids),
            "sample_ids": list(self.sample_ids),
            "reason": self.reason,
            "status": self.status,
            "status_detail": self.status_detail,
            "base_version": self.base_version_id,
            "applied_version": self.applied_version_id,
            "applied_run": self.applied_run_id,
        }


@dataclass(frozen=True)
class RunRecord:
    """One apply run."""

    id: int
    request_ids: tuple[int, ...]
    method: str
    hparams: dict
    seed: int
    parent_version_id: int | None
    result_version_id: int | None
    n_forget: int
    started_at: datetime
    ended_at: datetime | None
    seconds: float | None
    status: str
    error: str | None

    @classmethod
    def from_row(cls, r: UnlearningRun) -> RunRecord:
        return cls(
            r.id,
            strict_ids(r.request_ids, "unlearning_runs", r.id, "request_ids"),
            r.method,
            strict_mapping(r.hparams, "unlearning_runs", r.id, "hparams"),
            r.seed,
            r.parent_version_id,
            r.result_version_id,
            r.n_forget,
            r.started_at,
            r.ended_at,
            r.seconds,
            r.status,
            r.error,
        )

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "request_ids": list(self.request_ids),
            "method": self.method,
            "hparams": self.hparams,
            "seed": self.seed,
            "parent_version": self.parent_version_id,
            "result_version": self.result_version_id,
            "n_forget": self.n_forget,
            "started_at": self.started_at.isoformat() + "Z",
            "ended_at": self.ended_at.isoformat() + "Z" if self.ended_at else None,
            "seconds": self.seconds,
            "status": self.status,
            "error": self.error,
        }


@dataclass(frozen=True)
class VersionRecord:
    """A model version."""

    id: int
    hash: str
    path: str
    parent_id: int | None
    run_id: int | None
    created_at: datetime
    forgotten_ids: tuple[int, ...]
    metrics: dict
    is_current: bool

    @classmethod
    def from_row(cls, r: ModelVersion, current_id: int | None) -> VersionRecord:
        return cls(
            r.id,
            r.hash,
            r.path,
            r.parent_id,
            r.run_id,
            r.created_at,
            strict_ids(r.forgotten_ids, "model_versions", r.id, "forgotten_ids"),
            strict_mapping(r.metrics, "model_versions", r.id, "metrics"),
            r.id == current_id,
        )

    def to_dict(self, *, with_ids: bool = False) -> dict:
        out = {
            "id": self.id,
            "hash": self.hash,
            "path": self.path,
            "parent": self.parent_id,
            "run": self.run_id,
            "created_at": self.created_at.isoformat() + "Z",
            "n_forgotten": len(self.forgotten_ids),
            "is_current": self.is_current,
        }
        if with_ids:
            out["forgotten_ids"] = list(self.forgotten_ids)
        return out


@dataclass(frozen=True)
class LeaseInfo:
    holder: str | None
    acquired_at: datetime | None
    expires_at: datetime | None


__all__ = [
    "CorruptJSON",
    "LeaseInfo",
    "RequestRecord",
    "RunRecord",
    "VersionRecord",
    "lenient_json_loads",
    "strict_ids",
    "strict_mapping",
]
