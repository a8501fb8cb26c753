"""The second hostile pass over issue 21's fixes (2026-12-05): the ways round them that it found.

- An output path reaching a ledger's ``models/`` indirectly (a link to the folder, ``models/sub/..``, a relative
  path from inside it) overwrote the ledger's current model: the check read only the parent folder's name.
- A ledger whose database lives elsewhere (``--db-url``, PostgreSQL) has no ``ledger.db`` beside ``models/``, so
  its models folder was not recognised at all.
- A ``ledger.db`` that is a symbolic link was followed (a new ledger created outside the workdir).
- A lease shorter than the renewal interval let a second apply take over a live one.
- ``nolock=1`` / ``vfs=unix-none`` switch SQLite's locking off, which the ledger's transactions rely on.
- ``--hparams '{"lr": 1e308}'`` crashed in torch (float32 overflow); ``epochs: 1e10`` ran for ever.
"""

from __future__ import annotations

import os

import pytest

from oblivio.utils import LEDGER_MARKER, check_output_file


def _ledger_with_a_model(make_service, workdir, **kwargs):
    svc = make_service(workdir, **kwargs)
    version = svc.init()
    svc.close()
    return workdir / version.path


def _refused(path):
    with pytest.raises(ValueError, match="models folder of the ledger"):
        check_output_file(path, option="--out")


def test_indirect_paths_into_a_ledgers_models_are_refused(make_service, tmp_path, monkeypatch):
    workdir = tmp_path / "wd"
    model = _ledger_with_a_model(make_service, workdir)
    before = model.read_bytes()
    (workdir / "models" / "sub").mkdir()
    link = tmp_path / "mlink"
    link.symlink_to(workdir / "models")
    _refused(link / model.name)  # through a link to the folder
    _refused(link / "evil.json")  # a new file through it
    _refused(workdir / "models" / "sub" / ".." / model.name)  # '..' folded
    _refused(workdir / "models" / "sub" / "deeper.pt")  # any depth below models/
    file_link = tmp_path / "out.pt"
    file_link.symlink_to(model)
    _refused(file_link)  # a link to the model file itself
    monkeypatch.chdir(workdir / "models")
    _refused(model.name)  # relative, from inside the folder
    assert model.read_bytes() == before


def test_a_ledger_with_its_database_elsewhere_is_recognised(make_service, tmp_path):
    """No ledger.db beside models/ (PostgreSQL, or --db-url to another file) and no id index yet: the service's
    marker file names the folder a ledger's."""
    workdir = tmp_path / "wd"
    model = _ledger_with_a_model(make_service, workdir, db_url=f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert not (workdir / "ledger.db").exists() and not list(workdir.glob("id-index-*.npy"))
    assert (workdir / LEDGER_MARKER).is_file()
    _refused(workdir / "models" / "new.pt")
    _refused(model)


def test_the_marker_never_follows_a_planted_link(make_service, tmp_path):
    outside = tmp_path / "outside" / "victim.txt"
    outside.parent.mkdir()
    workdir = tmp_path / "wd"
    workdir.mkdir()
    (workdir / LEDGER_MARKER).symlink_to(outside)  # dangling: writing through it would create the victim
    make_service(workdir).close()
    assert not outside.exists()


def test_a_plain_folder_named_models_is_still_fine(tmp_path):
    (tmp_path / "models" / "sub").mkdir(parents=True)
    assert (
        check_output_file(tmp_path / "models" / "sub" / "m.pt", option="--out") == tmp_path / "models" / "sub" / "m.pt"
    )


@pytest.mark.sqlite_only("the default SQLite database file is the link")
def test_a_linked_ledger_db_is_refused(tmp_path):
    from oblivio.ledger import DeletionService, LedgerError

    target = tmp_path / "victim" / "dangling.db"
    target.parent.mkdir()
    workdir = tmp_path / "wd"
    workdir.mkdir()
    (workdir / "ledger.db").symlink_to(target)
    with pytest.raises(LedgerError, match="symbolic link"):
        DeletionService(workdir, experiment="tiny")
    assert not target.exists()


def test_forget_into_a_linked_models_folder_is_one_line(make_service, cli, tmp_path, no_unlearning):
    workdir = tmp_path / "wd"
    model = _ledger_with_a_model(make_service, workdir)
    before = model.read_bytes()
    link = tmp_path / "mlink"
    link.symlink_to(workdir / "models")
    for option in ("--out", "--json"):
        code, _, err = cli("forget", "--method", "test-attack-sgd", "--forget", "class-subset:3:5", option,
                           str(link / model.name))  # fmt: skip
        assert code == 2 and "Traceback" not in err and "models folder of the ledger" in err, err
    assert model.read_bytes() == before


@pytest.mark.parametrize("lease", [0.0001, 0.1])
def test_a_lease_shorter_than_its_renewals_is_refused(make_service, tmp_path, lease):
    with pytest.raises(ValueError, match="at least 0.25"):
        make_service(tmp_path / "wd", lease_seconds=lease)
    make_service(tmp_path / "ok", lease_seconds=0.25).close()


@pytest.mark.parametrize(
    "query", ["?nolock=1", "?nolock=true", "?vfs=unix-none", "?VFS=Unix-None", "?vfs=unix-dotfile"]
)
def test_sqlite_without_file_locking_is_refused(tmp_path, query):
    from oblivio.ledger.db import LedgerError, check_persistent_url

    with pytest.raises(LedgerError, match="locking off"):
        check_persistent_url(f"sqlite:///file:{tmp_path / 'x.db'}{query}&uri=true".replace("?", "?", 1))
    check_persistent_url(f"sqlite:///file:{tmp_path / 'x.db'}?nolock=0&uri=true")  # locking kept: fine


@pytest.mark.parametrize(
    ("hparams", "words"),
    [
        ({"lr": 1e308}, ("lr", "float32")),
        ({"lr": -1e39}, ("lr", "float32")),
        ({"epochs": 10**10}, ("epochs", "at most")),
    ],
)
def test_huge_hyper_parameters_are_one_line(hparams, words):
    from oblivio.methods import create_method

    with pytest.raises(ValueError) as err:
        create_method("finetune", **hparams)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message
    create_method("finetune", lr=0.5, epochs=2)  # ordinary values still build


def test_check_output_file_keeps_plain_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert os.fspath(check_output_file("m.pt", option="--out")) == "m.pt"


# ---------------------------------------------------------------------------------------------- check, then swap
SERVICE_NAME = "models/run00077-0123456789abcdef.pt"  # one of the service's own names


def _swap_models_for_a_link(workdir, outside):
    (workdir / "models").rename(workdir / "models.real")
    (workdir / "models").symlink_to(outside, target_is_directory=True)


def test_removal_goes_through_the_checked_folder_not_a_swapped_link(tmp_path):
    from oblivio.ledger import TamperedPathError
    from oblivio.ledger.paths import model_file, remove_model_files

    workdir, outside = tmp_path / "wd", tmp_path / "outside"
    (workdir / "models").mkdir(parents=True)
    outside.mkdir()
    (workdir / SERVICE_NAME).write_bytes(b"orphan")
    victim = outside / os.path.basename(SERVICE_NAME)
    victim.write_bytes(b"someone else's data")
    target = model_file(workdir, SERVICE_NAME, row="row 1")  # the check passes: models/ is the real folder
    _swap_models_for_a_link(workdir, outside)  # ... and is swapped before the deletion
    with pytest.raises(TamperedPathError):
        remove_model_files(workdir, [target])
    assert victim.read_bytes() == b"someone else's data"
    # without the swap: the regular file goes, a link planted under a service name does not
    (workdir / "models").unlink()
    (workdir / "models.real").rename(workdir / "models")
    link = workdir / "models" / "run00078-0123456789abcdef.pt"
    link.symlink_to(victim)
    removed = remove_model_files(workdir, [workdir / SERVICE_NAME, link])
    assert removed == [workdir / SERVICE_NAME] and link.is_symlink() and victim.exists()


@pytest.mark.sqlite_only("plants the artefacts row through the SQLite file")
def test_recovery_never_deletes_through_a_folder_swapped_after_its_check(make_service, tmp_path, monkeypatch):
    from datetime import datetime

    from ledger_oracle import execute

    import oblivio.ledger.lease as lease
    from oblivio.ledger import TamperedPathError

    workdir, outside = tmp_path / "wd", tmp_path / "outside"
    svc = make_service(workdir)
    svc.add_request([3], requester="alice")
    outside.mkdir()
    victim = outside / os.path.basename(SERVICE_NAME)
    victim.write_bytes(b"someone else's data")
    (workdir / SERVICE_NAME).write_bytes(b"an orphan of an interrupted apply")
    execute(
        workdir / "ledger.db",
        "INSERT INTO artefacts (path, run_id, status, created_at) VALUES (?, NULL, 'pending', ?)",
        (SERVICE_NAME, datetime(2026, 1, 1)),
    )
    real = lease.temp_siblings

    def swap_then_list(path):  # runs after model_file's check, right before the deletion
        _swap_models_for_a_link(workdir, outside)
        return real(path)

    monkeypatch.setattr(lease, "temp_siblings", swap_then_list)
    with pytest.raises(TamperedPathError):  # the swapped folder is found; nothing is deleted through it
        svc.apply()
    assert victim.read_bytes() == b"someone else's data"
    assert (workdir / "models.real" / os.path.basename(SERVICE_NAME)).exists()
