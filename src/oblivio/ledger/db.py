"""The ledger's database layer: engine set-up, records, and the apply lease.

Any SQLAlchemy URL works (``sqlite:///path/ledger.db``, ``postgresql+psycopg://user@host/db``). The SQL is
portable; two SQLite-specific settings are applied only on SQLite: a busy timeout, and ``BEGIN IMMEDIATE`` for
every transaction, so that two writers queue on the database lock instead of failing half-way with "database is
locked" when a read transaction tries to upgrade to a write.

The apply lease is one row of ``apply_lease``. :meth:`Ledger.try_acquire` takes it with a single conditional
``UPDATE ... WHERE holder IS NULL OR expires_at < now`` (or ``holder = <a holder known to be dead>``) and reads the
row count: on every database exactly one of several concurrent callers sees 1. The holder renews the lease while it
works (a heartbeat), so a process that is killed stops renewing and its lease expires; a holder on this host whose
process no longer exists is recognised at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterator

from sqlalchemy import create_engine, event, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from .schema import (LEASE_NAME, SCHEMA_VERSION, ApplyLease, Base, DeletionRequest, LedgerState, ModelVersion,
                     UnlearningRun, utcnow)

log = logging.getLogger("oblivio.ledger")


class LedgerError(RuntimeError):
    """The ledger cannot do what was asked (wrong experiment, inconsistent state, lost lease...)."""


class ApplyInProgressError(LedgerError):
    """Another process holds the apply lease."""


# ---------------------------------------------------------------------------------------------- records
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
    def from_row(cls, r: DeletionRequest) -> "RequestRecord":
        return cls(r.id, r.requester, r.created_at, tuple(int(i) for i in r.sample_ids), r.reason, r.status,
                   r.status_detail, r.base_version_id, r.applied_version_id, r.applied_run_id)

    def to_dict(self) -> dict:
        return {"id": self.id, "requester": self.requester, "created_at": self.created_at.isoformat() + "Z",
                "n_samples": len(self.sample_ids), "sample_ids": list(self.sample_ids), "reason": self.reason,
                "status": self.status, "status_detail": self.status_detail, "base_version": self.base_version_id,
                "applied_version": self.applied_version_id, "applied_run": self.applied_run_id}


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
    def from_row(cls, r: UnlearningRun) -> "RunRecord":
        return cls(r.id, tuple(r.request_ids), r.method, dict(r.hparams or {}), r.seed, r.parent_version_id,
                   r.result_version_id, r.n_forget, r.started_at, r.ended_at, r.seconds, r.status, r.error)

    def to_dict(self) -> dict:
        return {"id": self.id, "request_ids": list(self.request_ids), "method": self.method, "hparams": self.hparams,
                "seed": self.seed, "parent_version": self.parent_version_id,
                "result_version": self.result_version_id, "n_forget": self.n_forget,
                "started_at": self.started_at.isoformat() + "Z",
                "ended_at": self.ended_at.isoformat() + "Z" if self.ended_at else None, "seconds": self.seconds,
                "status": self.status, "error": self.error}


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
    def from_row(cls, r: ModelVersion, current_id: int | None) -> "VersionRecord":
        return cls(r.id, r.hash, r.path, r.parent_id, r.run_id, r.created_at,
                   tuple(int(i) for i in r.forgotten_ids), dict(r.metrics or {}), r.id == current_id)

    def to_dict(self, *, with_ids: bool = False) -> dict:
        out = {"id": self.id, "hash": self.hash, "path": self.path, "parent": self.parent_id, "run": self.run_id,
               "created_at": self.created_at.isoformat() + "Z", "n_forgotten": len(self.forgotten_ids),
               "is_current": self.is_current}
        if with_ids:
            out["forgotten_ids"] = list(self.forgotten_ids)
        return out


@dataclass(frozen=True)
class LeaseInfo:
    holder: str | None
    acquired_at: datetime | None
    expires_at: datetime | None


# ---------------------------------------------------------------------------------------------- holders
def new_holder() -> str:
    """A unique lease-holder id: ``host|pid|token``."""
    return f"{socket.gethostname()}|{os.getpid()}|{uuid.uuid4().hex[:12]}"


def holder_is_dead(holder: str) -> bool:
    """True when ``holder`` ran on this host in a process that no longer exists (a killed apply)."""
    try:
        host, pid_text, _ = holder.split("|", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# ---------------------------------------------------------------------------------------------- engine
def _safe_url(url: str) -> str:
    """``url`` with its password masked, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: say nothing about it
        return "(database URL)"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; on SQLite with a busy timeout and ``BEGIN IMMEDIATE`` transactions."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):  # pragma: no cover - exercised through every test
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA busy_timeout = 60000")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):  # pragma: no cover
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


class Ledger:
    """The tables behind a :class:`~oblivio.ledger.DeletionService` (creates them on first use).

    Args:
        url: a SQLAlchemy database URL.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        self._create()

    def _create(self) -> None:
        for attempt in range(3):
            try:
                Base.metadata.create_all(self.engine)
                break
            except (OperationalError, IntegrityError):  # two processes creating the schema at once (PostgreSQL)
                if attempt == 2:
                    raise
        for row in (LedgerState(id=1, schema_version=SCHEMA_VERSION), ApplyLease(name=LEASE_NAME)):
            try:
                with self.Session.begin() as s:
                    if s.get(type(row), row.id if isinstance(row, LedgerState) else row.name) is None:
                        s.add(row)
            except IntegrityError:  # created concurrently by another process: fine
                pass
        with self.Session() as s:
            state = s.get(LedgerState, 1)
            if state is not None and state.schema_version != SCHEMA_VERSION:
                raise LedgerError(f"ledger {_safe_url(self.url)} has schema version {state.schema_version}; this oblivio "
                                  f"reads version {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on any exception."""
        with self.Session.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ lease
    def try_acquire(self, holder: str, ttl_seconds: float) -> bool:
        """Take the apply lease for ``holder``; False when another live holder has it."""
        now = utcnow()
        with self.transaction() as s:
            current = s.execute(select(ApplyLease.holder).where(ApplyLease.name == LEASE_NAME)).scalar_one()
            free = or_(ApplyLease.holder.is_(None), ApplyLease.expires_at < now)
            if current is not None and holder_is_dead(current):
                free = or_(free, ApplyLease.holder == current)
            res = s.execute(update(ApplyLease).where(ApplyLease.name == LEASE_NAME, free)
                            .values(holder=holder, acquired_at=now, expires_at=now + timedelta(seconds=ttl_seconds)))
            won = res.rowcount == 1
        if won and current is not None and current != holder:
            log.warning("took over the apply lease from %s (expired or its process is gone)", current)
        return won

    def renew(self, holder: str, ttl_seconds: float, session: Session | None = None) -> bool:
        """Extend ``holder``'s lease; False when it no longer holds it."""
        stmt = (update(ApplyLease).where(ApplyLease.name == LEASE_NAME, ApplyLease.holder == holder)
                .values(expires_at=utcnow() + timedelta(seconds=ttl_seconds)))
        if session is not None:
            return session.execute(stmt).rowcount == 1
        with self.transaction() as s:
            return s.execute(stmt).rowcount == 1

    def release(self, holder: str) -> None:
        with self.transaction() as s:
            s.execute(update(ApplyLease).where(ApplyLease.name == LEASE_NAME, ApplyLease.holder == holder)
                      .values(holder=None, acquired_at=None, expires_at=None))

    def lease_info(self) -> LeaseInfo:
        with self.Session() as s:
            row = s.get(ApplyLease, LEASE_NAME)
            return LeaseInfo(row.holder, row.acquired_at, row.expires_at) if row else LeaseInfo(None, None, None)

    # ------------------------------------------------------------------ reads
    def current_version_id(self) -> int | None:
        with self.Session() as s:
            return s.get(LedgerState, 1).current_version_id

    def requests(self, status: str | None = None) -> list[RequestRecord]:
        with self.Session() as s:
            q = select(DeletionRequest).order_by(DeletionRequest.id)
            if status is not None:
                q = q.where(DeletionRequest.status == status)
            return [RequestRecord.from_row(r) for r in s.scalars(q)]

    def runs(self) -> list[RunRecord]:
        with self.Session() as s:
            return [RunRecord.from_row(r) for r in s.scalars(select(UnlearningRun).order_by(UnlearningRun.id))]

    def run(self, run_id: int) -> RunRecord | None:
        with self.Session() as s:
            row = s.get(UnlearningRun, run_id)
            return RunRecord.from_row(row) if row else None

    def versions(self) -> list[VersionRecord]:
        with self.Session() as s:
            cur = s.get(LedgerState, 1).current_version_id
            return [VersionRecord.from_row(v, cur) for v in s.scalars(select(ModelVersion).order_by(ModelVersion.id))]

    def version(self, version_id: int) -> VersionRecord | None:
        with self.Session() as s:
            cur = s.get(LedgerState, 1).current_version_id
            row = s.get(ModelVersion, version_id)
            return VersionRecord.from_row(row, cur) if row else None
