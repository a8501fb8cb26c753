"""Attacks on the deletion service (issue 12, items 3, 7, 8, 9): databases that are not ledgers, files the service
does not own, forged table rows, silent no-ops, request life cycle, and requests that need no dataset load."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ledger_oracle import check_invariant, execute, read_ledger, snapshot_files

from oblivio.ledger import LedgerError
from oblivio.scenarios import Indices


# ---------------------------------------------------------------------------------------------- item 3: databases
def _history(make_service, workdir):
    """A ledger with two versions (original + one run), closed; returns the model files' snapshot."""
    svc = make_service(workdir)
    svc.add_request([1, 2], requester="alice")
    assert svc.apply().status == "succeeded"
    svc.close()
    return snapshot_files(workdir / "models")


@pytest.mark.sqlite_only("damages the SQLite file itself (PostgreSQL has no file to damage)")
@pytest.mark.parametrize("damage", ["zero-bytes", "garbage", "truncated", "foreign", "damaged-page", "no-state"])
def test_a_database_that_is_not_a_readable_ledger_is_an_error(make_service, tmp_path, damage):
    workdir = tmp_path / "wd"
    models = _history(make_service, workdir)
    db = workdir / "ledger.db"
    good = db.read_bytes()
    if damage == "zero-bytes":
        db.write_bytes(b"")
    elif damage == "garbage":
        db.write_bytes(b"these are not the pages you are looking for" * 100)
    elif damage == "truncated":
        db.write_bytes(good[:100])
    elif damage == "foreign":
        db.unlink()
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        con.execute("INSERT INTO users VALUES (1, 'x')")
        con.commit()
        con.close()
    elif damage == "damaged-page":
        page = int.from_bytes(good[16:18], "big")
        broken = bytearray(good)
        for p in range(1, len(good) // page):  # every page but the first: b-tree headers destroyed
            broken[p * page : p * page + 16] = b"\xff" * 16
        db.write_bytes(bytes(broken))
    else:
        con = sqlite3.connect(db)
        con.execute("DELETE FROM ledger_state")
        con.commit()
        con.close()
    before = db.read_bytes()
    with pytest.raises(LedgerError, match="not a ledger|not a SQLite|not an oblivio ledger|damaged|no state row"):
        make_service(workdir)
    assert db.read_bytes() == before  # nothing written to it
    assert snapshot_files(workdir / "models") == models  # and no model file of the old history deleted


def test_apply_deletes_no_file_it_did_not_record(make_service, tmp_path):
    workdir = tmp_path / "wd"
    (workdir / "models").mkdir(parents=True)
    torch.save({"w": torch.ones(2)}, workdir / "models" / "backup-of-my-model.pt")
    (workdir / "models" / "x.pt.tmp").write_text("mine")
    mine = snapshot_files(workdir)
    svc = make_service(workdir)
    svc.add_request([3], requester="alice")
    assert svc.apply().status == "succeeded"
    svc.add_request([4], requester="bob")
    assert svc.apply().status == "succeeded"
    check_invariant(workdir, mine, settled=True)


def test_a_file_in_the_way_is_not_overwritten(make_service, tmp_path, tiny_experiment):
    """A user's file where the service would write version 1 is left alone (and the apply refused)."""
    from oblivio.utils import state_dict_hash

    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    digest = state_dict_hash(tiny_experiment.original())
    squatter = workdir / "models" / f"original-{digest[:16]}.pt"
    squatter.write_text("mine")
    svc.add_request([3], requester="alice")
    with pytest.raises(LedgerError, match="did not write it"):
        svc.apply()
    assert squatter.read_text() == "mine"
    assert [r.status for r in svc.list_requests()] == ["pending"]


# ---------------------------------------------------------------------------------------------- item 7: list
def test_request_list_escapes_control_characters(make_service, cli, tmp_path):
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.add_request([5], requester="mallory\n99  applied  root", reason="\x1b[2J\x1b[31mcleared\u202eevil\r")
    svc.add_request([6], requester="bob", reason="ok")
    svc.close()
    code, out, _ = cli("request", "list", "--workdir", str(workdir))
    assert code == 0
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    lines = out.splitlines()
    assert len(lines) == 4  # header, rule, two requests: no forged row
    assert "mallory\\n99  applied  root" in lines[2]
    assert "\\x1b[2J" in lines[2] and "\\u202e" in lines[2]
    code, out, _ = cli("request", "list", "--workdir", str(workdir), "--json")
    assert json.loads(out)["requests"][0]["requester"] == "mallory\n99  applied  root"  # JSON keeps the data


# ---------------------------------------------------------------------------------------------- item 8: no-op etc.
def test_a_no_op_is_recorded_and_said(make_service, cli, tmp_path):
    workdir = tmp_path / "wd"
    svc = make_service(workdir, method="test-attack-noop")
    svc.add_request([7, 8, 9, 10, 11, 12], requester="alice")
    svc.close()
    code, out, err = cli("request", "apply", "--workdir", str(workdir), "--method", "test-attack-noop")
    assert code == 0, err
    assert "NO-OP" in out and "WARNING" in out and "succeeded" not in out
    assert "6 of 6 forget samples predicted easy" in out
    led = read_ledger(workdir / "ledger.db")
    assert [r["status"] for r in led["runs"]] == ["no-op"]
    v1, v2 = led["versions"]
    assert v2["path"] == v1["path"]  # same weights: no second file
    svc = make_service(workdir)
    assert svc.current_version().hash == svc.list_versions()[0].hash
    req = svc.list_requests()[0]
    assert req.status == "applied" and req.status_detail.startswith("no-op")
    report = svc.report()
    assert report["headline"] and report["headline"][0].startswith("NO-OP") and "no-op" in report["title"]
    json_path, html_path = svc.write_report(tmp_path / "rep")
    assert "NO-OP" in html_path.read_text()
    code, out, _ = cli("request", "list", "--workdir", str(workdir))
    assert code == 0 and "no-op: same weights as its parent" in out.splitlines()[-1]


def test_small_requests_say_the_mia_was_skipped_and_get_a_per_example_check(
    make_service, cli, tmp_path, tiny_experiment
):
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.add_request([13, 14, 15], requester="alice")
    svc.close()
    code, out, err = cli("request", "apply", "--workdir", str(workdir), "--method", "test-attack-sgd")
    assert code == 0, err
    assert "skipped" in out and "at least 10" in out
    assert "per-example membership check:" in out
    svc = make_service(workdir)
    v = svc.current_version()
    assert "at least 10" in v.metrics["mia_skipped"]
    auc = v.metrics.get("mia_loss_lr_auc")
    assert auc is None or math.isnan(auc)  # not computed (NaN is stored as null)
    # oracle: the loss of each forget sample ranked among the unseen test samples' losses, by counting
    model = svc.load_model(v)
    splits = tiny_experiment.unlearning_splits(Indices(ids=(13, 14, 15)))
    with torch.no_grad():

        def loss(ds):
            x = ds.float_images(torch.arange(len(ds)))
            return F.cross_entropy(model(x), ds.labels, reduction="none").double().numpy()

        test_loss, forget_loss = loss(splits.test), loss(splits.forget)
    rows = v.metrics["per_example"]
    assert [r["id"] for r in rows] == [13, 14, 15]
    for r, fl in zip(rows, forget_loss, strict=True):
        expected = sum(1 for t in test_loss if t <= fl) / len(test_loss)
        assert r["loss"] == pytest.approx(fl, rel=1e-4, abs=1e-6)
        assert r["quantile"] == pytest.approx(expected, abs=1.5 / len(test_loss))
        assert r["flagged"] == (r["quantile"] < 0.05)
    assert v.metrics["per_example_n_flagged"] == sum(r["flagged"] for r in rows)


def test_failed_then_cancelled_requests(make_service, cli, tmp_path):
    workdir = tmp_path / "wd"
    svc = make_service(workdir, method="test-attack-nan")
    a = svc.add_request([16, 17], requester="alice")
    b = svc.add_request([18], requester="bob")
    result = svc.apply()
    assert result.status == "failed"
    assert [r.status for r in svc.list_requests()] == ["failed", "failed"]
    assert all("run 1 failed" in r.status_detail for r in svc.list_requests())
    svc.close()
    code, out, _ = cli(
        "request", "cancel", str(b.id), "--by", "dpo@example.org", "--reason", "withdrawn", "--workdir", str(workdir)
    )
    assert code == 0 and "cancelled" in out
    code, _, err = cli("request", "cancel", "99", "--by", "x", "--workdir", str(workdir))
    assert code == 2 and "no request #99" in err
    svc = make_service(workdir)
    result = svc.apply(method="test-attack-sgd")
    assert result.status == "succeeded" and result.runs[0].request_ids == (a.id,)
    assert svc.current_version().forgotten_ids == (16, 17)  # the cancelled id was never forgotten
    with pytest.raises(LedgerError, match="applied by run .* cannot be un-forgotten"):
        svc.cancel_request(a.id, by="x")
    with pytest.raises(LedgerError, match="is cancelled"):
        svc.cancel_request(b.id, by="x")
    assert [(r.status) for r in svc.list_requests()] == ["applied", "cancelled"]


def test_init_from_a_users_model_file(make_service, cli, tmp_path, tiny_experiment):
    workdir = tmp_path / "wd"
    mine = tiny_experiment.build_model(seed=123)  # "my own trained model": any weights of the experiment's architecture
    torch.save(mine.state_dict(), tmp_path / "mine.pt")
    torch.save(torch.zeros(3), tmp_path / "bare.pt")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    code, _, err = cli("request", "init", "--model-file", str(tmp_path / "bare.pt"), "--workdir", str(workdir))
    assert code == 2 and "not a state dict" in err
    code, _, err = cli("request", "init", "--model-file", str(tmp_path / "other.pt"), "--workdir", str(workdir))
    assert code == 2 and "does not fit" in err
    assert read_ledger(workdir / "ledger.db")["versions"] == []  # nothing registered
    code, out, err = cli("request", "init", "--model-file", str(tmp_path / "mine.pt"), "--workdir", str(workdir))
    assert code == 0 and "model version 1" in out and "imported" in out, err
    code, _, err = cli("request", "init", "--workdir", str(workdir))
    assert code == 2 and "already has model version 1" in err
    svc = make_service(workdir)
    v1 = svc.current_version()
    assert v1.metrics["source_sha256"] == hashlib.sha256((tmp_path / "mine.pt").read_bytes()).hexdigest()
    loaded = svc.load_model(v1).state_dict()
    for name, tensor in mine.state_dict().items():
        assert torch.equal(loaded[name], tensor)
    svc.add_request([19], requester="alice")
    assert svc.apply().version.parent_id == v1.id  # served from the imported model


# ---------------------------------------------------------------------------------------------- item 9: no data load
def test_add_and_list_need_no_dataset_load(make_service, tmp_path, monkeypatch, tiny_experiment):
    import oblivio.experiments.pipeline as pipeline
    from oblivio.experiments import Experiment
    from oblivio.ledger import DeletionService

    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.add_request([20], requester="alice")  # builds the id index (one dataset load)
    index = list(workdir.glob("id-index-*.npy"))
    assert len(index) == 1
    assert np.array_equal(np.load(index[0]), np.sort(tiny_experiment.data.train.ids.numpy()))
    svc.close()

    def no_load(*args, **kwargs):
        raise AssertionError("the dataset was loaded")

    monkeypatch.setattr(pipeline.DATASETS, "create", no_load)
    fresh = DeletionService(
        workdir,
        method="test-attack-sgd",
        experiment=Experiment("tiny", store=tiny_experiment.store, device="cpu", progress=False),
    )
    try:
        req = fresh.add_request([21, 22], requester="bob")
        assert req.status == "pending"
        with pytest.raises(Exception, match="unknown"):
            fresh.add_request([10**6], requester="eve")
        assert [r.id for r in fresh.list_requests()] == [1, 2]
    finally:
        fresh.close()


def test_a_stale_id_index_is_rewritten_by_apply(make_service, tmp_path, tiny_experiment):
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.add_request([23], requester="alice")
    index = next(workdir.glob("id-index-*.npy"))
    np.save(index, np.arange(3, dtype=np.int64))  # as if the dataset's files had changed
    svc.apply()
    assert np.array_equal(np.load(index), np.sort(tiny_experiment.data.train.ids.numpy()))


def test_a_version_1_ledger_is_upgraded_in_place(make_service, tmp_path):
    workdir = tmp_path / "wd"
    models = _history(make_service, workdir)
    db = workdir / "ledger.db"
    execute(db, "DROP TABLE artefacts")  # what a ledger written by schema version 1 looks like
    execute(db, "UPDATE ledger_state SET schema_version = 1")
    svc = make_service(workdir)
    assert execute(db, "SELECT schema_version FROM ledger_state") == [(2,)]
    assert execute(db, "SELECT count(*) FROM artefacts") == [(0,)]
    svc.add_request([40], requester="bob")
    assert svc.apply().status == "succeeded"
    check_invariant(workdir, {f"models/{k}": v for k, v in models.items()}, settled=True)


def test_a_request_cancelled_during_a_one_by_one_apply_is_left_out(make_service, tmp_path, monkeypatch):
    import oblivio.ledger.service as service_module

    svc = make_service(tmp_path / "wd")
    first = svc.add_request([41], requester="alice")
    second = svc.add_request([42], requester="bob")
    other = make_service(tmp_path / "wd")

    def hook(stage):
        if stage == "committed" and other.list_requests()[1].status == "pending":
            other.cancel_request(second.id, by="dpo", reason="withdrawn")  # between the two runs

    monkeypatch.setattr(service_module, "_checkpoint_hook", hook)
    result = svc.apply(batch=False)
    assert result.status == "succeeded" and [r.request_ids for r in result.runs] == [(first.id,)]
    assert [r.status for r in svc.list_requests()] == ["applied", "cancelled"]
    assert 42 not in svc.current_version().forgotten_ids
