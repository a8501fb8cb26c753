"""Registry-driven suite: every registered method (including ones added later) on a tiny real dataset."""

from __future__ import annotations

import pytest
import torch

from oblivio.methods import UnlearningError, create_method, list_methods, unlearn


def library_methods() -> list[str]:
    """The registered methods, minus the ones other test modules register for themselves ("test-" prefix)."""
    return [name for name in list_methods(variants=False) if not name.startswith("test-")]


from oblivio.methods.base import METHODS

# Settings that keep each run to a fraction of a second; methods not listed run with their defaults.
FAST_HPARAMS: dict[str, dict] = {
    "retrain": {"recipe": "tiny", "epochs": 2},
    "two-stage": {"recipe": "tiny", "neutralize_max_epochs": 5},
    "finetune": {"epochs": 1},
    "random-label": {"epochs": 1},
    "salun": {"epochs": 1},
    "scrub": {"epochs": 2, "msteps": 1},
    "neggrad+": {"epochs": 1},
    "neggrad": {"epochs": 2},
    "kl-uniform-contrastive": {"epochs": 1},
    "noise-finetune": {"epochs": 1},
    "prune-reinit": {"epochs": 1},
}


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _run(name: str, model, splits, seed: int = 0):
    method = create_method(name, **FAST_HPARAMS.get(name, {}))
    out = method(model, forget=splits.forget, retain=splits.retain, holdout=splits.holdout, seed=seed, progress=False)
    return method, out


@pytest.fixture(scope="module")
def runs(mu_world):
    """Each method run twice with the same seed on the class-subset request (shared by the checks below)."""
    results = {}
    for name in library_methods():
        before = _state(mu_world.original)
        method, first = _run(name, mu_world.original, mu_world.subset)
        _, second = _run(name, mu_world.original, mu_world.subset)
        results[name] = (method, first, second, before)
    return results


def test_registry_lists_the_baselines():
    for name in (
        "retrain",
        "finetune",
        "neggrad",
        "neggrad+",
        "random-label",
        "bad-teacher",
        "scrub",
        "salun",
        "two-stage",
    ):
        assert name in list_methods()


@pytest.mark.parametrize("name", library_methods())
def test_method_contract(name, runs, mu_world):
    method, out, again, before = runs[name]
    original = mu_world.original
    assert out is not original
    # the original is untouched
    for k, v in original.state_dict().items():
        assert torch.equal(v, before[k]), f"{name} modified the original's {k}"
    # same architecture, finite weights, eval mode
    assert type(out) is type(original)
    assert {k: v.shape for k, v in out.state_dict().items()} == {k: v.shape for k, v in original.state_dict().items()}
    assert all(torch.isfinite(p).all() for p in out.parameters())
    assert not out.training and not any(m.training for m in out.modules())
    # deterministic for a seed
    for (k, v), w in zip(out.state_dict().items(), again.state_dict().values()):
        assert torch.equal(v, w), f"{name}: two runs with seed 0 differ in {k}"
    assert method.info["seconds"] > 0


@pytest.mark.parametrize("name", sorted(FAST_HPARAMS) + ["bad-teacher"])
def test_baseline_changes_the_weights(name, runs, mu_world):
    # (Not part of the general contract: a method may legitimately find nothing to change.)
    _, out, _, _ = runs[name]
    assert any(not torch.equal(p, q) for p, q in zip(out.parameters(), mu_world.original.parameters()))


@pytest.mark.parametrize("name", library_methods())
def test_method_declares_source_and_keyword_only_hparams(name):
    cls = METHODS.get(name)
    assert isinstance(cls.source, str) and cls.source.strip(), f"{name} must name the source of its defaults"
    method = cls()  # every hyper-parameter has a default
    assert isinstance(method.hparams(), dict)
    if method.hparams():
        with pytest.raises(TypeError):
            cls(*method.hparams().values())  # keyword-only


@pytest.mark.parametrize("name", library_methods())
def test_unknown_hparam_names_the_valid_ones(name):
    valid = sorted(METHODS.get(name)().hparams())
    with pytest.raises(TypeError) as err:
        create_method(name, no_such_knob=1)
    assert "no_such_knob" in str(err.value)
    for hp in valid:
        assert hp in str(err.value)


@pytest.mark.parametrize("name", library_methods())
def test_empty_forget_set_is_rejected(name, original, mu_world):
    s = mu_world.subset
    with pytest.raises(UnlearningError, match="empty"):
        unlearn(name, original, forget=s.forget.subset([]), retain=s.retain, holdout=s.holdout, progress=False)


@pytest.mark.parametrize(
    "name,bad",
    [
        ("finetune", {"lr": -1.0}),
        ("neggrad", {"optimizer": "rmsprop"}),
        ("two-stage", {"mislabel": "median"}),
        ("salun", {"sparsity": 1.5}),
        ("retrain", {"recipe": "no-such-recipe"}),
        ("scrub", {"epochs": -1}),
    ],
)
def test_bad_hparam_values_fail_at_construction(name, bad):
    with pytest.raises((ValueError, KeyError)) as err:
        create_method(name, **bad)
    assert next(iter(bad)) in str(err.value) or "recipe" in str(err.value)
