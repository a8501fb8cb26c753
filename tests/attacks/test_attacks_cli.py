"""Attacks on the command line (issue 12, item 4): every failure a message and an exit code, never a traceback;
``-v`` shows the traceback; a programming error is not disguised as user error."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import numpy as np
import pytest
from ledger_oracle import check_invariant, snapshot_files


def _one_line_error(code, err, *, match):
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("oblivio: error:")]
    assert len(lines) == 1, err
    assert any(m in lines[0] for m in match.split("|")), lines[0]


@pytest.mark.parametrize("spec", ["random:inf", "random:-inf", "random:nan", "random:1e400", "group-frac:inf"])
def test_non_finite_scenarios(cli, spec):
    code, _, err = cli("forget", "--method", "test-attack-sgd", "--forget", spec)
    _one_line_error(code, err, match="finite|fraction")


def test_verbose_shows_the_traceback(cli):
    code, _, err = cli("-v", "forget", "--method", "test-attack-sgd", "--forget", "random:inf")
    assert code == 2 and "Traceback" in err and "oblivio: error:" in err


def test_divergence_in_forget_is_a_message(cli):
    code, _, err = cli("forget", "--method", "test-attack-nan", "--forget", "class-subset:3:5")
    _one_line_error(code, err, match="non-finite")


def test_decompression_bomb_in_an_image_folder(cli, tmp_path, monkeypatch):
    from PIL import Image

    root = tmp_path / "imgs"
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / split / cls / "ok.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(root / "train" / "a" / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64x64 = 4096 > 2x the limit: what a bomb looks like
    code, _, err = cli("train", "--dataset", "image-folder", "--data-root", str(root), "--epochs", "1")
    _one_line_error(code, err, match="decompression bomb")
    assert "bomb.png" in err


@pytest.mark.parametrize("where", ["existing-file", "under-a-file", "unwritable"])
def test_report_out_that_cannot_be_written(make_service, cli, tmp_path, where):
    if where == "unwritable" and os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.add_request([30], requester="alice")
    svc.apply()
    svc.close()
    target = tmp_path / "out"
    if where == "existing-file":
        target.write_text("mine")
    elif where == "under-a-file":
        target.write_text("mine")
        target = target / "sub"
    else:
        target.mkdir(mode=0o500)
    code, _, err = cli("request", "report", "--out", str(target), "--workdir", str(workdir))
    _one_line_error(code, err, match="not a folder|exists|Not a directory|Permission|cannot write")
    if where != "unwritable":
        assert (tmp_path / "out").read_text() == "mine"


@pytest.mark.parametrize("where", ["directory", "under-a-file"])
def test_forget_out_that_cannot_be_written(cli, tmp_path, where):
    target = tmp_path / "model"
    if where == "directory":
        target.mkdir()
    else:
        target.write_text("mine")
        target = target / "m.pt"
    code, _, err = cli("forget", "--method", "test-attack-sgd", "--forget", "class-subset:3:5", "--out", str(target))
    _one_line_error(code, err, match="directory|not a folder|exists")


@pytest.mark.parametrize("content", [b"", b"garbage" * 50])
def test_corrupt_ledger_file_through_the_cli(cli, tmp_path, content):
    workdir = tmp_path / "wd"
    workdir.mkdir()
    (workdir / "ledger.db").write_bytes(content)
    code, _, err = cli("request", "list", "--workdir", str(workdir))
    _one_line_error(code, err, match="empty file|not a SQLite")
    assert (workdir / "ledger.db").read_bytes() == content
    code, _, err = cli("-v", "request", "list", "--workdir", str(workdir))
    assert code == 2 and "Traceback" in err and "LedgerError" in err


@pytest.mark.parametrize(
    "url, match",
    [
        ("nosuchdb://x/y", "bad ledger database URL"),
        ("not a url at all", "bad ledger database URL"),
        ("postgresql+psycopg://u:secret@127.0.0.1:1/db", "psycopg|cannot open"),
        ("postgresql+pg8000://u@127.0.0.1:1/db", "not installed|cannot open"),
    ],
)
def test_bad_database_urls(cli, tmp_path, url, match):
    code, _, err = cli("request", "list", "--workdir", str(tmp_path / "wd"), "--db-url", url)
    _one_line_error(code, err, match=match)
    assert "secret" not in err  # the password is masked


def test_programming_errors_are_not_disguised(cli, tmp_path, monkeypatch):
    from oblivio.ledger import DeletionService

    def bug(self, status=None):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setattr(DeletionService, "list_requests", bug)
    with pytest.raises(TypeError, match="unsupported operand"):
        cli("request", "list", "--workdir", str(tmp_path / "wd"))

    def key_bug(self, status=None):
        return {}["missing"]

    monkeypatch.setattr(DeletionService, "list_requests", key_bug)
    with pytest.raises(KeyError):
        cli("request", "list", "--workdir", str(tmp_path / "wd"))


def test_unknown_method_and_hyper_parameter_are_user_errors(cli):
    code, _, err = cli("forget", "--method", "no-such-method")
    _one_line_error(code, err, match="unknown method")
    code, _, err = cli("forget", "--method", "test-attack-sgd", "--hparams", '{"bogus": 1}')
    _one_line_error(code, err, match="no hyper-parameter")


def test_disk_full_during_apply_ulimit(make_service, tmp_path, ledger_store):
    """``ulimit -f`` (the file-size limit) while ``oblivio request apply`` writes: a message, then a clean retry."""
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    (workdir / "models" / "mine.pt").write_bytes(b"user data")
    mine = {k: v for k, v in snapshot_files(workdir).items() if k == "models/mine.pt"}
    svc.init()
    svc.add_request([31, 32], requester="alice")
    limit = 16 * 1024  # below a model file (~29 kB): its write fails with EFBIG, like a full disk

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "OBLIVIO_PROGRESS": "0"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "oblivio",
            "request",
            "apply",
            "--method",
            "finetune",
            "--hparams",
            '{"epochs": 1}',
            "--workdir",
            str(workdir),
            "--preset",
            "tiny",
            "--store",
            str(ledger_store),
            "--device",
            "cpu",
            "--no-progress",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=small_files,
    )
    _one_line_error(proc.returncode, proc.stderr, match="File too large|disk|database")
    check_invariant(workdir, mine, settled=False)
    assert svc.apply(method="finetune", hparams={"epochs": 1}).status == "succeeded"
    check_invariant(workdir, mine, settled=True)
