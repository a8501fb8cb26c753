"""``oblivio request add | list | apply | report`` on the tiny preset."""

from __future__ import annotations

import json

import pytest

from oblivio.ledger import Ledger


@pytest.fixture()
def run_cli(cli, tmp_path, ledger_backend):
    """``run_cli(action, *options)``: ``oblivio request ACTION`` on one ledger in ``tmp_path / "wd"``."""
    workdir = tmp_path / "wd"

    def run(action, *rest):
        return cli("request", action, "--workdir", str(workdir), *rest)

    run.workdir = workdir
    return run


def test_cli_end_to_end(run_cli, tmp_path):
    code, out, _ = run_cli("add", "--ids", "1,2,3", "--requester", "alice", "--reason", "GDPR")
    assert code == 0 and "request #1 recorded" in out
    (tmp_path / "ids.txt").write_text("4\n5\n")
    assert run_cli("add", "--file", str(tmp_path / "ids.txt"), "--requester", "bob")[0] == 0
    code, out, _ = run_cli("add", "--ids", "2,3", "--requester", "carol")
    assert code == 0 and "REJECTED" in out
    code, _, err = run_cli("add", "--ids", "1,x", "--requester", "dave")
    assert code == 2 and "comma-separated integers" in err
    code, _, err = run_cli("add", "--ids", "999999", "--requester", "dave")
    assert code == 2 and "unknown" in err

    code, out, _ = run_cli("list")
    assert code == 0 and "alice" in out and "pending" in out and "rejected" in out
    code, out, _ = run_cli("apply", "--method", "test-ledger-sgd", "--hparams", '{"lr": 0.001}')
    assert code == 0 and "model version 2" in out and "requests [1, 2]" in out
    code, out, _ = run_cli("apply", "--method", "test-ledger-sgd")
    assert code == 0 and "no pending requests" in out
    code, out, _ = run_cli("list", "--json")
    listing = json.loads(out)
    assert [r["status"] for r in listing["requests"]] == ["applied", "applied", "rejected"]
    assert [v["is_current"] for v in listing["versions"]] == [False, True]

    code, out, _ = run_cli("report", "--out", str(tmp_path / "rep"))
    assert code == 0 and (tmp_path / "rep" / "report-v2.html").is_file()
    code, _, err = run_cli("report", "--out", str(tmp_path / "rep"), "--version", "7")
    assert code == 2 and "no single model version" in err


def test_cli_apply_failure_and_busy(run_cli, ledger_backend):
    assert run_cli("add", "--ids", "8", "--requester", "alice")[0] == 0
    code, _, err = run_cli("apply", "--method", "test-ledger-nan")
    assert code == 1 and "diverged" in err
    ledger = Ledger(ledger_backend.url or f"sqlite:///{(run_cli.workdir / 'ledger.db').resolve()}")
    assert ledger.try_acquire("elsewhere|1|x", 600)  # a live apply on another host
    code, _, err = run_cli("apply", "--method", "test-ledger-sgd")
    assert code == 3 and "another apply is running" in err
    ledger.release("elsewhere|1|x")
    ledger.dispose()
    assert run_cli("apply", "--method", "test-ledger-sgd")[0] == 0
    code, _, err = run_cli("apply", "--method", "no-such-method")
    assert code == 2 and "unknown method" in err
