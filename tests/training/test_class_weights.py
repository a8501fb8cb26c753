"""Recipe.class_weights (issue 22 item 1): the weights against scikit-learn, the weighted loss against a hand-written
formula, every training the recipe drives, the methods that fine-tune on D_r, errors before any training, and the
cache keys of the default presets pinned (models in the shared store must stay valid)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight

from oblivio.data import ImageDataset
from oblivio.data.loader import Batch
from oblivio.training import Recipe, train_model
from oblivio.training.class_weights import (
    balanced_class_weights,
    normalise_class_weights,
    resolve_class_weights,
    weighted_cross_entropy,
)


def _toy(n_per_class=(12, 4, 8), seed=0, shape=(1, 6, 6)):
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    x = torch.rand(len(y), *shape, generator=g)
    return ImageDataset(x, y, tuple(f"c{c}" for c in range(len(n_per_class))), name="toy")


def test_balanced_matches_sklearn():
    rng = np.random.default_rng(3)
    y = rng.choice(5, size=321, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    ours = balanced_class_weights(torch.from_numpy(y), 5).double().numpy()
    ref = compute_class_weight("balanced", classes=np.arange(5), y=y)
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_explicit_list_and_errors():
    y = torch.tensor([0, 1, 1, 2])
    assert resolve_class_weights([1, 2, 3], y, 3).tolist() == [1.0, 2.0, 3.0]
    assert resolve_class_weights("none", y, 3) is None
    with pytest.raises(ValueError, match="has 2 entries but the data has 3 classes"):
        resolve_class_weights([1, 2], y, 3)
    with pytest.raises(ValueError, match=r"class\(es\) \[3\] have no sample"):
        resolve_class_weights("balanced", y, 4)
    with pytest.raises(ValueError, match="'none', 'balanced'"):
        normalise_class_weights("inverse")
    with pytest.raises(ValueError, match="all zero"):
        normalise_class_weights([0, 0])
    with pytest.raises(ValueError, match=">= 0"):
        normalise_class_weights([1, -1])
    assert normalise_class_weights("1, 2.5") == (1.0, 2.5)
    with pytest.raises(ValueError, match="class_weights"):
        Recipe(class_weights="bogus")


def test_weighted_loss_matches_hand_formula():
    torch.manual_seed(0)
    logits = torch.randn(7, 3, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 1, 0, 2, 2])
    w = torch.tensor([0.5, 2.0, 1.5])

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return logits

    loss = float(weighted_cross_entropy(w)(Fixed(), Batch(torch.zeros(7, 1), y, torch.arange(7))))
    # hand-written: sum_i w_{y_i} * (-log softmax_i[y_i]) / sum_i w_{y_i}
    num = den = 0.0
    for i in range(7):
        row = logits[i].tolist()
        m = max(row)
        lse = m + math.log(sum(math.exp(v - m) for v in row))
        num += float(w[y[i]]) * (lse - row[int(y[i])])
        den += float(w[y[i]])
    assert loss == pytest.approx(num / den, rel=1e-12)


def _model(ds, seed=0):
    from oblivio.models import create_model

    torch.manual_seed(seed)
    return create_model("small-cnn", num_classes=ds.num_classes, in_channels=1, image_size=(6, 6), width=4, hidden=8)


def _train(ds, weights, seed=0):
    m = _model(ds, seed)
    recipe = Recipe(epochs=2, lr=0.1, milestones=(), batch_size=8, class_weights=weights)
    torch.manual_seed(seed)
    train_model(m, ds, recipe=recipe, seed=seed, progress=False)
    return torch.cat([p.detach().flatten() for p in m.parameters()])


def test_train_model_uses_the_weights():
    ds = _toy()
    plain = _train(ds, "none")
    ones = _train(ds, [1.0, 1.0, 1.0])
    scaled = _train(ds, [3.0, 3.0, 3.0])  # a weighted *mean*: a common scale cancels
    torch.testing.assert_close(plain, ones, rtol=0, atol=1e-6)
    torch.testing.assert_close(plain, scaled, rtol=0, atol=1e-6)
    assert (plain - _train(ds, "balanced")).abs().max() > 1e-4


def test_train_model_rejects_bad_weights_before_training():
    ds = _toy()
    m = _model(ds)
    before = [p.detach().clone() for p in m.parameters()]
    with pytest.raises(ValueError, match="has 2 entries but the data has 3 classes"):
        train_model(m, ds, recipe=Recipe(epochs=1, class_weights=[1, 2]), progress=False)
    empty = ds.subset(torch.nonzero(ds.labels != 1).flatten())
    with pytest.raises(ValueError, match="no sample"):
        train_model(m, empty, recipe=Recipe(epochs=1, class_weights="balanced"), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters(), strict=True))


def test_default_keys_unchanged():
    """Today's hashes of the presets and of method cells (computed before the field existed): models and rows in
    the shared store stay valid."""
    from oblivio.experiments.config import get_preset
    from oblivio.experiments.grid import Cell, EvalOptions, MethodSpec, Seeds
    from oblivio.utils import config_hash

    expected = {
        "cpu": "1a14a6ece2e10c49",
        "tiny": "082e628a17daed06",
        "paper": "0af47b74799bdf77",
        "paper-fmnist": "ff13c2a24964c7bf",
    }
    for name, h in expected.items():
        assert config_hash(get_preset(name).model_key()) == h, name
    tiny = get_preset("tiny")
    cells = {
        "finetune": "ce6691234d77a1c9",
        "neggrad+": "c46d8de464e63efa",
        "scrub": "deb10172d5a2ad96",
        "salun": "d313c68cbc6dd008",
        "random-label": "122d5a5da4d6e379",
        "tmu": "a723244d2da51862",
    }
    for method, h in cells.items():
        assert Cell("class-subset:3:20", MethodSpec(method), Seeds(), EvalOptions()).key(tiny) == h, method
    weighted = tiny.replace(recipe=tiny.recipe.replace(class_weights="balanced"))
    assert config_hash(weighted.model_key()) != expected["tiny"]
    assert "class_weights" in config_hash.__globals__["_jsonable"](weighted.recipe)


def test_methods_take_the_weights():
    from oblivio.experiments.cell import _with_recipe_class_weights
    from oblivio.experiments.config import get_preset
    from oblivio.experiments.grid import MethodSpec
    from oblivio.methods import create_method

    assert "class_weights" not in create_method("finetune").hparams()
    assert create_method("finetune", class_weights="balanced").hparams()["class_weights"] == "balanced"
    tiny = get_preset("tiny")
    weighted = tiny.replace(recipe=tiny.recipe.replace(class_weights="balanced"))
    assert _with_recipe_class_weights(weighted, MethodSpec("finetune")) == {"class_weights": "balanced"}
    assert _with_recipe_class_weights(weighted, MethodSpec("scrub", {"class_weights": "none"})) == {
        "class_weights": "none"
    }
    assert _with_recipe_class_weights(weighted, MethodSpec("bad-teacher")) == {}  # no cross-entropy on D_r
    assert _with_recipe_class_weights(tiny, MethodSpec("finetune")) == {}


@pytest.mark.parametrize("name", ["finetune", "neggrad+", "scrub"])
def test_method_weighted_differs_and_bad_length_fails_first(name):
    from oblivio.methods import create_method

    ds = _toy(n_per_class=(30, 6, 12))
    forget, retain = ds.subset(torch.arange(0, 4)), ds.subset(torch.arange(4, len(ds)))
    model = _model(ds)
    kw = {"epochs": 1}
    a = create_method(name, **kw)(model, forget=forget, retain=retain, seed=1, progress=False)
    b = create_method(name, class_weights="balanced", **kw)(model, forget=forget, retain=retain, seed=1, progress=False)
    pa = torch.cat([p.flatten() for p in a.parameters()])
    pb = torch.cat([p.flatten() for p in b.parameters()])
    assert (pa - pb).abs().max() > 1e-6
    with pytest.raises(ValueError, match="has 2 entries"):
        create_method(name, class_weights=[1, 2], **kw)(model, forget=forget, retain=retain, progress=False)


def test_tmu_takes_the_weights_in_its_twin_and_cache_key():
    from oblivio.methods import create_method
    from oblivio.methods.tmu.twin import train_twin_model

    plain, weighted = create_method("tmu"), create_method("tmu", class_weights="balanced")
    assert "class_weights" not in plain.hparams() and "class_weights" not in plain._twin_hparams()
    assert weighted._twin_hparams()["class_weights"] == "balanced"
    ds = _toy(n_per_class=(30, 6, 12))
    model = _model(ds)
    retain, forget, twin = ds.subset(torch.arange(8, 48)), ds.subset(torch.arange(0, 4)), ds.subset(torch.arange(4, 8))
    kw = {"epochs": 1, "target_accuracy": 1.01, "seed": 0}
    a, _ = train_twin_model(model, retain=retain, forget=forget, twin=twin, **kw)
    b, _ = train_twin_model(
        model, retain=retain, forget=forget, twin=twin, class_weights=torch.tensor([0.2, 5.0, 1.0]), **kw
    )
    diff = max(float((p - q).abs().max()) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert diff > 1e-6
