"""The ledger's database layer: engine set-up, reading records (:mod:`.records`), and the apply lease.

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
import errno
import logging
import math
import os
import socket
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, or_, select, update
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..utils import LEDGER_MARKER, SQLITE_MAGIC
from .errors import ApplyInProgressError, LedgerError  # noqa: F401  (re-exported: their documented home)
from .records import LeaseInfo, RequestRecord, RunRecord, VersionRecord, lenient_json_loads
from .schema import (
    LEASE_NAME,
    SCHEMA_VERSION,
    ApplyLease,
    Base,
    DeletionRequest,
    LedgerState,
    ModelVersion,
    UnlearningRun,
    utcnow,
)
from .urls import _safe_url, check_persistent_url  # noqa: F401  (re-exported: their documented home)

log = logging.getLogger("oblivio.ledger")

_Row = TypeVar("_Row")


def rowcount(result: Result[Any]) -> int:
    """The number of rows an ``UPDATE`` / ``DELETE`` matched. ``Session.execute`` is typed as returning the general
    ``Result``; such a statement's result is a ``CursorResult``, which is checked here rather than assumed."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"expected the CursorResult of an UPDATE or DELETE, got {type(result).__name__}")
    return result.rowcount


# ---------------------------------------------------------------------------------------------- holders
def new_holder() -> str:
    """A unique lease-holder id: ``host|pid|token``."""
    return f"{socket.gethostname()}|{os.getpid()}|{uuid.uuid4().hex[:12]}"


def holder_is_dead(holder: str) -> bool:
    """True when ``holder`` ran on this host in a process that no longer exists (a killed apply).

    The liveness check is ``psutil.pid_exists`` (portable: POSIX and Windows), not ``os.kill(pid, 0)``, which on
    Windows would terminate the process instead of probing it. A holder from another host is never judged dead
    here: only its lease expiry frees it.
    """
    import psutil

    try:
        host, pid_text, _ = holder.split("|", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname() or pid <= 0:
        return False
    return not psutil.pid_exists(pid)


# ---------------------------------------------------------------------------------------------- engine
def _db_message(exc: BaseException) -> str:
    """The driver's own one-line message of a SQLAlchemy error (without the SQL and the background link)."""
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _write_marker(marker: Path) -> None:
    """Create the ledger folder's marker file once, so that output paths are never written into its models/
    (utils.ledger_of_models_path). O_CREAT | O_EXCL never follows a link planted in its place; a read-only ledger
    folder (request list / report still work there) or an existing marker is left as it is."""
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError:
        return
    with os.fdopen(fd, "w") as fh:
        fh.write("an oblivio ledger folder: its models/ holds only the files the ledger writes\n")


def open_workdir(workdir: str | os.PathLike) -> Path:
    """The ledger's folder, created if missing; a clear error for an empty name, a symbolic-link loop, a file in
    its place, or a folder that cannot be created.

    Raises:
        LedgerError: see above (nothing is created).
    """
    if not str(workdir).strip():
        raise LedgerError(
            "--workdir is empty: name the ledger's folder (default ./oblivio-ledger); an empty name would put the "
            "ledger in the current folder"
        )
    path = Path(workdir)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LedgerError(
                f"--workdir {path} is a symbolic link loop (a link that leads back to itself); remove the link or "
                "give another folder"
            ) from None
        raise LedgerError(f"--workdir {path} cannot be opened: {exc.strerror or exc}") from None
    if st is not None and not path.is_dir():
        raise LedgerError(f"--workdir {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / "models").mkdir(exist_ok=True)
        _write_marker(path / LEDGER_MARKER)
    except PermissionError as exc:
        raise LedgerError(
            f"cannot create the ledger folder {exc.filename or path}: permission denied; give a --workdir you can "
            "write to, or make it writable"
        ) from None
    except FileNotFoundError as exc:  # a dangling symbolic link on the way
        raise LedgerError(f"cannot create the ledger folder {path}: {exc.strerror} ({exc.filename})") from None
    return path


MAX_LEASE_SECONDS = 7 * 24 * 3600.0
# The lease is renewed every max(lease / 4, 0.05) s (ledger/lease.py); a shorter lease would expire between two
# renewals of a live apply and let a second apply take it over.
MIN_LEASE_SECONDS = 0.25
"""The longest apply lease: a week. The lease is renewed every quarter of its length while the apply works, so a
long one buys nothing; it only decides how long a killed apply blocks the next (and ``1e300`` overflowed)."""


def check_lease_seconds(lease_seconds: float) -> float:
    """``lease_seconds`` as a finite float in ``[MIN_LEASE_SECONDS, MAX_LEASE_SECONDS]`` (``nan``, ``inf``, ``1e300``
    and ``0.0001`` refused)."""
    try:
        value = float(lease_seconds)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"lease_seconds must be a number of seconds, got {lease_seconds!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"lease_seconds must be a finite number of seconds > 0, got {lease_seconds!r}")
    if value < MIN_LEASE_SECONDS:
        raise ValueError(
            f"lease_seconds must be at least {MIN_LEASE_SECONDS} s, got {lease_seconds!r}: the lease is renewed "
            "every quarter of its length, and a shorter one would expire under a live apply"
        )
    if value > MAX_LEASE_SECONDS:
        raise ValueError(
            f"lease_seconds must be at most {MAX_LEASE_SECONDS:.0f} (a week), got {lease_seconds!r}: the lease is "
            "renewed while the apply runs, its length only decides how long a killed apply blocks the next one"
        )
    return value


LEDGER_TABLES = ("deletion_requests", "unlearning_runs", "model_versions", "ledger_state", "apply_lease")


def make_engine(url: str, *, busy_timeout: float = 60.0) -> Engine:
    """An engine for ``url``; on SQLite with a busy timeout and ``BEGIN IMMEDIATE`` transactions.

    Raises:
        LedgerError: the URL is malformed, names an unknown database, or its driver is not installed.
    """
    from sqlalchemy.exc import ArgumentError

    try:
        # A JSON column that does not parse reaches the records as CorruptJSON, which name the row (not a bare
        # "Expecting value: line 1 column 1").
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": busy_timeout}, json_deserializer=lenient_json_loads)
        else:
            engine = create_engine(url, pool_pre_ping=True, json_deserializer=lenient_json_loads)
    except ArgumentError as exc:  # NoSuchModuleError (unknown dialect) is an ArgumentError
        raise LedgerError(
            f"bad ledger database URL {_safe_url(url)}: {exc}; expected e.g. sqlite:///path/ledger.db or "
            "postgresql+psycopg://user:password@host/db"
        ) from None
    except ImportError as exc:  # the dialect exists but its driver is not installed
        raise LedgerError(
            f"the driver for {_safe_url(url)} is not installed ({exc}); for PostgreSQL: "
            "pip install 'oblivio[postgres]' (psycopg 3)"
        ) from None
    if url.startswith("sqlite"):
        millis = int(busy_timeout * 1000)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):  # pragma: no cover - exercised through every test
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_connection.cursor()
            cur.execute(f"PRAGMA busy_timeout = {millis}")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):  # pragma: no cover
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
    except Exception:
        return None
    if (
        not u.drivername.startswith("sqlite")
        or not u.database
        or u.database == ":memory:"
        or u.database.startswith("file:")
    ):
        return None
    return Path(u.database)


class Ledger:
    """The tables behind a :class:`~oblivio.ledger.DeletionService`.

    A new ledger is created only where there is none: for SQLite, when the file does not exist (it is built beside
    its final name and linked into place, so a ledger file is never seen half-created); for other databases, when
    none of the ledger's tables exist. Anything else that is not a readable ledger (an empty or truncated file, a
    damaged database, another application's SQLite file, a ledger missing its tables) is a :class:`LedgerError`,
    never silently a fresh ledger: a fresh ledger would forget the history of every model version.

    Args:
        url: a SQLAlchemy database URL.
        busy_timeout: seconds a SQLite writer waits for another's lock before "database is locked".

    Raises:
        LedgerError: see above; also a bad URL or a missing driver.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> ledger = Ledger(f"sqlite:///{d}/ledger.db")
        >>> ledger.current_version_id() is None
        True
        >>> open(f"{d}/empty.db", "wb").close()
        >>> Ledger(f"sqlite:///{d}/empty.db")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        oblivio.ledger.db.LedgerError: ... is an empty file, not a ledger...
    """

    def __init__(self, url: str, *, busy_timeout: float = 60.0) -> None:
        check_persistent_url(url)
        self.url = url
        self.busy_timeout = float(busy_timeout)
        path = sqlite_path(url)
        if path is not None and not path.exists():
            self._create_sqlite_file(path)
        self.engine = make_engine(url, busy_timeout=self.busy_timeout)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        try:
            self._open(path)
        except BaseException:
            self.engine.dispose()
            raise

    def _create_sqlite_file(self, path: Path) -> None:
        """Build a new SQLite ledger beside ``path`` and link it into place (a second creator loses cleanly)."""
        import tempfile

        if not path.parent.is_dir():
            raise LedgerError(f"cannot create the ledger {path}: folder {path.parent} does not exist")
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
        os.close(fd)
        os.unlink(tmp)  # SQLite creates it
        engine = make_engine(f"sqlite:///{tmp}", busy_timeout=self.busy_timeout)
        try:
            Base.metadata.create_all(engine)
            with sessionmaker(engine).begin() as s:
                s.add(LedgerState(id=1, schema_version=SCHEMA_VERSION))
                s.add(ApplyLease(name=LEASE_NAME))
            engine.dispose()
            # private like the model files (0600): the ledger names requesters and the ids of their data; SQLite
            # gives its journal files the database file's mode
            os.chmod(tmp, 0o600)
            with contextlib.suppress(FileExistsError):  # created by another process meanwhile: use theirs
                os.link(tmp, path)  # atomic "create if absent"
        finally:
            engine.dispose()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            for suffix in ("-journal", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp + suffix)

    def _open(self, path: Path | None) -> None:
        from sqlalchemy import inspect
        from sqlalchemy.exc import SQLAlchemyError

        where = _safe_url(self.url)
        if path is not None:
            try:
                with open(path, "rb") as fh:
                    head = fh.read(len(SQLITE_MAGIC))
            except OSError as exc:
                raise LedgerError(f"cannot read the ledger {path}: {exc.strerror or exc}") from None
            if not head:
                raise LedgerError(
                    f"{path} is an empty file, not a ledger (a ledger file is never empty). If it "
                    "should hold your history, restore it from a backup; to start a new ledger, use "
                    "another --workdir. Nothing was changed."
                )
            if head != SQLITE_MAGIC:
                raise LedgerError(
                    f"{path} is not a SQLite database (truncated, damaged or another kind of file); "
                    "restore it from a backup. Nothing was changed."
                )
        try:
            with self.engine.connect() as conn:
                if path is not None:
                    check = conn.exec_driver_sql("PRAGMA quick_check").scalar()
                    if check != "ok":
                        raise LedgerError(
                            f"the ledger {path} is damaged (SQLite quick_check: {check}); restore it "
                            "from a backup. Nothing was changed."
                        )
                tables = set(inspect(conn).get_table_names())
        except LedgerError:
            raise
        except SQLAlchemyError as exc:
            if path is not None:
                raise LedgerError(
                    f"the ledger {path} is damaged ({_db_message(exc)}); restore it from a backup. Nothing was changed."
                ) from None
            raise LedgerError(f"cannot open the ledger {where}: {_db_message(exc)}") from None
        ours = tables.intersection(LEDGER_TABLES)
        if path is not None and not ours:
            raise LedgerError(
                f"{path} is a SQLite database but not an oblivio ledger (tables: "
                f"{', '.join(sorted(tables)) or 'none'}); refusing to use it. Nothing was changed."
            )
        if ours and ours != set(LEDGER_TABLES):
            missing = sorted(set(LEDGER_TABLES) - ours)
            raise LedgerError(
                f"the ledger {where} lacks table(s) {', '.join(missing)}: it is damaged or was "
                "changed by hand; restore it from a backup. Nothing was changed."
            )
        if not ours:
            self._create_tables()
        with self.Session() as s:
            state = s.get(LedgerState, 1)
            lease = s.get(ApplyLease, LEASE_NAME)
        if state is None or lease is None:
            raise LedgerError(
                f"the ledger {where} has no state row: it is damaged or was changed by hand; restore it "
                "from a backup. Nothing was changed."
            )
        if state.schema_version == 1:  # version 2 only added the artefacts table
            Base.metadata.create_all(self.engine)
            with self.transaction() as s:
                self.state(s).schema_version = SCHEMA_VERSION
            log.info("upgraded the ledger %s from schema version 1 to %d", where, SCHEMA_VERSION)
        elif state.schema_version != SCHEMA_VERSION:
            raise LedgerError(
                f"ledger {where} has schema version {state.schema_version}; this oblivio reads version {SCHEMA_VERSION}"
            )

    def _create_tables(self) -> None:
        """Create the tables of a new (non-SQLite-file) ledger; safe when several processes do it at once."""
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

    def row(self, session: Session, table: type[_Row], key: Any, *, what: str, for_update: bool = False) -> _Row:
        """``session.get(table, key)``, or a :class:`LedgerError` naming the missing row (``what``).

        For rows that exist in every sound ledger (the state row, a run or an artefact this service recorded): one
        is missing only when the database was changed by hand, and the error says so instead of failing later on
        ``None``.
        """
        row = session.get(table, key, with_for_update=for_update)
        if row is None:
            raise LedgerError(
                f"the ledger {_safe_url(self.url)} has no {what}: it is damaged or was changed by hand; restore it "
                "from a backup. Nothing was changed."
            )
        return row

    def state(self, session: Session, *, for_update: bool = False) -> LedgerState:
        """The ledger's one state row (current version, bound experiment, schema version)."""
        return self.row(session, LedgerState, 1, what="state row", for_update=for_update)

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
            res = s.execute(
                update(ApplyLease)
                .where(ApplyLease.name == LEASE_NAME, free)
                .values(holder=holder, acquired_at=now, expires_at=now + timedelta(seconds=ttl_seconds))
            )
            won = rowcount(res) == 1
        if won and current is not None and current != holder:
            log.warning("took over the apply lease from %s (expired or its process is gone)", current)
        return won

    def renew(self, holder: str, ttl_seconds: float, *, session: Session | None = None) -> bool:
        """Extend ``holder``'s lease; False when it no longer holds it."""
        stmt = (
            update(ApplyLease)
            .where(ApplyLease.name == LEASE_NAME, ApplyLease.holder == holder)
            .values(expires_at=utcnow() + timedelta(seconds=ttl_seconds))
        )
        if session is not None:
            return rowcount(session.execute(stmt)) == 1
        with self.transaction() as s:
            return rowcount(s.execute(stmt)) == 1

    def release(self, holder: str) -> None:
        with self.transaction() as s:
            s.execute(
                update(ApplyLease)
                .where(ApplyLease.name == LEASE_NAME, ApplyLease.holder == holder)
                .values(holder=None, acquired_at=None, expires_at=None)
            )

    def lease_info(self) -> LeaseInfo:
        with self.Session() as s:
            row = s.get(ApplyLease, LEASE_NAME)
            return LeaseInfo(row.holder, row.acquired_at, row.expires_at) if row else LeaseInfo(None, None, None)

    # ------------------------------------------------------------------ reads
    def id_in_range(self, row_id: int) -> bool:
        """Whether ``row_id`` fits the ledger's id columns (``INTEGER``: 32 bits on PostgreSQL, 64 on SQLite); an id
        beyond them names no row (asking the database would overflow)."""
        high = 2**31 - 1 if self.engine.dialect.name == "postgresql" else 2**63 - 1
        return 1 <= row_id <= high

    def current_version_id(self) -> int | None:
        with self.Session() as s:
            return self.state(s).current_version_id

    def requests(self, *, status: str | None = None) -> list[RequestRecord]:
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
            cur = self.state(s).current_version_id
            return [VersionRecord.from_row(v, cur) for v in s.scalars(select(ModelVersion).order_by(ModelVersion.id))]

    def version(self, version_id: int) -> VersionRecord | None:
        with self.Session() as s:
            cur = self.state(s).current_version_id
            row = s.get(ModelVersion, version_id)
            return VersionRecord.from_row(row, cur) if row else None
