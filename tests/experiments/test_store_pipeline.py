"""The checkpoint store and the experiment pipeline: original and gold models trained once then loaded, keyed by
the forget set, a corrupt file retrained, resume after interruption, locking, cost meta, presets."""

from __future__ import annotations

import json
import threading
import time

import pytest
import torch

import oblivio.experiments.pipeline as pipeline
from oblivio.experiments import CheckpointStore, Experiment, get_preset
from oblivio.experiments.pipeline import TrainedModel
from oblivio.metrics.cost_ratio import RunCost
from oblivio.training import accuracy
from oblivio.training.loop import Callback


class _InterruptAfter(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, model, state, logs):
        if state.epoch == self.epoch:
            raise KeyboardInterrupt


def test_interrupted_training_resumes_to_the_same_model(tmp_path, monkeypatch):
    real = pipeline.train_model
    results = []

    def interrupted_once(*args, **kwargs):
        if not results:
            results.append("interrupted")
            kwargs["callbacks"] = [_InterruptAfter(1)]  # epoch 0 is checkpointed, epoch 1 never finishes
        res = real(*args, **kwargs)
        results.append(res)
        return res

    monkeypatch.setattr(pipeline, "train_model", interrupted_once)
    exp = Experiment("tiny", store=tmp_path / "a", progress=False, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        exp.original()
    folder = next((tmp_path / "a" / "original").iterdir())
    assert (folder / "resume.pt").is_file() and not (folder / "model.pt").exists()
    resumed = exp.original()
    assert results[-1].resumed_from == 1 and results[-1].epochs_run == exp.config.recipe.epochs
    assert not (folder / "resume.pt").exists() and (folder / "model.pt").is_file()

    monkeypatch.setattr(pipeline, "train_model", real)
    straight = Experiment("tiny", store=tmp_path / "b", progress=False, device="cpu").original()
    for a, b in zip(resumed.parameters(), straight.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_concurrent_requests_train_once(tmp_path):
    store = CheckpointStore(tmp_path)
    calls = []

    def train(model, resume_path):
        calls.append(resume_path)
        time.sleep(0.3)
        return {"train_seconds": 1.5}

    out = []
    threads = [
        threading.Thread(
            target=lambda: out.append(store.get_or_train("gold", {"k": 1}, lambda: torch.nn.Linear(2, 2), train))
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(s.cached for s in out) == [False, True, True]
    assert all(s.meta["train_seconds"] == 1.5 for s in out)


def test_failed_training_keeps_no_model_and_passes_resume_path(tmp_path):
    store = CheckpointStore(tmp_path)
    seen = []

    def failing(model, resume_path):
        resume_path.write_bytes(b"partial")
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        store.get_or_train("gold", {"k": 2}, lambda: torch.nn.Linear(2, 2), failing)
    assert not store.exists("gold", {"k": 2})

    def resuming(model, resume_path):
        seen.append(resume_path.read_bytes())
        return {}

    stored = store.get_or_train("gold", {"k": 2}, lambda: torch.nn.Linear(2, 2), resuming)
    assert seen == [b"partial"] and not stored.cached
    assert stored.meta["train_seconds"] >= 0 and stored.meta["kind"] == "gold"


def test_gold_meta_gives_the_cost_of_retraining(tmp_path):
    exp = Experiment("tiny", store=tmp_path, progress=False, device="cpu")
    split = exp.forget_split("class-subset:5:10", seed=0)
    trained = exp.gold_with_meta(split, seed=3)
    assert isinstance(trained, TrainedModel) and isinstance(trained.model, torch.nn.Module)
    assert trained.train_seconds > 0 and trained.meta["epochs"] == exp.config.recipe.epochs
    assert trained.cost == RunCost(
        trained.meta["train_seconds"],
        trained.meta["train_cpu_seconds"],
        trained.meta["train_forward_samples"],
        trained.meta["train_backward_samples"],
    )
    assert exp.gold_seconds(split, seed=3) == trained.train_seconds
    assert not hasattr(trained.model, "oblivio_meta")  # the record travels beside the module, not on it
    again = exp.gold_with_meta(split, seed=3)  # loaded, same meta
    assert again.train_seconds == trained.train_seconds
    for a, b in zip(
        trained.model.parameters(), exp.gold(split, seed=3).parameters(), strict=True
    ):  # gold() is the bare module
        assert torch.equal(a, b)
    other = exp.gold(split, seed=4)  # another seed = another gold model
    assert any(not torch.equal(a, b) for a, b in zip(trained.model.parameters(), other.parameters(), strict=True))
    original = exp.original_with_meta()
    assert original.meta["kind"] == "original" and original.meta["n_train"] == len(exp.data.train)


# ---- the store and pipeline basics (were tests/core/test_pipeline_store.py)
@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    return Experiment("tiny", store=tmp_path_factory.mktemp("store"), progress=False, device="cpu")


def test_original_trained_once_then_loaded(exp):
    m1 = exp.original()
    assert not m1.training
    assert accuracy(m1, exp.data.test) > 0.8
    files = list(exp.store.root.glob("original/*/model.pt"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    m2 = exp.original()
    assert files[0].stat().st_mtime_ns == mtime
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
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
    assert exp.gold_with_meta(s1).meta["n_train"] == len(exp.data.train) - 20
    for a, b in zip(g1.parameters(), exp.gold(s1).parameters(), strict=True):
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
