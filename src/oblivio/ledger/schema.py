"""The ledger's tables (SQLAlchemy 2 ORM), portable across SQLite and PostgreSQL.

Six tables:

* ``deletion_requests``: one row per deletion request, committed before anything else happens.
* ``unlearning_runs``: one row per ``apply``: which requests it served together, the method and its
  hyper-parameters, the seed, start / end, status and error text.
* ``model_versions``: every model the ledger has served: the ``state_dict_hash``, the checkpoint path, the parent
  version, the run that produced it, the cumulative forget set and the verification metrics.
* ``ledger_state``: a single row pointing at the current model version (and the experiment the ledger serves).
* ``apply_lease``: a single row that is the apply lock; taken by a conditional ``UPDATE ... WHERE holder IS NULL
  OR expired``, so that exactly one process can apply at a time on any database.
* ``artefacts``: every file the service writes, recorded (``pending``) *before* the file is written and marked
  ``committed`` in the transaction that makes it part of a version. Recovery after a crash deletes only files
  recorded here and still ``pending``; the service never deletes a file it did not record creating.

Only portable column types are used (``JSON``, ``DateTime``, ``String``, ``Text``, ``Integer``, ``Float``); times
are naive UTC.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_VERSION = 2
"""Version 2 added the ``artefacts`` table (a version-1 ledger is upgraded in place when opened)."""

REQUEST_STATUSES = ("pending", "applied", "rejected", "failed", "cancelled")
"""``failed``: the last run that tried the request failed (it is retried by the next apply, like ``pending``)."""
OPEN_STATUSES = ("pending", "failed")
"""Requests an apply serves."""
RUN_STATUSES = ("running", "succeeded", "no-op", "failed", "abandoned")
"""``no-op``: the run finished but the method returned the parent's weights unchanged (same hash)."""
DONE_RUN_STATUSES = ("succeeded", "no-op")
"""Runs that applied their requests."""
LEASE_NAME = "apply"


def utcnow() -> datetime:
    """The current time, naive UTC (what every timestamp column holds)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class DeletionRequest(Base):
    """A deletion request: sample ids of the training set that a requester wants forgotten."""

    __tablename__ = "deletion_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    requester: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sample_ids: Mapped[list] = mapped_column(JSON)
    n_samples: Mapped[int] = mapped_column(Integer)
    ids_hash: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    status_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    base_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    applied_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    applied_run_id: Mapped[int | None] = mapped_column(ForeignKey("unlearning_runs.id"), nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class UnlearningRun(Base):
    """One ``apply``: a batch of requests served together by one method run."""

    __tablename__ = "unlearning_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_ids: Mapped[list] = mapped_column(JSON)
    method: Mapped[str] = mapped_column(String(100))
    hparams: Mapped[dict] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(Integer)
    parent_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    result_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    n_forget: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    holder: Mapped[str | None] = mapped_column(String(200), nullable=True)


class ModelVersion(Base):
    """A model the ledger has served (version 1 is the experiment's original model)."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hash: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    # No foreign key here: runs already reference versions, and a cycle would need ALTER TABLE on PostgreSQL.
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    forgotten_ids: Mapped[list] = mapped_column(JSON)
    metrics: Mapped[dict] = mapped_column(JSON)


class LedgerState(Base):
    """The single row (id 1) holding the current model version and the experiment this ledger serves."""

    __tablename__ = "ledger_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schema_version: Mapped[int] = mapped_column(Integer, default=SCHEMA_VERSION)
    current_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    experiment_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    experiment: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class Artefact(Base):
    """A file the service wrote (or is about to write) under its working folder."""

    __tablename__ = "artefacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ApplyLease(Base):
    """The apply lock: ``holder`` is NULL when free; a holder whose ``expires_at`` passed is stale."""

    __tablename__ = "apply_lease"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200), nullable=True)
    acquired_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
