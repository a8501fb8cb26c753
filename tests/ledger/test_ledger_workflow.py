"""The deletion workflow end to end on sklearn digits: add, list, apply (batched), report."""

from __future__ import annotations

import json

import pytest

from oblivio.ledger import ApplyResult
from oblivio.utils import state_dict_hash


def test_add_list_apply_report_happy_path(make_service, tmp_path):
    svc = make_service()
    r1 = svc.add_request([5, 17, 300], requester="alice@example.org", reason="GDPR art. 17")
    r2 = svc.add_request([17, 42], requester="bob")  # overlaps r1 partly: accepted, served as a union
    assert (r1.status, r2.status) == ("pending", "pending")
    assert [r.id for r in svc.list_requests(status="pending")] == [r1.id, r2.id]
    assert svc.current_version() is None

    result = svc.apply()
    assert isinstance(result, ApplyResult) and result.status == "succeeded"
    assert len(result.runs) == 1 and result.runs[0].request_ids == (r1.id, r2.id)  # batched: one run
    v = result.version
    assert v.id == svc.current_version().id and v.is_current
    assert v.forgotten_ids == (5, 17, 42, 300)
    assert v.parent_id == 1  # version 1 is the experiment's original model
    assert svc.list_versions()[0].metrics["role"] == "original"
    assert state_dict_hash(svc.load_model(v)) == v.hash
    assert (tmp_path / "ledger" / v.path).is_file()
    for r in svc.list_requests():
        assert (r.status, r.applied_version_id, r.applied_run_id) == ("applied", v.id, result.runs[0].id)
    run = svc.list_runs()[0]
    assert run.status == "succeeded" and run.method == "test-ledger-sgd" and run.hparams == {"lr": 0.01, "sleep": 0.0}
    assert run.ended_at >= run.started_at and run.result_version_id == v.id
    for key in ("acc_forget", "acc_retain", "acc_test", "mia_salun_efficacy", "seconds"):
        assert key in v.metrics
    assert v.metrics["alignment_reference"] == "twin"  # the test method reports predicted easy / hard counts
    assert v.metrics["twin_est_gold_acc_forget"] == pytest.approx(2 / 4)

    # a later request starts from the current version and forgets everything before too
    r3 = svc.add_request([7], requester="carol")
    assert r3.base_version_id == v.id
    v3 = svc.apply().version
    assert v3.parent_id == v.id and v3.forgotten_ids == (5, 7, 17, 42, 300)
    assert svc.apply().status == "nothing-to-do"

    report = svc.report(v.id)
    assert report["version"]["id"] == v.id and not report["version"]["is_current"]
    assert [r["id"] for r in report["requests"]] == [r1.id, r2.id]
    assert report["alignment"]["reference"] == "twin"
    assert {row["metric"] for row in report["membership_inference"]} >= {"mia_salun_efficacy"}
    assert svc.report(v.hash[:10])["version"]["id"] == v.id  # hash prefix
    json_path, html_path = svc.write_report(tmp_path / "out", version=v.id)
    data = json.loads(json_path.read_text())
    assert data["run"]["request_ids"] == [r1.id, r2.id]
    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page and "<link" not in page


def test_report_escapes_everything(make_service, tmp_path):
    svc = make_service()
    svc.add_request([1, 2], requester="<script>alert('x')</script>", reason='"><img src=x onerror=alert(1)>')
    svc.apply()
    page = svc.write_report(tmp_path / "out")[1].read_text()
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;" in page and "&lt;img" in page


def test_one_by_one_makes_a_chain_of_versions(make_service):
    svc = make_service()
    a = svc.add_request([10], requester="a")
    b = svc.add_request([11, 12], requester="b")
    result = svc.apply(batch=False)
    assert result.status == "succeeded" and [r.request_ids for r in result.runs] == [(a.id,), (b.id,)]
    versions = svc.list_versions()
    assert [v.parent_id for v in versions] == [None, 1, 2]
    assert versions[-1].forgotten_ids == (10, 11, 12) and versions[-1].is_current


def test_gold_alignment_and_cost(make_service):
    svc = make_service()
    svc.add_request(list(range(0, 400, 10)), requester="alice")  # 40 samples: enough for the loss MIA's 10 splits
    v = svc.apply(gold=True).version
    m = v.metrics
    assert m["alignment_reference"] == "gold"
    assert m["delta_forget"] == pytest.approx(abs(m["acc_forget"] - m["gold_acc_forget"]))
    assert m["gold_seconds"] > 0 and m["cost_ratio"] == pytest.approx(m["seconds"] / m["gold_seconds"])
    report = svc.report()
    rows = {row["metric"]: row for row in report["membership_inference"]}
    assert rows["mia_loss_lr_auc"]["model"] is not None and rows["mia_loss_lr_auc"]["gold"] is not None
    assert report["cost"]["cost_ratio_to_retraining"] == pytest.approx(m["cost_ratio"])


def test_registered_baseline_method_runs_when_available(make_service):
    from oblivio.methods import list_methods

    if "finetune" not in list_methods():
        pytest.skip("finetune is not registered yet")
    svc = make_service(method="finetune", hparams={"epochs": 1})
    svc.add_request([3, 4, 5], requester="alice")
    result = svc.apply()
    assert result.status == "succeeded" and result.runs[0].hparams["epochs"] == 1
