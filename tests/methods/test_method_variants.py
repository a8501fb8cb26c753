"""Named variants (timm-style): a variant is its base method with other defaults, a reason, and nothing else."""

from __future__ import annotations

import dataclasses

import pytest

from oblivio.methods import METHODS, create_method, describe_method, list_methods, register_variant


def _variants() -> list[str]:
    return [n for n in list_methods() if METHODS.get(n).variant_of is not None]


@pytest.fixture
def scratch_variant():
    name = "finetune.test-variant"
    cls = register_variant(name, "finetune", reason="test: two epochs", epochs=2, lr=0.5)
    yield name, cls
    METHODS._entries.pop(name, None)


def test_a_variant_changes_only_its_declared_defaults(scratch_variant):
    name, cls = scratch_variant
    base, var = create_method("finetune"), create_method(name)
    assert isinstance(var, type(base))
    assert (var.epochs, var.lr) == (2, 0.5)
    changed = {k for k, v in var.hparams().items() if base.hparams()[k] != v}
    assert changed == {"epochs", "lr"}
    assert create_method(name, epochs=7).epochs == 7  # explicit hyper-parameters still win
    info = describe_method(name)
    assert info["variant_of"] == "finetune" and info["overrides"] == {"epochs": 2, "lr": 0.5}
    assert name in list_methods() and name not in list_methods(variants=False)


def test_a_variant_with_an_unknown_hyper_parameter_or_no_reason_is_refused():
    with pytest.raises(TypeError, match="no hyper-parameter"):
        register_variant("finetune.bad", "finetune", reason="x", not_a_field=1)
    with pytest.raises(ValueError, match="reason"):
        register_variant("finetune.bad", "finetune", reason=" ", epochs=1)
    with pytest.raises(KeyError, match="unknown method"):
        register_variant("nothing.bad", "no-such-method", reason="x")
    assert "finetune.bad" not in list_methods()


@pytest.mark.parametrize("name", _variants() or ["(none registered)"])
def test_every_registered_variant_differs_from_its_base_and_says_why(name):
    if name == "(none registered)":
        pytest.skip("no library variants registered")
    cls = METHODS.get(name)
    base = create_method(cls.variant_of)
    var = create_method(name)
    assert cls.variant_reason.strip()
    assert cls.variant_overrides
    for key, value in cls.variant_overrides.items():
        assert getattr(var, key) == value
        assert getattr(base, key) != value, f"{name} overrides {key} with the base default"
    # hparams() leaves out the fields named in _HPARAMS_OMIT_DEFAULTS while at their default (class_weights) and,
    # for TMU, the fields added by issue 23 (LATE_HPARAMS) while at the base's default: earlier keys stay the same
    omitted = set(getattr(base, "_HPARAMS_OMIT_DEFAULTS", ())) | set(getattr(cls, "LATE_HPARAMS", {}))
    assert {f.name for f in dataclasses.fields(var) if f.init} == set(base.hparams()) | omitted
