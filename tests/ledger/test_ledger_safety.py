"""Failures leave the ledger consistent: corrupt checkpoints, divergence, crashes (SIGKILL), concurrent applies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import _ledger_fixtures
import oblivio.ledger.service as service_module
from oblivio.ledger import ApplyInProgressError, Ledger
from oblivio.utils import CheckpointError

WORKER = Path(__file__).resolve().parents[1] / "_ledger_worker.py"


def _files(workdir: Path) -> list[str]:
    return sorted(p.name for p in (workdir / "models").iterdir())


def _snapshot(svc):
    return (
        [(r.id, r.status) for r in svc.list_requests()],
        [(r.id, r.status) for r in svc.list_runs()],
        [(v.id, v.is_current) for v in svc.list_versions()],
    )


# ---------------------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("damage", ["garbage", "truncated", "other-weights"])
def test_corrupt_current_checkpoint_changes_nothing(make_service, tmp_path, damage):
    svc = make_service()
    svc.add_request([1, 2], requester="alice")
    current = svc.apply().version
    path = tmp_path / "ledger" / current.path
    good = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a checkpoint")
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    else:
        state = torch.load(path, weights_only=True)
        first = next(iter(state))
        state[first] = state[first] + 1.0
        torch.save(state, path)
    svc.add_request([3], requester="bob")
    before, files = _snapshot(svc), _files(tmp_path / "ledger")
    with pytest.raises(CheckpointError, match=f"model version {current.id}|{current.path}"):
        svc.apply()
    assert _snapshot(svc) == before and _files(tmp_path / "ledger") == files
    assert svc.ledger.lease_info().holder is None  # the lease was released
    path.write_bytes(good)  # restored from a backup: the request is served
    assert svc.apply().status == "succeeded"
    assert [r.status for r in svc.list_requests()] == ["applied", "applied"]


# ---------------------------------------------------------------------------------------------- divergence
def test_divergence_fails_the_run_and_keeps_the_model(make_service, tmp_path):
    svc = make_service(method="test-ledger-nan")
    req = svc.add_request([1, 2, 3], requester="alice")
    result = svc.apply()
    assert result.status == "failed" and "diverged" in result.error and result.version is None
    run = svc.list_runs()[0]
    assert run.status == "failed" and "non-finite" in run.error and run.ended_at is not None
    current = svc.current_version()
    assert current.id == 1 and current.parent_id is None  # the original model is still served
    failed = svc.list_requests()[0]
    assert failed.status == "failed" and "run 1 failed" in failed.status_detail  # open: retried by the next apply
    assert len(_files(tmp_path / "ledger")) == 1  # only the original's file
    # the same request is served later by a method that converges
    ok = svc.apply(method="test-ledger-sgd")
    assert ok.status == "succeeded" and ok.runs[0].request_ids == (req.id,)


def test_neggrad_with_absurd_lr_when_available(make_service):
    from oblivio.methods import list_methods

    if "neggrad" not in list_methods():
        pytest.skip("neggrad is not registered yet")
    svc = make_service(method="neggrad", hparams={"lr": 1e12, "epochs": 1})
    svc.add_request(list(range(0, 200, 2)), requester="alice")
    result = svc.apply()
    if result.status == "succeeded":  # pragma: no cover - depends on neggrad's own safeguards
        pytest.skip("neggrad did not diverge with this lr")
    assert svc.current_version().id == 1 and svc.list_requests()[0].status == "failed"


# ---------------------------------------------------------------------------------------------- crashes
def test_exception_between_write_and_commit(make_service, tmp_path, monkeypatch):
    svc = make_service()
    svc.add_request([9, 10], requester="alice")

    def boom(stage):
        if stage == "model-written":
            raise KeyboardInterrupt

    monkeypatch.setattr(service_module, "_checkpoint_hook", boom)
    with pytest.raises(KeyboardInterrupt):
        svc.apply()
    assert svc.list_runs()[0].status == "failed"
    assert svc.list_requests()[0].status == "failed" and svc.current_version().id == 1
    assert len(_files(tmp_path / "ledger")) == 1  # the uncommitted model file was removed
    assert svc.ledger.lease_info().holder is None
    monkeypatch.undo()
    result = svc.apply()
    assert result.status == "succeeded" and svc.list_requests()[0].status == "applied"


def _worker(workdir, store, method="test-ledger-sgd", hparams=None, kill_at=None, **popen):
    cmd = [sys.executable, str(WORKER), str(workdir), str(store), method, json.dumps(hparams or {})]
    if kill_at:
        cmd.append(kill_at)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OBLIVIO_PROGRESS": "0"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_sigkill_between_write_and_commit_then_resume(make_service, tmp_path, ledger_store):
    workdir = tmp_path / "ledger"
    svc = make_service(workdir)
    req = svc.add_request([30, 31, 32], requester="alice")
    proc = _worker(workdir, ledger_store, kill_at="model-written")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -9, err
    # the kill left: a run still marked running, the request pending, the original current, a complete
    # (atomically renamed) but uncommitted model file, no temp file
    assert [r.status for r in svc.list_runs()] == ["running"]
    assert svc.list_requests()[0].status == "pending" and svc.current_version().id == 1
    names = _files(workdir)
    assert len(names) == 2 and not any(n.endswith(".tmp") for n in names)
    assert svc.ledger.lease_info().holder is not None  # the dead process still "holds" the lease
    # a rerun takes the dead holder's lease at once, marks the stale run abandoned and re-applies
    result = svc.apply()
    assert result.status == "succeeded" and result.abandoned_runs == (1,)
    assert [r.status for r in svc.list_runs()] == ["abandoned", "succeeded"]
    applied = svc.list_requests()[0]
    assert applied.status == "applied" and applied.applied_run_id == 2
    assert sum(req.id in r.request_ids and r.status == "succeeded" for r in svc.list_runs()) == 1  # exactly once
    versions = svc.list_versions()
    assert len(versions) == 2 and versions[-1].is_current and versions[-1].forgotten_ids == (30, 31, 32)
    assert _files(workdir) == sorted(Path(v.path).name for v in versions)  # the orphan is gone


# ---------------------------------------------------------------------------------------------- concurrency
def test_lease_race_has_exactly_one_winner(ledger_url, lease_race):
    assert sorted(lease_race(ledger_url, 6)) == [False] * 5 + [True]


def test_lease_expires_and_is_renewed(ledger_url):
    ledger = Ledger(ledger_url)
    other = "another-host|123|abc"  # not on this host: only expiry frees it
    assert ledger.try_acquire(other, 0.3)
    assert not ledger.try_acquire("me|1|x", 60)
    assert ledger.renew(other, 0.3)
    time.sleep(0.4)
    assert ledger.try_acquire("me|1|x", 60)
    assert not ledger.renew(other, 0.3)  # the old holder lost it
    ledger.release("me|1|x")
    assert ledger.lease_info().holder is None
    ledger.dispose()


def test_concurrent_apply_in_threads(make_service, tmp_path):
    _ledger_fixtures.STARTED.clear()
    _ledger_fixtures.GATE.clear()
    first = make_service(method="test-ledger-gate", lease_seconds=0.4)  # renewed by the heartbeat while it waits
    second = make_service()
    first.add_request([50, 51], requester="alice")
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(result=first.apply()))
    thread.start()
    try:
        assert _ledger_fixtures.STARTED.wait(60)
        time.sleep(0.6)  # longer than the lease: only the heartbeat keeps it
        with pytest.raises(ApplyInProgressError, match="another apply is running"):
            second.apply()
        late = second.add_request([52], requester="bob")  # requests can still be added meanwhile
    finally:
        _ledger_fixtures.GATE.set()
        thread.join(60)
    assert outcome["result"].status == "no-op"  # the gated method returns the model unchanged
    assert [r.status for r in second.list_requests()] == ["applied", "pending"]  # nothing lost
    result = second.apply()
    assert result.status == "succeeded" and result.runs[0].request_ids == (late.id,)
    assert [r.status for r in second.list_runs()] == ["no-op", "succeeded"]


def test_concurrent_apply_across_processes(make_service, tmp_path, ledger_store):
    workdir = tmp_path / "ledger"
    svc = make_service(workdir)
    svc.add_request([60, 61], requester="alice")
    proc = _worker(workdir, ledger_store, hparams={"sleep": 1.5})
    try:
        deadline = time.time() + 60
        while svc.ledger.lease_info().holder is None and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1]
        with pytest.raises(ApplyInProgressError, match="another apply is running"):
            svc.apply()
    finally:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "RESULT succeeded" in out
    assert [r.status for r in svc.list_requests()] == ["applied"] and len(svc.list_runs()) == 1
