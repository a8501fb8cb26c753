"""Fault injection at every step of ``apply``: a kill between any two writes, a full disk, a locked database.

After recovery (the next ``apply``) the invariant of :func:`ledger_oracle.check_invariant` holds: every request is
applied exactly once (or cancelled), no model file the ledger references is missing, and no file the ledger did
not create is touched (a user's backup ``.pt`` and a stray ``.tmp`` in ``models/`` survive every recovery).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ledger_oracle import check_invariant, snapshot_files

import oblivio.ledger.service as service_module
from oblivio.ledger.service import APPLY_STAGES

WORKER = Path(__file__).resolve().parents[1] / "_ledger_worker.py"


def _plant_user_files(workdir: Path) -> dict:
    """Files a user keeps in the ledger's folder: the service must never touch them."""
    (workdir / "models").mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.ones(3)}, workdir / "models" / "my-backup.pt")
    (workdir / "models" / ".notes.tmp").write_text("mine")
    (workdir / "README.txt").write_text("do not delete")
    planted = {"models/my-backup.pt", "models/.notes.tmp", "README.txt"}
    return {rel: sig for rel, sig in snapshot_files(workdir).items() if rel in planted}


def _stages_for(first_apply: bool) -> list[str]:
    return [s for s in APPLY_STAGES if first_apply or not s.startswith("original-")]


@pytest.mark.parametrize("stage", _stages_for(True))
def test_kill_between_any_two_writes_then_recover(make_service, tmp_path, ledger_store, stage):
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    mine = _plant_user_files(workdir)
    svc.add_request([5, 6, 7], requester="alice")
    svc.add_request([8], requester="bob")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OBLIVIO_PROGRESS": "0"}
    cmd = [sys.executable, str(WORKER), str(workdir), str(ledger_store), "test-attack-sgd", "{}", stage]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    led = check_invariant(workdir, mine, settled=False)  # killed: nothing applied twice, nothing lost
    assert all(r["status"] in ("pending", "failed", "applied") for r in led["requests"])
    result = svc.apply()  # recovery
    assert result.status in ("succeeded", "nothing-to-do")  # nothing-to-do: killed after its commit
    led = check_invariant(workdir, mine, settled=True)
    assert [r["status"] for r in led["requests"]] == ["applied", "applied"]
    assert svc.ledger.lease_info().holder is None
    # a second recovery finds nothing to do and still touches nothing of the user's
    assert svc.apply().status == "nothing-to-do"
    check_invariant(workdir, mine, settled=True)


def _disk_full_save(real_save, fail_when):
    """torch.save that writes part of the file, then fails like a full disk (when ``fail_when()``)."""

    def save(obj, f, *args, **kwargs):
        if fail_when():  # f: a path, or the open temp file atomic_torch_save hands over
            with contextlib.nullcontext(f) if hasattr(f, "write") else open(f, "wb") as fh:
                fh.write(b"PK\x03\x04" + b"\0" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device", str(getattr(f, "name", f)))
        return real_save(obj, f, *args, **kwargs)

    return save


@pytest.mark.parametrize("which", ["original", "run"])
def test_disk_full_while_writing_a_model(make_service, tmp_path, monkeypatch, which):
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    mine = _plant_user_files(workdir)
    svc.add_request([10, 11], requester="alice")
    if which == "run":  # the original is registered first, so that the run's write is the one that fails
        svc.init()
    monkeypatch.setattr(torch, "save", _disk_full_save(torch.save, lambda: True))
    with pytest.raises(OSError, match="No space left"):
        svc.apply()
    monkeypatch.undo()
    led = check_invariant(workdir, mine, settled=False)
    assert [r["status"] for r in led["requests"]] == (["failed"] if which == "run" else ["pending"])
    assert not [p for p in (workdir / "models").iterdir() if p.name.endswith(".tmp") and p.name != ".notes.tmp"]
    assert svc.apply().status == "succeeded"  # space freed: served
    check_invariant(workdir, mine, settled=True)


@pytest.mark.sqlite_only("holds SQLite's write lock (busy_timeout is SQLite's; PostgreSQL locks rows, not the file)")
@pytest.mark.parametrize("stage", [s for s in _stages_for(True) if s != "original-committed"])
def test_database_locked_at_each_stage(make_service, tmp_path, monkeypatch, stage):
    """Another process holds the SQLite write lock from ``stage`` on: the apply fails cleanly, loses nothing."""
    workdir = tmp_path / "wd"
    svc = make_service(workdir, busy_timeout=0.2, lease_seconds=0.6)
    mine = _plant_user_files(workdir)
    svc.add_request([20, 21, 22], requester="alice")
    blocker = sqlite3.connect(workdir / "ledger.db", timeout=0.1, isolation_level=None)

    def hook(s):
        if s == stage:
            blocker.execute("BEGIN EXCLUSIVE")

    monkeypatch.setattr(service_module, "_checkpoint_hook", hook)
    try:
        result = svc.apply()  # "committed": only the lease release is left, and it fails quietly
        assert stage == "committed" and result.status == "succeeded"
    except Exception as exc:  # noqa: BLE001 - checked right here
        assert "locked" in str(exc), exc
    finally:
        if blocker.in_transaction:
            blocker.execute("ROLLBACK")
        blocker.close()
    monkeypatch.undo()
    check_invariant(workdir, mine, settled=False)
    import time

    time.sleep(0.7)  # our own (live) holder's lease must expire before the next apply may take it
    assert svc.apply().status in ("succeeded", "nothing-to-do")
    led = check_invariant(workdir, mine, settled=True)
    assert [r["status"] for r in led["requests"]] == ["applied"]
