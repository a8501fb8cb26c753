"""Issue 21, item 1: the service never deletes, overwrites or trusts a file the ledger did not create.

Whoever can write the ledger's database can put any path in an ``artefacts`` or ``model_versions`` row. Each test
plants such a row (``../other/file.pt``, an absolute path, ``ledger.db``, a symbolic link under one of the service's
own names pointing outside) and checks that the file it names survives, byte for byte, that the row is reported as
tampering and left alone, and that a tampered version is never loaded. Rows are written with plain SQL (sqlite3 or
psycopg, no oblivio code); every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from pathlib import Path

import pytest
import torch
from ledger_oracle import execute, read_ledger

from oblivio.ledger import TamperedPathError
from oblivio.ledger.paths import model_file

CASES = ["parent-folder", "absolute", "ledger-db", "symlink"]
SERVICE_NAME = "models/run00077-0123456789abcdef.pt"  # one of the service's own names, for the symlink case


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plant(case: str, workdir: Path, tmp_path: Path, content: bytes) -> tuple[str, Path, Path]:
    """The tampered path to put in a row, the file it names (the victim) and what must survive: the victim, or
    for the symlink case the link itself (recovery used to delete it, loading used to follow it)."""
    if case == "parent-folder":
        victim = tmp_path / "other" / "file.pt"
        rel = "../other/file.pt"
    elif case == "absolute":
        victim = tmp_path / "elsewhere" / "file.pt"
        rel = str(victim)
    elif case == "ledger-db":
        victim = workdir / "ledger.db"
        rel = "ledger.db"
    else:
        victim = tmp_path / "outside" / "file.pt"
        rel = SERVICE_NAME
    if not victim.exists():  # ledger.db exists on SQLite: the ledger itself is the victim
        victim.parent.mkdir(parents=True, exist_ok=True)
        victim.write_bytes(content)
    if case == "symlink":
        (workdir / rel).symlink_to(victim)
        return rel, victim, workdir / rel
    return rel, victim, victim


@pytest.mark.parametrize("case", CASES)
def test_recovery_leaves_a_tampered_artefact_row_alone(make_service, tmp_path, case, caplog):
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.add_request([3, 4], requester="alice")
    rel, victim, survivor = _plant(case, workdir, tmp_path, b"someone else's data")
    db = workdir / "ledger.db"
    execute(
        db,
        "INSERT INTO artefacts (path, run_id, status, created_at) VALUES (?, NULL, 'pending', ?)",
        (rel, datetime(2026, 1, 1)),
    )
    row_id = execute(db, "SELECT max(id) FROM artefacts")[0][0]
    before = _sha(victim)
    with caplog.at_level(logging.ERROR, logger="oblivio.ledger"):
        result = svc.apply()
    assert result.status == "succeeded"  # the requests are served; the tampered row is not acted on
    assert survivor.exists() or survivor.is_symlink()
    assert survivor.is_symlink() == (case == "symlink")
    assert _sha(victim) == before or case == "ledger-db"  # SQLite's ledger.db is written by the apply itself
    assert [r.status for r in svc.list_requests()] == ["applied"]  # the ledger is intact (not replaced)
    assert len(result.tampered) == 1 and f"artefacts row {row_id}" in result.tampered[0]
    assert repr(rel) in result.tampered[0] and "tampered" in result.tampered[0]
    assert any(f"artefacts row {row_id}" in r.getMessage() for r in caplog.records)
    assert execute(db, "SELECT path, status FROM artefacts WHERE id = ?", (row_id,)) == [(rel, "pending")]
    assert result.removed_files == ()


@pytest.mark.parametrize("case", CASES)
def test_a_tampered_version_row_is_never_loaded(make_service, tmp_path, case):
    """The current version's row names a file outside ``models/`` (a valid copy of the model, so that trusting it
    would work): loading it, and so ``apply``, fails with the row named, and nothing changes."""
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.add_request([5], requester="alice")
    current = svc.apply().version
    real = workdir / current.path
    rel, victim, survivor = _plant(case, workdir, tmp_path, real.read_bytes())
    db = workdir / "ledger.db"
    execute(db, "UPDATE model_versions SET path = ? WHERE id = ?", (rel, current.id))
    svc.add_request([6], requester="bob")
    before = read_ledger(db)
    digest = _sha(victim)
    tampered = svc.current_version()
    with pytest.raises(TamperedPathError, match=f"model_versions row {current.id} names {rel!r}"):
        svc.load_model(tampered)
    with pytest.raises(TamperedPathError, match=f"model_versions row {current.id}"):
        svc.apply()
    assert read_ledger(db) == before  # nothing recorded: no run, the request still pending
    assert [r.status for r in svc.list_requests()] == ["applied", "pending"]
    assert survivor.exists() and (case == "ledger-db" or _sha(victim) == digest)
    assert real.is_file()  # the real file is not touched either
    assert svc.ledger.lease_info().holder is None  # the lease was released


def test_the_cli_reports_tampering_and_the_row_fails_with_one_line(make_service, cli, tmp_path):
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.add_request([7], requester="alice")
    svc.close()
    rel, victim, _ = _plant("parent-folder", workdir, tmp_path, b"precious")
    db = workdir / "ledger.db"
    execute(
        db, "INSERT INTO artefacts (path, status, created_at) VALUES (?, 'pending', ?)", (rel, datetime(2026, 1, 1))
    )
    code, out, err = cli("request", "apply", "--workdir", str(workdir), "--method", "test-attack-sgd")
    assert code == 0, err
    assert "WARNING" in out and "'../other/file.pt'" in out and "tampered" in out
    assert victim.read_bytes() == b"precious"
    execute(db, "UPDATE model_versions SET path = ? WHERE id = 2", (rel,))
    code, _, err = cli("request", "add", "--ids", "8", "--requester", "bob", "--workdir", str(workdir))
    assert code == 0, err
    code, _, err = cli("request", "apply", "--workdir", str(workdir), "--method", "test-attack-sgd")
    lines = [ln for ln in err.splitlines() if ln.startswith("oblivio: error:")]
    assert code == 2 and len(lines) == 1 and "model_versions row 2" in lines[0] and "Traceback" not in err
    assert victim.read_bytes() == b"precious"


def test_a_failed_run_deletes_only_what_its_row_names_after_the_check(make_service, tmp_path, monkeypatch):
    """The run's ``artefacts`` row is rewritten (to ``../other/file.pt``) while the run works, then the run fails:
    the clean-up reads the row, finds it tampered, reports it and deletes nothing, and the row stays as evidence.
    (The starting code deleted the path it had computed in memory, so the victim survived there too, but it
    deleted the tampered row.)"""
    import oblivio.ledger.service as service_module

    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.init()
    svc.add_request([9], requester="alice")
    rel, victim, _ = _plant("parent-folder", workdir, tmp_path, b"precious")
    db = workdir / "ledger.db"

    def hook(stage):
        if stage == "model-written":
            execute(db, "UPDATE artefacts SET path = ? WHERE status = 'pending'", (rel,))
            raise RuntimeError("the disk went away")

    monkeypatch.setattr(service_module, "_checkpoint_hook", hook)
    with pytest.raises(RuntimeError, match="disk went away"):
        svc.apply()
    monkeypatch.undo()
    assert victim.read_bytes() == b"precious"
    assert execute(db, "SELECT path, status FROM artefacts WHERE status = 'pending'") == [(rel, "pending")]
    assert [r.status for r in svc.list_requests()] == ["failed"]
    result = svc.apply()  # the next apply serves the request and still leaves the row and the victim alone
    assert result.status == "succeeded" and len(result.tampered) == 1
    assert victim.read_bytes() == b"precious"


@pytest.mark.parametrize(
    "rel",
    [
        "../other/file.pt",
        "/etc/passwd",
        "ledger.db",
        "models/../ledger.db",
        "models/sub/run00001-0123456789abcdef.pt",
        "models/run1-0123456789abcdef.pt",
        "models/run00001-0123456789ABCDEF.pt",
        "models/original-0123456789abcdef.pt.bak",
        "models/my-backup.pt",
        "./models/original-0123456789abcdef.pt",
        "models\\original-0123456789abcdef.pt",
        "",
        None,
    ],
)
def test_only_the_services_own_names_pass(tmp_path, rel):
    (tmp_path / "models").mkdir()
    with pytest.raises(TamperedPathError, match="not a model file this service writes"):
        model_file(tmp_path, rel, row="row 1")


@pytest.mark.parametrize(
    "rel",
    [
        "models/original-0123456789abcdef.pt",
        "models/imported-fedcba9876543210.pt",
        "models/run00012-00ff00ff00ff00ff.pt",
    ],
)
def test_the_services_own_names_pass(tmp_path, rel):
    (tmp_path / "models").mkdir()
    assert model_file(tmp_path, rel, row="row 1") == tmp_path / rel
    torch.save({"w": torch.ones(1)}, tmp_path / rel)
    assert model_file(tmp_path, rel, row="row 1") == tmp_path / rel


def test_a_symlinked_models_file_is_refused_even_inside_models(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "real.pt").write_bytes(b"x")
    (tmp_path / SERVICE_NAME).symlink_to(tmp_path / "models" / "real.pt")
    with pytest.raises(TamperedPathError, match="symbolic link"):
        model_file(tmp_path, SERVICE_NAME, row="row 1")


def test_the_service_refuses_to_record_a_name_it_does_not_generate(make_service, tmp_path):
    svc = make_service(tmp_path / "wd")
    (tmp_path / "wd" / "notes.txt").write_text("mine")
    with pytest.raises(TamperedPathError):
        svc._record_artefact("notes.txt", run_id=None)
    assert (tmp_path / "wd" / "notes.txt").read_text() == "mine"
    assert execute(tmp_path / "wd" / "ledger.db", "SELECT count(*) FROM artefacts") == [(0,)]


def test_a_linked_models_folder_is_refused_before_recovery_deletes_through_it(make_service, cli, tmp_path):
    """``<workdir>/models`` replaced by a symbolic link to another folder, and a pending ``artefacts`` row with one
    of the service's own names naming a file there: the name passes the pattern and the file resolves inside the
    (linked) models folder, so recovery used to delete it. Now apply (Python and CLI) stops with one clear error
    before anything is recovered: the file survives, the row stays pending, the request stays pending."""
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.add_request([3], requester="alice")
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / Path(SERVICE_NAME).name
    victim.write_bytes(b"someone else's data")
    (workdir / "models").rmdir()
    (workdir / "models").symlink_to(outside, target_is_directory=True)
    db = workdir / "ledger.db"
    execute(
        db,
        "INSERT INTO artefacts (path, run_id, status, created_at) VALUES (?, NULL, 'pending', ?)",
        (SERVICE_NAME, datetime(2026, 1, 1)),
    )
    with pytest.raises(TamperedPathError, match="models folder .* is a symbolic link"):
        svc.apply()
    with pytest.raises(TamperedPathError, match="symbolic link"):
        model_file(workdir, SERVICE_NAME, row="row 1")
    assert victim.read_bytes() == b"someone else's data"
    assert execute(db, "SELECT path, status FROM artefacts") == [(SERVICE_NAME, "pending")]
    assert [r.status for r in svc.list_requests()] == ["pending"]
    svc.close()
    code, _, err = cli("request", "apply", "--workdir", str(workdir), "--method", "test-attack-sgd")
    lines = [ln for ln in err.splitlines() if ln.startswith("oblivio: error:")]
    assert code == 2 and len(lines) == 1 and "symbolic link" in lines[0] and "Traceback" not in err
    assert victim.read_bytes() == b"someone else's data"
    assert list(outside.iterdir()) == [victim]


def test_list_and_report_warn_about_each_tampered_row(make_service, cli, tmp_path):
    """``request list`` and ``request report`` act on no file, but used to show a tampered ``model_versions`` or
    ``artefacts`` row as if it were fine: now one WARNING line per bad row, naming it (text and JSON)."""
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.add_request([5], requester="alice")
    svc.apply()
    svc.close()
    db = workdir / "ledger.db"
    execute(db, "UPDATE model_versions SET path = ? WHERE id = 1", ("../other/file.pt",))
    execute(
        db,
        "INSERT INTO artefacts (path, status, created_at) VALUES (?, 'pending', ?)",
        ("/etc/passwd", datetime(2026, 1, 1)),
    )
    artefact = execute(db, "SELECT max(id) FROM artefacts")[0][0]
    code, out, err = cli("request", "list", "--workdir", str(workdir))
    assert code == 0, err
    warnings = [ln for ln in out.splitlines() if ln.startswith("WARNING:")]
    assert len(warnings) == 2 and all("tampered? left alone" in w for w in warnings), out
    assert "model_versions row 1 names '../other/file.pt'" in warnings[0]
    assert f"artefacts row {artefact} names '/etc/passwd'" in warnings[1]
    code, out, err = cli("request", "list", "--workdir", str(workdir), "--json")
    assert code == 0, err
    assert [m.split(" names")[0] for m in json.loads(out)["tampered"]] == [
        "model_versions row 1",
        f"artefacts row {artefact}",
    ]
    code, out, err = cli("request", "report", "--workdir", str(workdir), "--out", str(tmp_path / "rep"))
    assert code == 0, err
    assert sum("tampered? left alone" in ln for ln in out.splitlines() if ln.startswith("WARNING:")) == 2, out
    assert Path("/etc/passwd").exists()
    execute(db, "UPDATE model_versions SET path = ? WHERE id = 1", (SERVICE_NAME,))
    execute(db, "DELETE FROM artefacts WHERE id = ?", (artefact,))
    code, out, err = cli("request", "list", "--workdir", str(workdir))  # a well-formed ledger: no warning
    assert code == 0 and "WARNING" not in out, out
