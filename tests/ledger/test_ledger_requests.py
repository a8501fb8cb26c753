"""Bad input: every invalid request fails with a clear ScenarioError and writes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from oblivio.scenarios import ScenarioError


@pytest.fixture()
def svc(make_service):
    return make_service()


def _count(svc):
    return len(svc.list_requests())


@pytest.mark.parametrize(
    "ids, message",
    [
        ([], "empty"),
        ([1, 1, 2], "duplicate sample ids"),
        ([3, 10**6], "out of range or unknown"),
        ([-1], "out of range or unknown"),
        ([1.5, 2], "integers"),
        ([True, False], "integers"),
        (b"12", "sequence of integers"),
        ("no-such-file.txt", "does not exist"),
        ([2**70], "64 bits"),
    ],
)
def test_invalid_ids_are_refused(svc, ids, message):
    with pytest.raises(ScenarioError, match=message):
        svc.add_request(ids, requester="alice")
    assert _count(svc) == 0


def test_whole_dataset_is_refused(svc):
    ids = svc.train_set.ids.tolist()
    with pytest.raises(ScenarioError, match="whole training set"):
        svc.add_request(ids, requester="alice")
    svc.add_request(ids[:-1], requester="alice")  # everything but one sample is allowed...
    with pytest.raises(ScenarioError, match="nothing would be left"):
        svc.add_request(ids[-1:], requester="bob")  # ...but not together with a pending request
    assert _count(svc) == 1


@pytest.mark.parametrize("requester", ["", "   ", None, 42, "x" * 201, "a\x00b"])
def test_requester_is_required_and_clean(svc, requester):
    with pytest.raises(ScenarioError, match="requester"):
        svc.add_request([1], requester=requester)
    assert _count(svc) == 0


def test_duplicate_request_is_recorded_as_rejected(svc):
    first = svc.add_request([4, 5, 6], requester="alice")
    dup = svc.add_request([6, 4], requester="alice again")
    assert dup.status == "rejected" and f"#{first.id}" in dup.status_detail
    partial = svc.add_request([6, 7], requester="bob")  # shares one id only: a new request
    assert partial.status == "pending"
    assert [r.status for r in svc.list_requests()] == ["pending", "rejected", "pending"]
    result = svc.apply()
    assert result.runs[0].request_ids == (first.id, partial.id)  # the rejected one is not served
    assert svc.list_requests(status="rejected")[0].applied_version_id is None


def test_already_forgotten_ids_are_refused(svc):
    applied = svc.add_request([20, 21], requester="alice")
    svc.apply()
    with pytest.raises(ScenarioError, match=rf"already forgotten by applied request\(s\) #{applied.id}"):
        svc.add_request([21, 22], requester="bob")
    assert _count(svc) == 1


def test_request_files(svc, tmp_path):
    (tmp_path / "ok.txt").write_text("# ids\n1\n2\n\n3  # trailing comment\n")
    (tmp_path / "ok.json").write_text(json.dumps({"ids": [8, 9]}))
    (tmp_path / "ok.csv").write_text("id,name\n11,x\n12,y\n")
    np.save(tmp_path / "ok.npy", np.array([13, 14], dtype=np.int32))
    assert svc.add_request(tmp_path / "ok.txt", requester="a").sample_ids == (1, 2, 3)
    assert svc.add_request(str(tmp_path / "ok.json"), requester="a").sample_ids == (8, 9)
    assert svc.add_request(tmp_path / "ok.csv", requester="a").sample_ids == (11, 12)
    assert svc.add_request(tmp_path / "ok.npy", requester="a").sample_ids == (13, 14)
    assert _count(svc) == 4


@pytest.mark.parametrize(
    "name, content",
    [
        ("missing.txt", None),
        ("letters.txt", "1\nabc\n"),
        ("empty.txt", ""),
        ("float.txt", "1.5\n"),
        ("obj.json", '{"x": 1}'),
        ("strings.json", '["a", "b"]'),
        ("broken.json", "[1, 2"),
        ("ragged.json", "[[1], [2, 3]]"),
        ("bools.json", "[true]"),
        ("nan.json", "[NaN]"),
        ("garbage.npy", b"\x93NUMPY\x01\x00garbage"),
        ("pickle.npy", b"\x80\x04K\x01."),
        ("binary.txt", b"\xff\xfe\x00\x01"),
    ],
)
def test_malformed_request_files(svc, tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ScenarioError):
        svc.add_request(path, requester="alice")
    assert _count(svc) == 0


def test_ledger_refuses_another_experiment(make_service, tmp_path):
    from oblivio.experiments import Experiment
    from oblivio.ledger import DeletionService, LedgerError

    make_service().add_request([1], requester="a")
    other = Experiment("tiny", store=tmp_path / "unused", progress=False)
    other.config = other.config.replace(seed=1)
    with pytest.raises(LedgerError, match="serves another experiment"):
        DeletionService(tmp_path / "ledger", experiment=other)
