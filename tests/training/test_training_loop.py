import copy
import math

import pytest
import torch

from oblivio.data import TensorLoader
from oblivio.models import create_model
from oblivio.training import (
    CPU,
    PAPER,
    Callback,
    DivergenceError,
    KeepBest,
    Recipe,
    StopWhen,
    accuracy,
    fit,
    get_recipe,
    train_model,
)
from oblivio.utils import CheckpointError


def _model(seed=0):
    torch.manual_seed(seed)
    return create_model("small-cnn", num_classes=10, in_channels=1, image_size=(8, 8), width=8, hidden=32)


def test_training_learns_digits(digits):
    m = _model()
    before = accuracy(m, digits.test)
    res = train_model(m, digits.train, recipe=Recipe(epochs=4, lr=0.05, milestones=(), batch_size=64), progress=False)
    assert res.epochs_run == 4 and len(res.history) == 4
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert accuracy(m, digits.test) > max(0.8, before + 0.5)


def test_training_is_deterministic(digits):
    r = Recipe(epochs=1, lr=0.05, milestones=(), batch_size=64, augment="crop1+flip")
    a, b = _model(), _model()
    torch.manual_seed(1)
    train_model(a, digits.train, recipe=r, seed=5, progress=False)
    torch.manual_seed(1)
    train_model(b, digits.train, recipe=r, seed=5, progress=False)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_resume_after_interruption_matches_uninterrupted(digits, tmp_path):
    r = Recipe(epochs=4, lr=0.05, milestones=(2,), batch_size=64)
    ref = _model()
    torch.manual_seed(0)
    train_model(ref, digits.train, recipe=r, seed=1, progress=False)

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
        train_model(
            m,
            digits.train,
            recipe=r,
            seed=1,
            checkpoint=ckpt,
            callbacks=[Interrupt("x", lambda _: 0, bool)],
            progress=False,
        )
    assert ckpt.exists()  # epoch 1 (0-based 0) was saved
    m2 = _model()
    res = train_model(m2, digits.train, recipe=r, seed=1, checkpoint=ckpt, progress=False)
    assert res.resumed_from == 1
    for pa, pb in zip(ref.parameters(), m2.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_corrupt_resume_checkpoint_is_a_clear_error(digits, tmp_path):
    ckpt = tmp_path / "resume.pt"
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="could not be read"):
        train_model(_model(), digits.train, recipe=Recipe(epochs=1, milestones=()), checkpoint=ckpt, progress=False)


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
    res = fit(
        m,
        loader,
        epochs=20,
        optimizer=torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9),
        callbacks=[stop],
        progress=False,
    )
    assert res.stopped_early and res.epochs_run < 20
    assert res.history[-1]["acc"] > 0.5

    scores = iter([0.1, 0.9, 0.2])
    keep = KeepBest(lambda model: next(scores))
    m2 = _model()
    snapshots = []

    class Snap(StopWhen):
        def on_epoch_end(self, model, state, logs):
            snapshots.append(copy.deepcopy(model.state_dict()))

    res = fit(
        m2,
        loader,
        epochs=3,
        optimizer=torch.optim.SGD(m2.parameters(), lr=0.05),
        callbacks=[keep, Snap("s", None, None)],
        progress=False,
    )
    assert res.info["best_epoch"] == 2
    for k, v in m2.state_dict().items():
        assert torch.equal(v, snapshots[1][k])


def test_train_mode_restored_and_mismatch_rejected(digits):
    m = _model().eval()
    train_model(m, digits.train, recipe=Recipe(epochs=1, milestones=()), progress=False)
    assert not m.training
    wrong = create_model("small-cnn", num_classes=10, in_channels=3, image_size=(8, 8), width=8, hidden=32)
    with pytest.raises(ValueError, match="model/dataset mismatch"):
        train_model(wrong, digits.train, recipe="tiny", progress=False)


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


class _Recorder(Callback):
    """Raises from ``after_step`` at step ``fail_at`` (if given); records which hooks ran and the mode seen."""

    def __init__(self, *, fail_at=None, fail_end=False):
        self.fail_at, self.fail_end = fail_at, fail_end
        self.calls = []

    def on_train_start(self, model, state):
        self.calls.append("start")

    def after_step(self, model, optimizer, state):
        self.calls.append(("step", model.training))
        if state.step == self.fail_at:
            raise RuntimeError("callback failed mid-epoch")

    def on_train_end(self, model, state):
        self.calls.append(("end", state.step))
        if self.fail_end:
            raise ValueError("on_train_end failed too")


@pytest.mark.parametrize("start_in_train_mode", [False, True])
def test_callback_raising_mid_epoch_restores_mode_and_ends_callbacks(digits, start_in_train_mode):
    m = _model().train(start_in_train_mode)
    loader = TensorLoader(digits.train, batch_size=64)
    failing, other = _Recorder(fail_at=3), _Recorder()
    with pytest.raises(RuntimeError, match="callback failed mid-epoch"):
        fit(
            m,
            loader,
            epochs=2,
            optimizer=torch.optim.SGD(m.parameters(), lr=0.05),
            callbacks=[failing, other],
            progress=False,
        )
    assert m.training is start_in_train_mode  # the mode it had before fit, not fit's train mode
    assert failing.calls == ["start", ("step", True), ("step", True), ("step", True), ("end", 3)]
    assert other.calls == ["start", ("step", True), ("step", True), ("end", 3)]  # the step that raised came first


def test_divergence_still_ends_callbacks_and_first_error_wins(digits, caplog):
    """A callback whose on_train_end also fails after a failed training: the training's error propagates, the
    callback's is logged, and the callbacks after it still get their on_train_end."""
    m = _model().eval()
    loader = TensorLoader(digits.train, batch_size=64)
    bad_end, later = _Recorder(fail_end=True), _Recorder()

    def nan_loss(model, batch):
        return model(batch.x).sum() * float("nan")

    with caplog.at_level("ERROR", logger="oblivio.training"), pytest.raises(DivergenceError):
        fit(
            m,
            loader,
            epochs=1,
            optimizer=torch.optim.SGD(m.parameters(), lr=0.1),
            loss_fn=nan_loss,
            callbacks=[bad_end, later],
            progress=False,
        )
    assert not m.training
    assert bad_end.calls[-1] == ("end", 0) and later.calls[-1] == ("end", 0)
    assert any("on_train_end raised" in r.getMessage() for r in caplog.records)


def test_on_train_end_error_after_a_good_training_propagates(digits):
    m = _model().eval()
    loader = TensorLoader(digits.train, batch_size=64)
    with pytest.raises(ValueError, match="on_train_end failed too"):
        fit(
            m,
            loader,
            epochs=1,
            optimizer=torch.optim.SGD(m.parameters(), lr=0.05),
            callbacks=[_Recorder(fail_end=True)],
            steps_per_epoch=2,
            progress=False,
        )
    assert not m.training  # restored even so


def test_helpers_stay_importable_from_the_loop():
    from oblivio.training import loop, passes, progress

    assert loop.SamplePasses is passes.SamplePasses and loop.count_sample_passes is passes.count_sample_passes
    assert loop.ProgressLog is progress.ProgressLog
