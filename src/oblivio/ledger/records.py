"""The ledger's records: requests, runs, model versions and the lease as plain frozen data.

Each record is read from its ORM row (``from_row``) inside a session and stays usable after the session closes;
``to_dict`` gives its JSON form (reports, the CLI's ``--json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .schema import DeletionRequest, ModelVersion, UnlearningRun


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
            tuple(int(i) for i in r.sample_ids),
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
            tuple(r.request_ids),
            r.method,
            dict(r.hparams or {}),
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
            tuple(int(i) for i in r.forgotten_ids),
            dict(r.metrics or {}),
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


__all__ = ["LeaseInfo", "RequestRecord", "RunRecord", "VersionRecord"]
