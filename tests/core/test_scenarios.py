import json

import numpy as np
import pytest

from oblivio.scenarios import (
    ClassSubset,
    Groups,
    Indices,
    IndicesFile,
    RandomSamples,
    ScenarioError,
    WholeClass,
    make_forget_split,
    make_unlearning_splits,
    parse_scenario,
    spec_to_string,
)


@pytest.fixture(scope="module")
def train(digits):
    return digits.train


def test_class_subset_is_reproducible_and_exact(train):
    a = make_forget_split(train, ClassSubset(3, 20), seed=1)
    b = make_forget_split(train, "class-subset:3:20", seed=1)
    c = make_forget_split(train, ClassSubset(3, 20), seed=2)
    assert np.array_equal(a.forget_ids, b.forget_ids)
    assert not np.array_equal(a.forget_ids, c.forget_ids)
    assert len(a.forget_ids) == 20 and len(np.unique(a.forget_ids)) == 20
    assert (train.labels[a.forget_pos] == 3).all()
    assert len(a.retain_pos) == len(train) - 20
    assert np.intersect1d(a.forget_pos, a.retain_pos).size == 0
    assert a.to_dict()["forget_ids"] == sorted(a.forget_ids.tolist())


def test_class_by_name_and_whole_class(train):
    s = make_forget_split(train, WholeClass("7"))
    assert (train.labels[s.forget_pos] == 7).all()
    assert len(s.forget_pos) == int((train.labels == 7).sum())


def test_random_fraction_and_count(train):
    s = make_forget_split(train, RandomSamples(0.1), seed=0)
    assert len(s.forget_ids) == round(0.1 * len(train))
    assert len(make_forget_split(train, RandomSamples(17), seed=0).forget_ids) == 17


def test_groups(digits):
    import torch

    from oblivio.data import ImageDataset

    t = digits.train
    ds = ImageDataset(t.images, t.labels, t.classes, groups=torch.arange(len(t)) % 10)
    s = make_forget_split(ds, Groups(groups=(2, 5)))
    assert set(ds.groups[s.forget_pos].tolist()) == {2, 5}
    assert len(s.forget_pos) == int(((ds.groups == 2) | (ds.groups == 5)).sum())
    s2 = make_forget_split(ds, "group-frac:0.2", seed=3)
    assert len(np.unique(ds.groups[s2.forget_pos].numpy())) == 2
    with pytest.raises(ScenarioError, match="no group column"):
        make_forget_split(t, Groups(groups=(1,)))
    with pytest.raises(ScenarioError, match="unknown group"):
        make_forget_split(ds, Groups(groups=(99,)))


@pytest.mark.parametrize("content,suffix", [("5\n3\n9\n", ".txt"), ("id\n5\n3\n9\n", ".csv"), ("[9, 5, 3]", ".json")])
def test_indices_file(train, tmp_path, content, suffix):
    path = tmp_path / f"ids{suffix}"
    path.write_text(content)
    s = make_forget_split(train, IndicesFile(str(path)))
    assert s.forget_ids.tolist() == [3, 5, 9]
    assert make_forget_split(train, f"indices:{path}").forget_ids.tolist() == [3, 5, 9]


@pytest.mark.parametrize(
    "spec,match",
    [
        (ClassSubset(42, 5), "unknown class 42"),
        (ClassSubset("Sneaker", 5), "unknown class 'Sneaker'"),
        (ClassSubset(3, 0), "must be positive"),
        (ClassSubset(3, 10_000), "a subset must be smaller"),
        (RandomSamples(0.0), "fraction in"),
        (RandomSamples(10_000), "whole training set"),
        (Indices(()), "empty"),
        (Indices((1, 2, 2)), "duplicate sample ids"),
        (Indices((1, 99_999)), "out of range or unknown"),
        (Indices((-1,)), "out of range or unknown"),
    ],
)
def test_invalid_requests_rejected(train, spec, match):
    with pytest.raises(ScenarioError, match=match):
        make_forget_split(train, spec)


def test_whole_dataset_request_rejected(train):
    with pytest.raises(ScenarioError, match="whole training set"):
        make_forget_split(train, Indices(tuple(range(len(train)))))


def test_bad_files(train, tmp_path):
    with pytest.raises(ScenarioError, match="does not exist"):
        make_forget_split(train, IndicesFile(str(tmp_path / "nope.txt")))
    bad = tmp_path / "bad.txt"
    bad.write_text("1\nabc\n")
    with pytest.raises(ScenarioError, match="line 2: 'abc' is not an integer"):
        make_forget_split(train, IndicesFile(str(bad)))
    js = tmp_path / "bad.json"
    js.write_text(json.dumps({"x": 1}))
    with pytest.raises(ScenarioError, match="cannot read"):
        make_forget_split(train, IndicesFile(str(js)))
    fl = tmp_path / "f.npy"
    np.save(fl, np.array([1.5, 2.0]))
    with pytest.raises(ScenarioError, match="integers"):
        make_forget_split(train, IndicesFile(str(fl)))


@pytest.mark.parametrize(
    "text", ["class-subset:3:100", "class:2", "random:0.1", "group:1,2", "group-frac:0.02", "indices:/x/ids.txt"]
)
def test_parse_roundtrip(text):
    assert spec_to_string(parse_scenario(text)) == text


@pytest.mark.parametrize("text", ["", "teleport:3", "class-subset", "class-subset:a:b:c", "random:x"])
def test_parse_errors(text):
    with pytest.raises(ScenarioError, match="valid forms"):
        parse_scenario(text)


def test_unlearning_splits_partition(digits):
    u = make_unlearning_splits(digits, "class-subset:1:15", seed=0)
    assert len(u.forget) == 15
    assert len(u.forget) + len(u.retain) == len(digits.train)
    assert len(u.holdout) + len(u.test) == len(digits.test)
    assert np.intersect1d(u.holdout.ids.numpy(), u.test.ids.numpy()).size == 0
    # the evaluation split does not depend on the request
    u2 = make_unlearning_splits(digits, "class:4", seed=5)
    assert np.array_equal(u.test.ids.numpy(), u2.test.ids.numpy())


@pytest.mark.parametrize("payload", [b"PK\x03\x04", b"\x93NUMPY garbage", b""])
def test_broken_npy_files_are_scenario_errors(train, tmp_path, payload):
    path = tmp_path / "ids.npy"
    path.write_bytes(payload)
    with pytest.raises(ScenarioError, match="cannot read"):
        make_forget_split(train, IndicesFile(str(path)))


def test_weighted_group_draw_is_non_iid(digits):
    import torch

    from oblivio.data import ImageDataset

    t = digits.train
    ds = ImageDataset(t.images, t.labels, t.classes, groups=torch.arange(len(t)) % 10)
    weights = (0.0,) * 8 + (1.0, 1.0)  # only groups 8 and 9 may be drawn
    s = make_forget_split(ds, Groups(fraction=0.2, weights=weights), seed=0)
    assert set(ds.groups[s.forget_pos].tolist()) == {8, 9}
    with pytest.raises(ScenarioError, match="one per group"):
        make_forget_split(ds, Groups(fraction=0.2, weights=(1.0, 2.0)), seed=0)


def test_package_split_keeps_one_public_home():
    """scenarios/ is split by job (specs, ids, splits); every name is importable from oblivio.scenarios, the error
    keeps its public name (tracebacks, doctests), and the docstring examples run."""
    import doctest

    import oblivio.scenarios as sc
    from oblivio.scenarios import ids, specs, splits

    assert all(hasattr(sc, n) for n in sc.__all__)
    assert f"{ScenarioError.__module__}.{ScenarioError.__qualname__}" == "oblivio.scenarios.ScenarioError"
    for module in (specs, ids, splits):
        assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0
