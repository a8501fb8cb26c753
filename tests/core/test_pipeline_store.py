import json

import pytest
import torch

from oblivio.experiments import CheckpointStore, Experiment, get_preset
from oblivio.training import accuracy


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    return Experiment("tiny", store=tmp_path_factory.mktemp("store"), progress=False, device="cpu")


def test_original_trained_once_then_loaded(exp):
    m1 = exp.original()
    assert not getattr(m1, "training")
    assert accuracy(m1, exp.data.test) > 0.8
    files = list(exp.store.root.glob("original/*/model.pt"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    m2 = exp.original()
    assert files[0].stat().st_mtime_ns == mtime
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    meta = json.loads((files[0].parent / "meta.json").read_text())
    assert meta["kind"] == "original" and meta["n_train"] == len(exp.data.train) and meta["train_seconds"] > 0
    assert not (files[0].parent / "resume.pt").exists()


def test_gold_keyed_by_forget_set(exp):
    s1 = exp.forget_split("class-subset:2:20", seed=0)
    s2 = exp.forget_split("class-subset:2:20", seed=1)
    g1 = exp.gold(s1)
    exp.gold(s2)
    assert len(list(exp.store.root.glob("gold/*/model.pt"))) == 2
    assert exp.gold(s1).oblivio_meta["n_train"] == len(exp.data.train) - 20
    for a, b in zip(g1.parameters(), exp.gold(s1).parameters()):
        assert torch.equal(a, b)


def test_corrupt_stored_model_is_retrained(exp, caplog):
    exp.original()
    path = next(exp.store.root.glob("original/*/model.pt"))
    path.write_bytes(b"garbage")
    m = exp.original()
    assert accuracy(m, exp.data.test) > 0.8
    assert "retraining" in caplog.text
    torch.load(path, weights_only=True)  # a valid checkpoint again


def test_store_load_mismatch_is_clear(tmp_path):
    from oblivio.utils import CheckpointError

    store = CheckpointStore(tmp_path)
    small = lambda: torch.nn.Linear(2, 2)  # noqa: E731
    store.get_or_train("x", {"a": 1}, small, lambda m, p: {})
    with pytest.raises(CheckpointError, match="does not fit"):
        store.load("x", {"a": 1}, lambda: torch.nn.Linear(3, 2))


def test_presets():
    cpu = get_preset("cpu")
    assert cpu.dataset == "fashion-mnist" and cpu.recipe.name == "cpu"
    paper = get_preset("paper")
    assert paper.model == "resnet18" and paper.recipe.epochs == 200
    with pytest.raises(KeyError, match="valid presets"):
        get_preset("gigantic")
