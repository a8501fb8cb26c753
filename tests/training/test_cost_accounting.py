"""Cost accounting (issue 10): sample-passes counted by the global hook, fit's cumulative cost across a resumed
training, StopWhen at step level, and every method's CPU seconds and sample-passes in ``info``."""

from __future__ import annotations

import time

import pytest
import torch

from oblivio.data import ImageDataset, TensorLoader
from oblivio.metrics.cost import CostMeter, sample_passes_total
from oblivio.models import create_model
from oblivio.training import LambdaCallback, StopWhen, fit, predict_logits
from oblivio.training.loop import count_sample_passes


def _data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ImageDataset(torch.rand(n, 1, 8, 8, generator=g), torch.arange(n) % 2, ("a", "b"))


def _model(seed=0):
    torch.manual_seed(seed)
    return create_model("small-cnn", num_classes=2, in_channels=1, image_size=(8, 8), width=4, hidden=8)


def test_sample_passes_count_forwards_and_autograd_forwards():
    m, ds = _model(), _data(37)
    with count_sample_passes() as outer:
        predict_logits(m, ds, batch_size=10)  # 37 forwards, no autograd
        with count_sample_passes() as inner:
            m(torch.rand(5, 1, 8, 8)).sum().backward()  # 5 forwards with autograd
            m.features(torch.rand(3, 1, 8, 8))  # features() counts too
    assert (inner.forward, inner.backward) == (8, 8)
    assert (outer.forward, outer.backward) == (45, 8)
    with torch.no_grad():
        m(torch.rand(4, 1, 8, 8))  # nothing counts outside a block
    assert outer.forward == 45


def test_fit_cost_is_cumulative_across_a_resume(tmp_path):
    ds = _data(40)
    ckpt = tmp_path / "resume.pt"

    def run(epochs):
        m = _model()
        loader = TensorLoader(ds, batch_size=8, shuffle=True, seed=0)
        return fit(
            m, loader, epochs=epochs, optimizer=torch.optim.SGD(m.parameters(), lr=0.1), checkpoint=ckpt, progress=False
        )

    first = run(2)  # "interrupted" after 2 epochs: its checkpoint holds the cost so far
    assert first.cost["backward_samples"] == 2 * 40 and first.cost["steps"] == 10
    resumed = run(5)  # resumes at epoch 3
    assert resumed.resumed_from == 2
    assert resumed.cost["backward_samples"] == 5 * 40 and resumed.cost["forward_samples"] == 5 * 40
    assert resumed.cost["steps"] == 25
    assert resumed.cost["cpu_seconds"] >= first.cost["cpu_seconds"] > 0
    assert resumed.cost["wall_seconds"] >= first.cost["wall_seconds"]


def test_stop_when_at_step_level_ends_training_mid_epoch():
    ds, m = _data(40), _model()
    steps = []  # optimizer steps taken so far (5 per epoch)
    counter = LambdaCallback(after_step=lambda model, opt, state: steps.append(state.step))
    stop = StopWhen("n", lambda model: len(steps), lambda v: v >= 7, every_steps=2)  # checked at steps 2, 4, 6, 8
    res = fit(
        m,
        TensorLoader(ds, batch_size=8),
        epochs=4,
        optimizer=torch.optim.SGD(m.parameters(), lr=0.1),
        callbacks=[counter, stop],
        progress=False,
    )
    assert res.info["stopped_at_step"] == 8 and res.cost["steps"] == 8 and res.epochs_run == 2
    assert res.cost["backward_samples"] == 8 * 8  # the second epoch ended after its third step
    with pytest.raises(ValueError):
        StopWhen("n", len, lambda v: True, every_steps=0)


def test_cost_meter_measures_cpu_time_of_a_busy_block():
    with CostMeter() as cost:
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass
    d = cost.as_dict()
    assert d["cpu_seconds"] >= 0.05 and d["wall_seconds"] >= 0.05 * 0.5
    assert sample_passes_total({"forward_samples": 3, "backward_samples": 2}) == 7.0


def test_every_method_records_cpu_seconds_and_sample_passes():
    from oblivio.methods import create_method

    m, ds = _model(), _data(40)
    forget, retain = ds.subset(torch.arange(6)), ds.subset(torch.arange(6, 40))
    method = create_method("finetune", epochs=1)
    method(m, forget=forget, retain=retain, seed=0, progress=False)
    info = method.info
    assert info["cpu_seconds"] > 0 and info["seconds"] > 0
    assert info["backward_samples"] >= len(retain) * 0.5  # at least the fine-tuning steps it ran
    assert info["forward_samples"] >= info["backward_samples"]


def test_stored_gold_meta_records_its_whole_training_cost(tmp_path):
    from oblivio.experiments import Experiment

    exp = Experiment("tiny", store=tmp_path / "store", device="cpu", progress=False)
    split = exp.forget_split("class-subset:3:10", seed=0)
    exp.gold(split)
    cost = exp.gold_cost(split)
    n_train = len(split.retain_pos)
    epochs = exp.config.recipe.epochs
    assert cost["train_cpu_seconds"] > 0 and cost["train_seconds"] > 0
    assert cost["train_forward_samples"] == cost["train_backward_samples"] == epochs * n_train
    # loaded from the store later: the same record
    assert Experiment("tiny", store=tmp_path / "store", device="cpu", progress=False).gold_cost(split) == cost
