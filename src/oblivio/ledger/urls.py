"""Ledger database URLs that cannot hold a ledger: in-memory SQLite, and SQLite with its file locking switched off
(split from :mod:`oblivio.ledger.db`, which re-exports :func:`check_persistent_url`)."""

from __future__ import annotations

from typing import Any

from .errors import LedgerError


def _safe_url(url: str) -> str:
    """``url`` with its password masked, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: say nothing about it
        return "(database URL)"


def _sqlite_options(database: str, query: Any) -> tuple[str, list[tuple[str, str]]]:
    """The database name SQLite would open for ``database`` (a SQLAlchemy URL's database part) and every option
    it would read, from the URL's ``query`` and, for a ``file:`` URI, from the URI itself: keys and values
    percent-decoded, stripped and lower-cased."""
    from urllib.parse import parse_qsl, unquote

    options: list[tuple[str, str]] = []
    for key, value in dict(query).items():
        options += [(key, v) for v in (value if isinstance(value, tuple) else (value,))]
    name = database
    if database.lower().startswith("file:"):
        name, _, inner = database[5:].partition("?")
        options += parse_qsl(inner, keep_blank_values=True)
        name = unquote(name.split("#", 1)[0])
        if name.startswith("//"):  # file://host/path: the authority part is empty or localhost
            name = name[2:].partition("/")[2]
    return name, [(k.strip().lower(), unquote(str(v)).strip().lower()) for k, v in options]


def _sqlite_in_memory(database: str, query: Any) -> bool:
    """True when SQLite would keep ``database`` with the URL's ``query`` options in memory or in a temporary file:
    ``:memory:`` in any spelling, an empty name, and for a ``file:`` URI (``uri=true``) ``mode=memory``,
    ``vfs=memdb`` (or any in-memory VFS) or an empty or ``:memory:`` path (:func:`_sqlite_options`)."""
    name, opts = _sqlite_options(database, query)
    return (
        name.strip().lower() in ("", ":memory:")
        or any(k == "mode" and v == "memory" for k, v in opts)
        or any(k == "vfs" and "mem" in v for k, v in opts)
    )


def _sqlite_unlocked(database: str, query: Any) -> bool:
    """True when the URL's options switch SQLite's file locking off (``nolock=1``, a ``*-none`` or ``*-nolock``
    VFS such as ``unix-none``): the ledger's ``BEGIN IMMEDIATE`` transactions and its apply lease rely on it."""
    _, opts = _sqlite_options(database, query)
    return any(k == "nolock" and v not in ("0", "false", "no", "off") for k, v in opts) or any(
        k == "vfs" and ("none" in v or "nolock" in v or "dotfile" in v) for k, v in opts
    )


def check_persistent_url(url: str) -> None:
    """Refuse a ledger URL whose database cannot outlive the process: in-memory or temporary SQLite (``sqlite://``,
    ``sqlite:///:memory:`` in any case, ``file::memory:``, an empty ``file:`` name, any ``mode=memory`` or
    ``vfs=memdb``, in the URL's options or inside a ``file:`` URI).

    A ledger there would record a request, report it ``pending``, and lose it when the command ends.

    Raises:
        LedgerError: the URL names an in-memory database.

    Example:
        >>> check_persistent_url("sqlite:///:memory:")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        oblivio.ledger.db.LedgerError: the ledger database sqlite:///:memory: is in memory...
        >>> check_persistent_url("sqlite:///file:x?vfs=memdb&uri=true")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        oblivio.ledger.db.LedgerError: the ledger database sqlite:///file:x?vfs=memdb&uri=true is in memory...
    """
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
    except Exception:  # malformed: make_engine says so
        return
    if not u.drivername.startswith("sqlite"):
        return
    if _sqlite_in_memory(u.database or "", u.query):
        shown = url if u.password is None else _safe_url(url)
        raise LedgerError(
            f"the ledger database {shown} is in memory: it vanishes when this command ends, and every "
            "request recorded in it with it; keep the ledger in a file (leave --db-url out for "
            "sqlite:///WORKDIR/ledger.db) or on a database server (postgresql+psycopg://user@host/db)"
        )
    if _sqlite_unlocked(u.database or "", u.query):
        shown = url if u.password is None else _safe_url(url)
        raise LedgerError(
            f"the ledger database {shown} switches SQLite's file locking off (nolock / a no-lock VFS): two commands "
            "could then write the ledger at once and corrupt it; leave the option out"
        )
