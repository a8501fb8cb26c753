import copy
import math

import pytest
import torch

from oblivio.data import TensorLoader
from oblivio.models import create_model
from oblivio.training import (CPU, PAPER, DivergenceError, KeepBest, Recipe, StopWhen, accuracy, fit, get_recipe,
                              train_model)
from oblivio.utils import CheckpointError


def _model(seed=0):
    torch.manual_seed(seed)
    return create_model("small-cnn", num_classes=10, in_channels=1, image_size=(8, 8), width=8, hidden=32)


def test_training_learns_digits(digits):
    m = _model()
    before = accuracy(m, digits.test)
    res = train_model(m, digits.train, Recipe(epochs=4, lr=0.05, milestones=(), batch_size=64), progress=False)
    assert res.epochs_run == 4 and len(res.history) == 4
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert accuracy(m, digits.test) > max(0.8, before + 0.5)


def test_training_is_deterministic(digits):
    r = Recipe(epochs=1, lr=0.05, milestones=(), batch_size=64, augment="crop1+flip")
    a, b = _model(), _model()
    torch.manual_seed(1)
    train_model(a, digits.train, r, seed=5, progress=False)
    torch.manual_seed(1)
    train_model(b, digits.train, r, seed=5, progress=False)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_resume_after_interruption_matches_uninterrupted(digits, tmp_path):
    r = Recipe(epochs=4, lr=0.05, milestones=(2,), batch_size=64)
    ref = _model()
    torch.manual_seed(0)
    train_model(ref, digits.train, r, seed=1, progress=False)

    class Boom(Exception):
        pass

    class Interrupt(StopWhen):
        def on_epoch_end(self, model, state, logs):
            if state.epoch == 1:
                raise Boom

    ckpt = tmp_path / "resume.pt"
    m = _model()
    torch.manual_seed(0)
    with pytest.raises(Boom):
        train_model(m, digits.train, r, seed=1, checkpoint=ckpt, callbacks=[Interrupt("x", lambda _: 0, bool)],
                    progress=False)
    assert ckpt.exists()  # epoch 1 (0-based 0) was saved
    m2 = _model()
    res = train_model(m2, digits.train, r, seed=1, checkpoint=ckpt, progress=False)
    assert res.resumed_from == 1
    for pa, pb in zip(ref.parameters(), m2.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_corrupt_resume_checkpoint_is_a_clear_error(digits, tmp_path):
    ckpt = tmp_path / "resume.pt"
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="could not be read"):
        train_model(_model(), digits.train, Recipe(epochs=1, milestones=()), checkpoint=ckpt, progress=False)


def test_nan_loss_raises_divergence(digits):
    m = _model()
    loader = TensorLoader(digits.train, batch_size=64)

    def nan_loss(model, batch):
        return model(batch.x).sum() * float("nan")

    with pytest.raises(DivergenceError, match="non-finite loss"):
        fit(m, loader, epochs=1, optimizer=torch.optim.SGD(m.parameters(), lr=0.1), loss_fn=nan_loss, progress=False)


def test_stop_when_and_keep_best(digits):
    m = _model()
    loader = TensorLoader(digits.train, batch_size=64, shuffle=True)
    stop = StopWhen("acc", lambda model: accuracy(model, digits.test), lambda v: v > 0.5)
    res = fit(m, loader, epochs=20, optimizer=torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9),
              callbacks=[stop], progress=False)
    assert res.stopped_early and res.epochs_run < 20
    assert res.history[-1]["acc"] > 0.5

    scores = iter([0.1, 0.9, 0.2])
    keep = KeepBest(lambda model: next(scores))
    m2 = _model()
    snapshots = []

    class Snap(StopWhen):
        def on_epoch_end(self, model, state, logs):
            snapshots.append(copy.deepcopy(model.state_dict()))

    res = fit(m2, loader, epochs=3, optimizer=torch.optim.SGD(m2.parameters(), lr=0.05), callbacks=[keep, Snap("s", None, None)],
              progress=False)
    assert res.info["best_epoch"] == 2
    for k, v in m2.state_dict().items():
        assert torch.equal(v, snapshots[1][k])


def test_train_mode_restored_and_mismatch_rejected(digits):
    m = _model().eval()
    train_model(m, digits.train, Recipe(epochs=1, milestones=()), progress=False)
    assert not m.training
    wrong = create_model("small-cnn", num_classes=10, in_channels=3, image_size=(8, 8), width=8, hidden=32)
    with pytest.raises(ValueError, match="model/dataset mismatch"):
        train_model(wrong, digits.train, "tiny", progress=False)


def test_recipes():
    assert PAPER.epochs == 200 and PAPER.lr == 0.01 and PAPER.milestones == (100, 150) and PAPER.weight_decay == 5e-4
    half = PAPER.scaled(0.5)
    assert half.epochs == 100 and half.milestones == (50, 75)
    assert get_recipe("cpu") is CPU
    with pytest.raises(KeyError, match="valid recipes"):
        get_recipe("huge")
    with pytest.raises(ValueError):
        Recipe(lr=-1)
    opt = CPU.make_optimizer([torch.nn.Parameter(torch.zeros(1))])
    sched = CPU.make_scheduler(opt)
    lrs = []
    for _ in range(CPU.epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert math.isclose(lrs[0], CPU.lr) and math.isclose(lrs[-1], CPU.lr * 0.01)
