"""Training dynamics (issue 23): no extra cost and no effect on the weights, the right per-sample record, and the
statistics (learned epoch, forgetting events, area under the margin) against hand-computed cases."""

from __future__ import annotations

import pytest
import torch

from oblivio.data import ImageDataset, TensorLoader
from oblivio.models import create_model
from oblivio.training import Recipe, TrainingDynamics, fit, predict_logits, train_model
from oblivio.training.dynamics import DynamicsSummary, summarise


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    y = (x[:, 0, :4].mean((1, 2)) > x[:, 0, 4:].mean((1, 2))).long()  # learnable, with some hard cases
    return ImageDataset(x, y, ("a", "b"), ids=torch.arange(1000, 1000 + n))


def _model(seed=0):
    torch.manual_seed(seed)
    return create_model("small-cnn", num_classes=2, in_channels=1, image_size=(8, 8), width=4, hidden=16)


def test_weights_are_bitwise_the_same_with_and_without_the_callback():
    ds = _data()
    recipe = Recipe(name="t", epochs=4, lr=0.1, milestones=(2,), batch_size=16, augment="crop1+flip")
    plain, recorded = _model(), _model()
    torch.manual_seed(5)
    train_model(plain, ds, recipe=recipe, seed=3, progress=False)
    after_plain = torch.get_rng_state()
    torch.manual_seed(5)
    dyn = TrainingDynamics(len(ds), ids=ds.ids)
    train_model(recorded, ds, recipe=recipe, seed=3, callbacks=[dyn], progress=False)
    a, b = plain.state_dict(), recorded.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(torch.get_rng_state(), after_plain)  # the callback drew no random number
    s = dyn.summary()
    assert s.complete and s.epochs == 4 and s.ids.tolist() == ds.ids.tolist()


def test_recorded_margins_equal_the_fixed_model_margins_when_nothing_moves():
    # lr = 0: every step's pre-update weights are the initial ones, so each epoch's record must equal the margins of
    # the unchanged model computed by the evaluation path (predict_logits, eval mode: no dropout or BN here)
    ds = _data(50)
    model = _model(1)
    dyn = TrainingDynamics(len(ds), ids=ds.ids)
    fit(
        model,
        TensorLoader(ds, batch_size=8, shuffle=True, seed=2),
        epochs=3,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
        callbacks=[dyn],
        progress=False,
    )
    z = predict_logits(model, ds).double()
    true = z[torch.arange(len(ds)), ds.labels]
    other = z.clone()
    other[torch.arange(len(ds)), ds.labels] = float("-inf")
    expect = (true - other.max(1).values).float()
    s = dyn.summary()
    for e in range(3):
        assert torch.allclose(s.margins[e], expect, atol=1e-5)
        assert torch.equal(s.correct[e].bool(), expect > 0)
    assert torch.allclose(s.aum, expect, atol=1e-5)
    assert s.forgetting_events.sum() == 0


def test_statistics_on_a_hand_built_record():
    # 4 samples, 5 epochs. 1 = right, 0 = wrong, -1 = not seen
    correct = torch.tensor(
        [
            [0, 1, 1, 0, 1],
            [1, 1, 1, 1, 0],
            [1, 0, 1, 1, 0],
            [1, 1, 0, 0, 0],
            [1, 1, 1, 1, 0],
        ]
    )
    margins = torch.tensor(
        [
            [-1.0, 2.0, 1.0, -0.5, 0.5],
            [1.0, 3.0, 2.0, 1.0, -1.0],
            [2.0, -1.0, 1.0, 1.0, -2.0],
            [1.0, 1.0, -1.0, -1.0, -2.0],
            [3.0, 2.0, 1.0, 2.0, -1.0],
        ]
    )
    s = summarise(torch.tensor([7, 8, 9, 10, 11]), correct, margins)
    # sample 0: 0 1 1 1 1 -> learned at epoch 2; no forgetting
    # sample 1: 1 1 0 1 1 -> learned at 4; one forgetting (epoch 2 -> 3)
    # sample 2: 1 1 1 0 1 -> learned at 5; one forgetting (3 -> 4)
    # sample 3: 0 1 1 0 1 -> learned at 5; one forgetting (3 -> 4)
    # sample 4: 1 0 0 0 0 -> never learned (6); one forgetting (1 -> 2)
    assert s.learned_epoch.tolist() == [2, 4, 5, 5, 6]
    assert s.forgetting_events.tolist() == [0, 1, 1, 1, 1]
    assert s.final_correct.tolist() == [True, True, True, True, False]
    assert torch.allclose(s.aum, torch.tensor([1.2, 1.4, 0.8, 0.5, -1.1]))
    assert s.complete
    # the same through save / load, and a selection by id
    again = DynamicsSummary.from_state(s.to_state())
    assert torch.equal(again.learned_epoch, s.learned_epoch)
    sub = s.select(torch.tensor([10, 7]))
    assert sub.learned_epoch.tolist() == [5, 2] and sub.ids.tolist() == [10, 7]
    with pytest.raises(KeyError, match="no record of sample ids"):
        s.select(torch.tensor([99]))


def test_a_resumed_training_is_marked_incomplete(tmp_path):
    ds = _data(40)
    recipe = Recipe(name="t", epochs=3, lr=0.05, milestones=(), batch_size=8)
    model = _model(2)
    ck = tmp_path / "resume.pt"
    train_model(model, ds, recipe=recipe.replace(epochs=1), checkpoint=ck, progress=False)
    dyn = TrainingDynamics(len(ds), ids=ds.ids)
    train_model(model, ds, recipe=recipe, checkpoint=ck, callbacks=[dyn], progress=False)
    s = dyn.summary()
    assert s.epochs == 3 and not s.complete
    assert (s.correct[0] == -1).all() and (s.correct[1:] >= 0).all()


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="positive"):
        TrainingDynamics(0)
    with pytest.raises(ValueError, match="ids"):
        TrainingDynamics(3, ids=torch.arange(2))
    dyn = TrainingDynamics(4)
    with pytest.raises(ValueError, match="no training step"):
        dyn.summary()
    model = _model()
    with pytest.raises(ValueError, match=r"\.index"):
        fit(
            model,
            [(torch.rand(2, 1, 8, 8), torch.tensor([0, 1]))],
            epochs=1,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            loss_fn=lambda m, b: m(b[0]).sum(),
            callbacks=[dyn],
            progress=False,
        )
