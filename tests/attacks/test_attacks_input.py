"""Attacks on the inputs (issue 12, items 1, 2, 5, 6): ids files, id lists, idx files, store entries.

Every refused input is refused with a message naming the problem, and nothing is recorded.
"""

from __future__ import annotations

import gzip
import json
import logging
import struct

import numpy as np
import pytest
import torch

from oblivio.scenarios import ScenarioError, read_indices_file


def _requests(svc):
    return [(r.id, r.status, r.sample_ids) for r in svc.list_requests()]


# ---------------------------------------------------------------------------------------------- item 1: text files
@pytest.mark.parametrize("typo", ["5.0", "1O", "+18", "0x12", "1e3", "٣"])
@pytest.mark.parametrize("suffix", [".txt", ".csv", ""])
def test_first_line_typo_is_an_error_naming_the_line(make_service, tmp_path, typo, suffix):
    svc = make_service()
    path = tmp_path / f"ids{suffix}"
    path.write_text(f"{typo}\n7\n9\n")
    with pytest.raises(ScenarioError, match=r"line 1: .* not an integer"):
        svc.add_request(path, requester="alice")
    assert _requests(svc) == []  # nothing recorded


def test_typo_on_a_later_line_names_that_line(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("# my ids\n4\n\n5\n6,\n")
    with pytest.raises(ScenarioError, match=r"line 5: '6,'"):
        read_indices_file(path)


@pytest.mark.parametrize("header", ["id", "sample_id", "Sample ID"])
def test_a_csv_header_is_skipped_only_in_a_csv(tmp_path, header):
    csv = tmp_path / "ids.csv"
    csv.write_text(f"{header},note\n4,x\n5,y\n")
    assert read_indices_file(csv).tolist() == [4, 5]
    txt = tmp_path / "ids.txt"
    txt.write_text(f"{header}\n4\n5\n")
    with pytest.raises(ScenarioError, match="line 1"):
        read_indices_file(txt)


def test_plain_ids_file_with_comments_and_a_negative_id(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("4  # first\n\n  12\n")
    assert read_indices_file(path).tolist() == [4, 12]
    path.write_text("4  # first\n\n  12\n-3\n")  # issue 21: ids are ASCII digits only, no sign
    with pytest.raises(ScenarioError, match=r"line 4: '-3' is not an integer sample id: .*ASCII digits"):
        read_indices_file(path)


# ---------------------------------------------------------------------------------------------- item 2: JSON / npy
@pytest.mark.parametrize("payload", ["[true, 8]", "[8, 4.0]", '["8"]', "[8, null]", '{"ids": [1, false]}', "[[1, 2]]"])
def test_json_non_integers_are_refused(make_service, tmp_path, payload):
    svc = make_service()
    path = tmp_path / "ids.json"
    path.write_text(payload)
    with pytest.raises(ScenarioError, match="not an integer id"):
        svc.add_request(path, requester="alice")
    assert _requests(svc) == []


def test_json_integers_are_ids(tmp_path):
    path = tmp_path / "ids.json"
    path.write_text('{"ids": [3, 1, 2]}')
    assert read_indices_file(path).tolist() == [3, 1, 2]


@pytest.mark.parametrize(
    "array, match",
    [
        (np.array([4.0, 5.0]), "integer array"),
        (np.array([True, False]), "integer array"),
        (np.arange(6).reshape(2, 3), "one-dimensional"),
        (np.array(["4", "5"]), "integer array"),
    ],
)
def test_npy_must_be_a_flat_integer_array(make_service, tmp_path, array, match):
    svc = make_service()
    path = tmp_path / "ids.npy"
    np.save(path, array)
    with pytest.raises(ScenarioError, match=match):
        svc.add_request(path, requester="alice")
    assert _requests(svc) == []


@pytest.mark.parametrize(
    "ids",
    [[True, 8], [4.0, 5], ["4"], np.array([4.0, 5.0]), np.arange(6).reshape(2, 3), torch.tensor([1.0, 2.0]), [2**70]],
)
def test_python_api_ids_must_be_integers(make_service, ids):
    svc = make_service()
    with pytest.raises(ScenarioError, match="integers|flat list|out of range"):
        svc.add_request(ids, requester="alice")
    assert _requests(svc) == []


def test_integer_ids_of_any_integer_type_are_accepted(make_service):
    svc = make_service()
    req = svc.add_request([np.int32(4), 5, np.uint8(6)], requester="alice")
    assert req.sample_ids == (4, 5, 6) and req.status == "pending"
    req2 = svc.add_request(torch.tensor([7, 8]), requester="bob")
    assert req2.sample_ids == (7, 8)


# ---------------------------------------------------------------------------------------------- item 5: idx files
def _write_idx(path, array, code):
    """An idx file written here from the format's definition (not with oblivio's writer)."""
    big = array.astype({0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4", 0x0E: ">f8"}[code])
    head = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    path.write_bytes(gzip.compress(head + big.tobytes()))


def _idx_folder(tmp_path, train_images, train_labels, image_code, label_code):
    root = tmp_path / "idx"
    root.mkdir(parents=True)
    test_images = np.zeros((3, 4, 4), dtype=np.uint8)
    test_labels = np.array([0, 1, 1], dtype=np.uint8)
    _write_idx(root / "train-images-idx3-ubyte.gz", train_images, image_code)
    _write_idx(root / "train-labels-idx1-ubyte.gz", train_labels, label_code)
    _write_idx(root / "t10k-images-idx3-ubyte.gz", test_images, 0x08)
    _write_idx(root / "t10k-labels-idx1-ubyte.gz", test_labels, 0x08)
    return root


def test_idx_float_images_in_unit_range_are_scaled_not_zeroed(tmp_path):
    from oblivio.data.idx import load_idx_dataset

    rng = np.random.default_rng(0)
    images = rng.random((5, 4, 4)).astype(np.float32)
    images[0, 0, 0], images[0, 0, 1] = 0.0, 1.0
    root = _idx_folder(tmp_path, images, np.array([0, 1, 0, 1, 1], dtype=np.uint8), 0x0D, 0x08)
    train = load_idx_dataset(root).train
    expected = np.floor(images.astype(np.float64) * 255.0 + 0.5)  # round half up: same as rint off the .5 ties
    assert train.images.dtype == torch.uint8
    np.testing.assert_array_equal(train.images[:, 0].numpy(), expected)
    assert train.images.max() == 255 and train.images.float().mean() > 50  # not all zeros


@pytest.mark.parametrize(
    "images, match",
    [
        (np.full((5, 4, 4), 1.5, np.float32), r"\[0, 1\]"),
        (np.full((5, 4, 4), -0.5, np.float64), r"\[0, 1\]"),
        (np.full((5, 4, 4), np.nan, np.float32), "NaN"),
        (np.full((5, 4, 4), 300, np.int16), "0..255"),
    ],
)
def test_idx_images_out_of_range_are_refused(tmp_path, images, match):
    from oblivio.data.base import DatasetError
    from oblivio.data.idx import load_idx_dataset

    code = {np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E, np.dtype(np.int16): 0x0B}[images.dtype]
    root = _idx_folder(tmp_path, images, np.array([0, 1, 0, 1, 1], dtype=np.uint8), code, 0x08)
    with pytest.raises(DatasetError, match=match):
        load_idx_dataset(root)


def test_idx_fractional_float_labels_are_refused_whole_ones_kept(tmp_path):
    from oblivio.data.base import DatasetError
    from oblivio.data.idx import load_idx_dataset

    images = np.zeros((5, 4, 4), dtype=np.uint8)
    root = _idx_folder(tmp_path, images, np.array([0, 1.7, 0, 1, 1], dtype=np.float32), 0x08, 0x0D)
    with pytest.raises(DatasetError, match="whole numbers"):
        load_idx_dataset(root)
    root2 = _idx_folder(tmp_path / "b", images, np.array([0, 1, 0, 1, 1], dtype=np.float32), 0x08, 0x0D)
    assert load_idx_dataset(root2).train.labels.tolist() == [0, 1, 0, 1, 1]


# ---------------------------------------------------------------------------------------------- item 6: store entries
def _tiny_store_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 2)


def _train(model, resume_path):
    with torch.no_grad():
        model.weight.fill_(0.5)
    return {"train_seconds": 0.01}


@pytest.mark.parametrize(
    "damage, names",
    [
        ("bare-tensor", "model.pt"),
        ("garbage-meta", "meta.json"),
        ("meta-list", "meta.json"),
        ("meta-binary", "meta.json"),
    ],
)
def test_corrupt_store_entries_are_named_and_retrained(tmp_path, caplog, damage, names):
    from oblivio.experiments import CheckpointStore

    store = CheckpointStore(tmp_path / "store")
    key = {"k": 1}
    store.get_or_train("original", key, _tiny_store_model, _train)
    folder = store.folder("original", key)
    if damage == "bare-tensor":
        torch.save(torch.zeros(3), folder / "model.pt")
    elif damage == "garbage-meta":
        (folder / "meta.json").write_text("{not json")
    elif damage == "meta-list":
        (folder / "meta.json").write_text(json.dumps([1, 2]))
    else:
        (folder / "meta.json").write_bytes(b"\xff\xfe\x00garbage")
    caplog.set_level(logging.WARNING, "oblivio.store")
    got = store.get_or_train("original", key, _tiny_store_model, _train)
    assert not got.cached  # retrained
    assert any(names in r.getMessage() and "retraining" in r.getMessage() for r in caplog.records), caplog.text
    assert torch.all(got.model.weight == 0.5)
    again = store.get_or_train("original", key, _tiny_store_model, _train)
    assert again.cached and again.meta["kind"] == "original"  # the entry is healthy again


def test_store_lock_wait_says_who_holds_it(tmp_path, caplog):
    """A second process's wait for the store lock is logged with the holder's pid, host and start time."""
    import os
    import socket
    import subprocess
    import sys
    import time

    from oblivio.experiments import CheckpointStore

    store = CheckpointStore(tmp_path / "store")
    folder = store.folder("original", {"k": 2})
    code = (
        "import sys, time; from pathlib import Path; from oblivio.experiments.store import CheckpointStore\n"
        "s = CheckpointStore(sys.argv[1])\n"
        "with s._lock(Path(sys.argv[2])):\n    print('held', flush=True); time.sleep(1.5)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "store"), str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        caplog.set_level(logging.INFO, "oblivio.store")
        t0 = time.monotonic()
        with store._lock(folder):
            waited = time.monotonic() - t0
    finally:
        holder.wait(30)
    assert waited > 0.3
    text = caplog.text
    assert f"pid {holder.pid} on {socket.gethostname()} since" in text, text
    assert "got the store lock" in text
    assert os.getpid() != holder.pid
