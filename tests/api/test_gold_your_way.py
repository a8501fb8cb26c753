"""oblivio.unlearn(..., train_fn=...): the gold model retrained *your* way, and the report's recipe check (issue 24,
item 1), including the issue's case: a model trained with Adam by the user beside a gold model retrained with
oblivio's SGD recipe must be flagged.

Oracle: the gold model trained here by hand (the same function, a plain TensorDataset of the retain images, the
same seed and initial weights), scored with sklearn's accuracy_score.
"""

from __future__ import annotations

import io
import logging

import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

import oblivio
from oblivio.methods import UnlearningError


def _net():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def my_adam(model, train_data, *, seed, epochs=3):
    """The user's way of training: Adam, their own loader."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for x, y in DataLoader(train_data, batch_size=64, shuffle=True, generator=g):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return model


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(y)
    data = TensorDataset(x, y)
    forget_ids = [i for i in range(600) if int(y[i]) == 3][:15]
    retain_ids = sorted(set(range(600)) - set(forget_ids))
    torch.manual_seed(1)
    model = my_adam(_net(), Subset(data, range(600)), seed=1)  # the user's model, trained their way
    return {
        "x": x,
        "y": y,
        "model": model,
        "forget": Subset(data, forget_ids),
        "retain": Subset(data, retain_ids),
        "test": Subset(data, range(1500, 1797)),
        "forget_ids": forget_ids,
        "retain_ids": retain_ids,
    }


def _acc(model, x, y):
    with torch.no_grad():
        return accuracy_score(y.numpy(), model.eval()(x).argmax(1).numpy())


def test_gold_is_retrained_with_your_function(digits):
    d = digits
    kw = dict(forget=d["forget"], retain=d["retain"], test=d["test"], method="finetune", epochs=1, progress=False)
    _, report = oblivio.unlearn(d["model"], train_fn=my_adam, init_fn=_net, seed=2, **kw)
    # oracle: gold by hand, the same function and seed, a plain TensorDataset of the retain images
    torch.manual_seed(2)
    gold = _net()
    torch.manual_seed(2)
    xr, yr = d["x"][d["retain_ids"]], d["y"][d["retain_ids"]]
    my_adam(gold, TensorDataset(xr, yr), seed=2)
    xf, yf = d["x"][d["forget_ids"]], d["y"][d["forget_ids"]]
    assert report.after["gold_acc_forget"] == pytest.approx(_acc(gold, xf, yf))
    assert report.after["gold_acc_retain"] == pytest.approx(_acc(gold, xr, yr))
    assert report.after["gold_acc_test"] == pytest.approx(_acc(gold, d["x"][1500:], d["y"][1500:]))
    assert report.recipes["gold"]["name"] == "my_adam" and report.recipes["gold"]["kind"] == "function"
    assert report.recipes["original"]["name"] == "my_adam" and "assumed" in report.recipes["original"]["detail"]
    assert report.warnings == []
    assert "recipe of the gold model: my_adam (your function" in str(report)
    assert report.to_dict()["recipes"] == report.recipes


def test_your_adam_model_beside_oblivios_sgd_gold_is_flagged(digits):
    """The issue's case: the user trained with Adam; gold retrained with oblivio's SGD recipe ("tiny")."""
    d = digits
    kw = dict(forget=d["forget"], retain=d["retain"], method="finetune", epochs=1, progress=False, init_fn=_net)
    logged = io.StringIO()
    handler = logging.StreamHandler(logged)
    logging.getLogger("oblivio").addHandler(handler)
    try:
        _, report = oblivio.unlearn(d["model"], train_fn="tiny", **kw)
    finally:
        logging.getLogger("oblivio").removeHandler(handler)
    assert report.recipes["original"]["kind"] == "unknown" and report.recipes["gold"]["name"] == "tiny"
    (warning,) = report.warnings
    assert warning.startswith("recipes differ") and "oblivio's recipe 'tiny'" in warning
    assert "register_recipe" in warning and "original_recipe=" in warning  # the fix is named
    text = str(report)
    assert "WARNING: recipes differ" in text and max(len(line) for line in text.splitlines()) <= 80
    assert "recipes differ" in logged.getvalue()  # also logged, for a user who does not print the report
    # stated: the original was trained with the same oblivio recipe -> nothing to warn about
    _, same = oblivio.unlearn(d["model"], train_fn="tiny", original_recipe="tiny", **kw)
    assert same.warnings == [] and same.recipes["original"]["name"] == "tiny"
    # stated: trained with another function than gold's -> warned
    _, other = oblivio.unlearn(d["model"], train_fn=my_adam, original_recipe="tiny", **kw)
    assert len(other.warnings) == 1 and "your training function 'my_adam'" in other.warnings[0]


def test_your_gold_model_is_not_second_guessed(digits):
    d = digits
    _, report = oblivio.unlearn(
        d["model"], forget=d["forget"], retain=d["retain"], gold=d["model"], method="finetune", epochs=1, progress=False
    )
    assert report.recipes["gold"]["kind"] == "file" and report.warnings == []
    with pytest.raises(TypeError, match="not both"):
        oblivio.unlearn(d["model"], forget=d["forget"], retain=d["retain"], gold=d["model"], train_fn=my_adam)


class _Scaled(nn.Module):
    """A module with a parameter that no reset_parameters() owns."""

    def __init__(self):
        super().__init__()
        self.body = _net()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.body(x) * self.scale


def test_default_fresh_model_resets_layers_and_refuses_what_it_cannot_reset(digits):
    d = digits
    kw = dict(forget=d["forget"], retain=d["retain"], method="finetune", epochs=1, progress=False)
    seen = []

    def record(model, train_data, *, seed):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return model

    oblivio.unlearn(d["model"], train_fn=record, **kw)  # default: a copy of the model with every layer reset
    trained = d["model"].state_dict()
    assert all(not torch.equal(seen[0][k], trained[k]) for k in trained)
    torch.manual_seed(0)
    scaled = _Scaled()
    with torch.no_grad():
        scaled.scale.fill_(1.7)  # "trained"
    with pytest.raises(UnlearningError, match=r"'scale'.*init_fn=lambda: MyNet"):
        oblivio.unlearn(scaled, train_fn=record, **kw)
    oblivio.unlearn(scaled, train_fn=record, init_fn=_Scaled, **kw)
    assert float(seen[-1]["scale"]) == 1.0
