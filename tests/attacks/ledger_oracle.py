"""An independent reading of a ledger (no oblivio code): the SQLite file through the standard library's sqlite3, or,
in the PostgreSQL runs (``$OBLIVIO_LEDGER_URL`` set by the ``ledger_backend`` fixture), the database through
psycopg; and the invariant every fault-injection test checks after recovery."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import torch


def snapshot_files(folder: Path) -> dict[str, tuple[str, int]]:
    """``{relative path: (sha256, mtime_ns)}`` of every file under ``folder``."""
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def connect(db: Path):
    """A DB-API connection to the ledger the test's services use: ``$OBLIVIO_LEDGER_URL`` (PostgreSQL) when set,
    else the SQLite file ``db``."""
    url = os.environ.get("OBLIVIO_LEDGER_URL")
    if url:
        import psycopg

        return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True)
    return sqlite3.connect(db)  # read-write: SQLite must be able to roll back a hot journal a crash left


def _json(value):
    return value if not isinstance(value, str) else json.loads(value)  # PostgreSQL's driver decodes JSON itself


def execute(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Run one statement on the ledger (``?`` placeholders on both backends); its rows (empty for a write)."""
    con = connect(db)
    try:
        if not isinstance(con, sqlite3.Connection):
            sql = sql.replace("?", "%s")
        cur = con.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
        con.commit()
        return rows
    finally:
        con.close()


def read_ledger(db: Path) -> dict:
    con = connect(db)
    try:
        requests = [
            dict(id=r[0], status=r[1], applied_run=r[2], applied_version=r[3], ids=_json(r[4]))
            for r in con.execute(
                "SELECT id, status, applied_run_id, applied_version_id, sample_ids FROM deletion_requests ORDER BY id"
            )
        ]
        runs = [
            dict(id=r[0], status=r[1], request_ids=_json(r[2]), result_version=r[3])
            for r in con.execute("SELECT id, status, request_ids, result_version_id FROM unlearning_runs ORDER BY id")
        ]
        versions = [
            dict(id=r[0], path=r[1], forgotten=_json(r[2]))
            for r in con.execute("SELECT id, path, forgotten_ids FROM model_versions ORDER BY id")
        ]
        current = con.execute("SELECT current_version_id FROM ledger_state WHERE id = 1").fetchone()[0]
    finally:
        con.close()
    return {"requests": requests, "runs": runs, "versions": versions, "current": current}


def check_invariant(workdir: Path, user_files: dict[str, tuple[str, int]], *, settled: bool) -> dict:
    """Assert the ledger's invariant; returns the ledger as read.

    * every request is open (pending/failed; only while not ``settled``), applied exactly once, or cancelled;
    * an applied request is served by exactly one run that applied its requests, and the version it names exists
      and forgets its ids;
    * every model file the ledger references exists and loads (``weights_only=True``) as a dict of tensors;
    * the user's files (``user_files``, from :func:`snapshot_files`) are byte-for-byte and mtime unchanged;
    * once ``settled`` (after recovery), the models folder holds only referenced model files and the user's files
      (nothing half-written or uncommitted left).
    """
    led = read_ledger(workdir / "ledger.db")
    allowed = {"applied", "cancelled"} | (set() if settled else {"pending", "failed"})
    done_runs = [r for r in led["runs"] if r["status"] in ("succeeded", "no-op")]
    versions = {v["id"]: v for v in led["versions"]}
    for req in led["requests"]:
        assert req["status"] in allowed, req
        serving = [r for r in done_runs if req["id"] in r["request_ids"]]
        if req["status"] == "applied":
            assert len(serving) == 1 and serving[0]["id"] == req["applied_run"], (req, serving)
            assert set(req["ids"]) <= set(versions[req["applied_version"]]["forgotten"])
        else:
            assert not serving, (req, serving)
    for v in led["versions"]:
        path = workdir / v["path"]
        assert path.is_file(), f"version {v['id']}: {path} is missing"
        state = torch.load(path, weights_only=True)
        assert isinstance(state, dict) and all(isinstance(t, torch.Tensor) for t in state.values())
    if led["versions"]:
        assert led["current"] == max(versions)
    now = snapshot_files(workdir)
    for rel, sig in user_files.items():
        assert now.get(rel) == sig, f"the user's file {rel} was touched"
    referenced = {str(Path(v["path"])) for v in led["versions"]}
    stray = [rel for rel in now if rel.startswith("models") and rel not in referenced and rel not in user_files]
    if settled:  # before recovery, a killed apply may have left the file it was writing
        assert not stray, f"files left in models/: {stray}"
    return led
