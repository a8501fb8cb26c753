"""Hostile and unusual inputs to ``oblivio.unlearn`` / ``evaluate_unlearning`` (issue 21, items 2 and 4).

* Models whose forward returns a tuple, a dict, a Hugging Face style ``ModelOutput`` or an object with ``.logits``
  are accepted everywhere (one adapter, :func:`oblivio.models.adapters.with_logits`), and handed back as themselves.
* A model on the meta device, with fewer outputs than classes, or ``forget=None``: a clear error from the one-batch
  check, before anything else runs the model and before any training.
* Forget samples inside retain (or holdout / test): refused with the count, by sample id where the data has ids,
  by image content where it does not.
* A method that returns the model unchanged: "no change", in the log, the report and its dict.

Tiny tensors (8x8 images, a two-layer net); each test runs in well under a second.
"""

from __future__ import annotations

import collections
import copy
import logging
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.utils.data import Subset, TensorDataset

import oblivio
from oblivio.methods import UnlearningError, UnlearningMethod, create_method

K = 3


def _net(k=K):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, k))


@pytest.fixture(scope="module")
def world():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(60, 1, 8, 8, generator=g)
    y = torch.arange(60) % K
    full = TensorDataset(x, y)
    test_x = torch.rand(30, 1, 8, 8, generator=g)
    return {
        "x": x,
        "y": y,
        "full": full,
        "forget": Subset(full, range(6)),
        "retain": Subset(full, range(6, 45)),
        "holdout": Subset(full, range(45, 60)),
        "test": TensorDataset(test_x, torch.arange(30) % K),
    }


@pytest.fixture()
def no_training(monkeypatch):
    """Fail the test if any method starts training (every check must come first)."""

    def trained(self, *args, **kwargs):
        pytest.fail(f"{self.name} started training")

    for cls in {type(create_method(m)) for m in ("finetune", "tmu")}:
        monkeypatch.setattr(cls, "_unlearn", trained)


# ---------------------------------------------------------------------------------------------- model outputs
class ModelOutput(collections.OrderedDict):
    """What Hugging Face models return: a dict that also has attributes (written here, no transformers needed)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class Output:
    logits: torch.Tensor
    hidden: torch.Tensor


Pair = collections.namedtuple("Pair", ["logits", "aux"])


class Wrapped(nn.Module):
    """A classifier whose forward returns its logits inside another structure."""

    def __init__(self, form):
        super().__init__()
        self.form = form
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())
        self.fc = nn.Linear(16, K)

    def forward(self, x):
        h = self.body(x)
        logits = self.fc(h)
        if self.form == "tuple":
            return logits, h
        if self.form == "list":
            return [logits, h]
        if self.form == "dict":
            return {"logits": logits, "hidden": h}
        if self.form == "model-output":
            return ModelOutput(loss=None, logits=logits)
        if self.form == "object":
            return Output(logits, h)
        return Pair(logits, h)


FORMS = ["tuple", "list", "dict", "model-output", "object", "namedtuple"]


def _wrapped(form):
    torch.manual_seed(0)
    return Wrapped(form)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("method", ["finetune", "tmu"])
def test_tuple_and_dict_outputs_are_accepted_everywhere(world, form, method):
    net = _wrapped(form)
    before = copy.deepcopy(net.state_dict())
    kw = {"epochs": 1} if method == "finetune" else {}
    new, report = oblivio.unlearn(
        net,
        forget=world["forget"],
        retain=world["retain"],
        holdout=world["holdout"],
        test=world["test"],
        method=method,
        progress=False,
        **kw,
    )
    assert type(new) is Wrapped and new is not net  # the user's own type back, not an adapter
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # the original is untouched
    assert set(new.state_dict()) == set(before)  # no "model." prefix
    # the oracle: accuracy recomputed here from the logits the user's own forward returns
    with torch.no_grad():
        x, y = world["x"][:6], world["y"][:6]
        out = new.eval()(x)
        logits = out[0] if isinstance(out, (tuple, list)) else out["logits"] if isinstance(out, dict) else out.logits
        assert report.after["acc_forget"] == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    assert 0.0 <= report.after["acc_test"] <= 1.0
    res = oblivio.evaluate_unlearning(new, forget=world["forget"], retain=world["retain"], test=world["test"])
    assert res["acc_forget"] == report.after["acc_forget"]


@pytest.mark.parametrize("form", ["tuple", "model-output"])
def test_a_method_called_directly_accepts_them_too(world, form):
    from oblivio.data import as_image_dataset

    net = _wrapped(form)
    f, r = as_image_dataset(world["forget"]), as_image_dataset(world["retain"])
    new = create_method("finetune", epochs=1)(net, forget=f, retain=r, progress=False)
    assert type(new) is Wrapped
    new = create_method("finetune", epochs=1)(net, forget=f, retain=r, progress=False, inplace=True)
    assert new is net


def test_an_output_without_logits_is_a_clear_error(world, no_training):
    class NoLogits(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, K)

        def forward(self, x):
            return {"scores": self.fc(x.flatten(1))}

    with pytest.raises(UnlearningError, match="without a 'logits' tensor \\(keys: 'scores'\\)"):
        oblivio.unlearn(NoLogits(), forget=world["forget"], retain=world["retain"], method="finetune")


# ---------------------------------------------------------------------------------------------- the one-batch check
class Counting(nn.Module):
    """Counts how often (and on how many images) forward runs."""

    def __init__(self, k):
        super().__init__()
        self.net = _net(k)
        self.calls: list[int] = []

    def forward(self, x):
        self.calls.append(len(x))
        return self.net(x)


def test_fewer_outputs_than_classes_fails_on_one_batch_first(world, no_training, monkeypatch):
    import oblivio.api as api

    monkeypatch.setattr(api, "_scores", lambda *a, **k: pytest.fail("scored before the model check"))
    net = Counting(K - 1)
    with pytest.raises(UnlearningError, match=f"the model has {K - 1} outputs but the data has {K} classes"):
        oblivio.unlearn(net, forget=world["forget"], retain=world["retain"], test=world["test"], method="finetune")
    assert net.calls == [2]  # one small batch, nothing else (an IndexError in metrics/mia.py before)


def test_fewer_outputs_than_classes_in_evaluate(world):
    with pytest.raises(UnlearningError, match="has 2 outputs but the data has 3 classes"):
        oblivio.evaluate_unlearning(_net(2), forget=world["forget"], retain=world["retain"], test=world["test"])


def test_a_model_on_the_meta_device(world, no_training):
    with torch.device("meta"):
        net = _net()
    with pytest.raises(UnlearningError, match="meta device .* materialise it first"):
        oblivio.unlearn(net, forget=world["forget"], retain=world["retain"], method="finetune")
    with pytest.raises(UnlearningError, match="meta device"):
        oblivio.evaluate_unlearning(net, forget=world["forget"], retain=world["retain"], test=world["test"])
    from oblivio.data import as_image_dataset

    with pytest.raises(UnlearningError, match="meta device"):  # a method called directly, too
        create_method("finetune")(
            net, forget=as_image_dataset(world["forget"]), retain=as_image_dataset(world["retain"])
        )


@pytest.mark.parametrize("missing", ["forget", "retain"])
def test_forget_or_retain_none(world, no_training, missing):
    kw = {"forget": world["forget"], "retain": world["retain"], missing: None}
    with pytest.raises(UnlearningError, match=f"{missing} is None: pass the samples"):
        oblivio.unlearn(_net(), method="finetune", **kw)
    with pytest.raises(UnlearningError, match=f"{missing} is None"):
        oblivio.evaluate_unlearning(_net(), test=world["test"], **kw)


# ---------------------------------------------------------------------------------------------- overlap
def test_forget_inside_retain_is_refused_with_the_count(world, no_training):
    ids = [3, 7, 11, 20]
    # the case: retain=train, a plain dataset without ids: compared by image content
    with pytest.raises(UnlearningError, match="forget and retain share 4 samples by image content"):
        oblivio.unlearn(_net(), forget=Subset(world["full"], ids), retain=world["full"], method="finetune")
    # both with ids (Subset indices): compared by id, the ids named
    with pytest.raises(UnlearningError, match=r"forget and retain share 2 sample ids \(e.g. \[3, 7\]\)"):
        oblivio.unlearn(
            _net(), forget=Subset(world["full"], ids), retain=Subset(world["full"], range(8)), method="finetune"
        )


def test_array_inputs_and_two_wrappers_of_the_same_tensors(world, no_training):
    x, y = world["x"], world["y"]
    with pytest.raises(UnlearningError, match="forget and retain share 6 samples by image content"):
        oblivio.unlearn(_net(), forget=(x[:6], y[:6]), retain=(x.numpy(), y.numpy()), method="finetune")
    with pytest.raises(UnlearningError, match="forget and retain share 6 samples by image content"):
        oblivio.unlearn(
            _net(), forget=TensorDataset(x[:6], y[:6]), retain=TensorDataset(x.clone(), y), method="finetune"
        )
    # uint8 and float copies of the same pixels are the same images
    x8 = (x * 255).round().to(torch.uint8)
    with pytest.raises(UnlearningError, match="share 6 samples by image content"):
        oblivio.unlearn(_net(), forget=(x8[:6], y[:6]), retain=(x8.float() / 255, y), method="finetune")


@pytest.mark.parametrize("role", ["holdout", "test"])
def test_forget_or_retain_inside_holdout_or_test(world, no_training, role):
    kw = {"forget": world["forget"], "retain": world["retain"], role: Subset(world["full"], range(30, 50))}
    with pytest.raises(UnlearningError, match=f"retain and {role} share 15 samples by image content"):
        oblivio.unlearn(_net(), method="finetune", **kw)


def test_disjoint_roles_still_run(world):
    new, report = oblivio.unlearn(
        _net(),
        forget=world["forget"],
        retain=world["retain"],
        holdout=world["holdout"],
        test=world["test"],
        method="finetune",
        epochs=1,
        progress=False,
    )
    assert report.sizes == {"forget": 6, "retain": 39, "holdout": 15, "test": 30}


def test_the_content_hash_is_exact():
    from oblivio.data import ImageDataset
    from oblivio.data.overlap import content_hashes

    x = torch.rand(5, 1, 4, 4)
    x[1] = x[0]
    x[2] = x[0]
    x[2, 0, 0, 0] += 1e-6  # one pixel off by a hair: another image
    h = content_hashes(ImageDataset(x, torch.zeros(5, dtype=torch.long), ("a",)))
    assert h[0] == h[1] and h[0] != h[2] and len(set(h.tolist())) == 4


# ---------------------------------------------------------------------------------------------- no change
@dataclass(kw_only=True)
class ReturnsItUnchanged(UnlearningMethod):
    """What TMU does when it predicts every forget sample easy: the model back, weights untouched."""

    name = "test-api-noop"

    def _unlearn(self, model, data, *, seed, progress):
        self.info.update(predicted_easy=len(data.forget), predicted_hard=0)
        return model


def test_no_change_is_said_and_recorded(world, caplog):
    with caplog.at_level(logging.WARNING, logger="oblivio"):
        new, report = oblivio.unlearn(
            _net(), forget=world["forget"], retain=world["retain"], method=ReturnsItUnchanged(), progress=False
        )
    assert report.unchanged is True and report.to_dict()["unchanged"] is True
    assert "NO CHANGE" in str(report)
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no change" in m and "6 of 6 forget samples predicted easy" in m for m in warning), warning


def test_a_real_change_is_not_no_change(world, caplog):
    with caplog.at_level(logging.WARNING, logger="oblivio"):
        _, report = oblivio.unlearn(
            _net(), forget=world["forget"], retain=world["retain"], method="finetune", epochs=1, progress=False
        )
    assert report.unchanged is False and "NO CHANGE" not in str(report)
    assert not any("no change" in r.getMessage() for r in caplog.records)


def test_no_change_in_place(world):
    net = _net()
    _, report = oblivio.unlearn(
        net, forget=world["forget"], retain=world["retain"], method=ReturnsItUnchanged(), inplace=True, progress=False
    )
    assert report.unchanged is True
    _, report = oblivio.unlearn(
        net, forget=world["forget"], retain=world["retain"], method="finetune", epochs=1, inplace=True, progress=False
    )
    assert report.unchanged is False  # the hash is taken before the in-place run
