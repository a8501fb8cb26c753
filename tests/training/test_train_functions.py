"""Your training function as a recipe (issue 24, item 1): register_recipe, the store key of a function recipe, the
contract's checks, and the recipe check of the reports.

Oracle for "the store trained with the function": the same function run by hand on a plain TensorDataset of the same
images (not oblivio's TrainData), from the same initial weights, gives the stored weights bit for bit.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from oblivio.experiments import Experiment, get_preset
from oblivio.methods import create_method
from oblivio.training import (
    CPU,
    TINY,
    RecipeSource,
    TrainFunction,
    get_recipe,
    recipe_mismatch,
    register_recipe,
    resolve_recipe,
    train_model,
    unregister_recipe,
)
from oblivio.utils import config_hash

calls_made: list[tuple[str, int, int]] = []


def adam_loop(model, train_data, *, seed, epochs=1, lr=3e-3):
    """A user's own training loop (Adam, its own DataLoader), recording each call."""
    calls_made.append(("adam", len(train_data), seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for x, y in DataLoader(train_data, batch_size=64, shuffle=True, generator=g):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return model


@pytest.fixture()
def registered():
    names = []

    def reg(name, fn, **kw):
        register_recipe(name, **kw)(fn)
        names.append(name)
        return get_recipe(name)

    yield reg
    for name in dict.fromkeys(names):
        unregister_recipe(name)
    calls_made.clear()


def _experiment(tmp_path, recipe):
    return Experiment(get_preset("tiny").replace(recipe=recipe), store=tmp_path / "store", progress=False, device="cpu")


def test_store_trains_original_and_gold_with_the_function(tmp_path, registered):
    recipe = registered("t-adam", adam_loop, version="1")
    exp = _experiment(tmp_path, "t-adam")
    original = exp.original()
    split = exp.forget_split("class-subset:3:10")
    gold = exp.gold(split)
    n = len(exp.data.train)
    assert calls_made == [("adam", n, 0), ("adam", n - 10, 0)]  # original on D, gold on D_r, the experiment's seed
    # independent oracle: the same function by hand on a plain TensorDataset, from the same initial weights
    by_hand = exp.build_model(seed=0)
    torch.manual_seed(0)
    data = exp.data.train
    adam_loop(by_hand, TensorDataset(data.float_images(), data.labels), seed=0)
    for (k, a), b in zip(original.state_dict().items(), by_hand.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    # loaded from the store the second time: the function is not called again
    exp2 = _experiment(tmp_path, "t-adam")
    exp2.original(), exp2.gold(split)
    assert len(calls_made) == 3  # no new call (the third is the by-hand one)
    assert not all(torch.equal(a, b) for a, b in zip(original.parameters(), gold.parameters(), strict=True))
    meta_key = exp.original_with_meta().meta["key"]["recipe"]
    assert meta_key == {
        "name": "t-adam",
        "fingerprint": recipe.fingerprint,
        "version": "1",
        "options": {},
        "kind": "function",
    }


def test_store_key_follows_the_function_source_and_version(tmp_path, registered):
    def quick(model, train_data, *, seed, epochs=1):
        calls_made.append(("quick-a", len(train_data), seed))
        return model

    first = registered("t-quick", quick)
    exp = _experiment(tmp_path, "t-quick")
    exp.original()
    key_a = config_hash({**exp.config.model_key(), "seed": 0})

    def quick(model, train_data, *, seed, epochs=1):  # noqa: F811 - the user edits the function
        calls_made.append(("quick-b", len(train_data), seed))
        with torch.no_grad():
            next(model.parameters()).add_(1.0)
        return model

    edited = registered("t-quick", quick)
    assert edited.fingerprint != first.fingerprint
    exp_b = _experiment(tmp_path, "t-quick")
    exp_b.original()  # retrained, not the stale model of the old source
    assert [c[0] for c in calls_made] == ["quick-a", "quick-b"]
    assert config_hash({**exp_b.config.model_key(), "seed": 0}) != key_a
    bumped = registered("t-quick", quick, version="2")  # what the fingerprint cannot see: the user's version
    assert bumped.fingerprint == edited.fingerprint and bumped != edited
    _experiment(tmp_path, "t-quick").original()
    assert [c[0] for c in calls_made] == ["quick-a", "quick-b", "quick-b"]
    registered("t-quick", quick, version="2")  # the same function registered again (a re-import): reused
    _experiment(tmp_path, "t-quick").original()
    assert len(calls_made) == 3


def test_existing_recipes_keys_unchanged():
    # the key of an oblivio Recipe is still its dataclass fields (models in the shared store stay reachable)
    key = get_preset("tiny").model_key()
    fields = {
        "name": "tiny",
        "epochs": 3,
        "lr": 0.05,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "milestones": [],
        "gamma": 0.1,
        "batch_size": 64,
        "augment": "none",
        "optimizer": "sgd",
        "nesterov": False,
    }
    assert config_hash(key) == config_hash({**key, "recipe": fields})
    assert get_recipe("tiny") is TINY and get_recipe(CPU) is CPU


def test_contract_checks_name_the_fix(registered):
    with pytest.raises(TypeError, match=r"train_fn\(model, train_data, \*, seed"):
        register_recipe("t-bad")(lambda model: model)
    with pytest.raises(KeyError, match="one of oblivio's presets"):
        register_recipe("cpu")(adam_loop)
    recipe = registered("t-adam", adam_loop)
    assert recipe.epochs == 1 and recipe.with_options(epochs=4).epochs == 4
    with pytest.raises(TypeError, match="takes no option 'momentum'; its options: epochs, lr"):
        recipe.with_options(momentum=0.9)
    with pytest.raises(ValueError, match="cannot scale its schedule"):
        recipe.scaled(0.5)
    assert create_method("retrain", recipe="t-adam", epochs=3).resolved_recipe().options == {"epochs": 3}
    with pytest.raises(ValueError, match="two-stage retrains with an oblivio Recipe"):
        create_method("two-stage", recipe="t-adam")

    def returns_junk(model, train_data, *, seed):
        return "done"

    from oblivio.data import ImageDataset

    ds = ImageDataset(torch.rand(8, 1, 4, 4), torch.arange(8) % 2, ("a", "b"))
    with pytest.raises(TypeError, match="returned a str"):
        train_model(nn.Linear(16, 2), ds, recipe=resolve_recipe(returns_junk), progress=False)


def test_a_returned_new_module_is_copied_into_the_model():
    from oblivio.data import ImageDataset

    target = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))

    def new_module(model, train_data, *, seed):
        fresh = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        with torch.no_grad():
            fresh[1].weight.fill_(0.5)
        return fresh

    ds = ImageDataset(torch.rand(8, 1, 4, 4), torch.arange(8) % 2, ("a", "b"))
    train_model(target, ds, recipe=resolve_recipe(new_module), progress=False)
    assert torch.all(target[1].weight == 0.5)


def test_recipe_mismatch_rules():
    fn = TrainFunction.from_function(adam_loop, name="t-mine")
    unknown, tiny, cpu = RecipeSource.stated(None), RecipeSource.of(TINY), RecipeSource.of(CPU)
    # the case: your weights (trained your way) beside gold retrained with oblivio's SGD recipe
    warning = recipe_mismatch(unknown, tiny)
    assert warning.startswith("recipes differ") and "oblivio's recipe 'tiny'" in warning and "--model-recipe" in warning
    assert recipe_mismatch(tiny, tiny) is None
    assert recipe_mismatch(cpu, tiny) is not None  # two oblivio recipes that differ
    assert recipe_mismatch(cpu, RecipeSource.of(CPU.replace(epochs=7))) is not None  # same name, other schedule
    assert recipe_mismatch(RecipeSource.of(fn, assumed=True), RecipeSource.of(fn)) is None
    assert recipe_mismatch(RecipeSource.stated("t-mine"), RecipeSource.of(fn)) is None  # stated by name
    assert recipe_mismatch(RecipeSource.of(fn), tiny) is not None
    assert recipe_mismatch(unknown, RecipeSource.user_file()) is None  # your gold model: yours to vouch for


def test_fingerprint_sees_defaults_and_closure_values_not_addresses():
    from oblivio.training import function_fingerprint

    def make(lr):
        def train(model, train_data, *, seed):
            return model if lr else None

        return train

    assert function_fingerprint(make(0.1)) != function_fingerprint(make(0.2))  # same source, another captured lr
    assert function_fingerprint(make(0.1)) == function_fingerprint(make(0.1))

    def with_object_default(model, train_data, *, seed, log=object()):  # noqa: B008 - the case under test
        return model

    # an object default enters by its type: a repr with a memory address would change the key in every process
    a = function_fingerprint(with_object_default)
    with_object_default.__kwdefaults__["log"] = object()
    assert function_fingerprint(with_object_default) == a
