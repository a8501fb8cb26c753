"""Baselines are what their names say (issue 9, item 3) and share one optimiser-settings dataclass (issue 14, item 5).

The numbers below are written out by hand from the reference code, not imported from the implementation:

- Sparse-Unlearn (Jia et al. 2023), github OPTML-Group/Unlearn-Sparse: ``README.MD`` run commands
  ``--unlearn FT --unlearn_lr 0.01 --unlearn_epochs 10`` and ``--unlearn GA --unlearn_lr 0.0001 --unlearn_epochs 5``;
  ``arg_parser.py``: ``--batch_size 256``, ``--momentum 0.9``, ``--weight_decay 5e-4``; ``unlearn/impl.py``: SGD;
  ``unlearn/GA.py``: no gradient clipping.
- SalUn (Fan et al. 2024), github OPTML-Group/Unlearn-Saliency: ``Classification/README.md``
  ``main_random.py --unlearn RL --unlearn_epochs 10 --unlearn_lr 0.013``; ``Classification/arg_parser.py`` as above.
- SCRUB (Kurmanji et al. 2023), github meghdadk/SCRUB: ``large_scale_unlearning.ipynb`` (SGD, lr 5e-4, momentum
  0.9, weight decay 5e-4, gamma 0.99, alpha 0.001, kd_T 4, msteps 2, 3 epochs; loaders with retain batch 256 and
  forget batch 512); the clip in ``thirdparty/repdistiller/helper/loops.py`` is commented out.
"""

from __future__ import annotations

import dataclasses

import pytest

from oblivio.methods import METHODS, create_method
from oblivio.methods.common import OptimizerSettings

SGD_REFERENCE = {"momentum": 0.9, "weight_decay": 5e-4, "batch_size": 256, "optimizer": "sgd"}

REFERENCE_DEFAULTS: dict[str, dict] = {
    "finetune": {**SGD_REFERENCE, "epochs": 10, "lr": 0.01},
    "neggrad": {**SGD_REFERENCE, "epochs": 5, "lr": 1e-4, "grad_clip": None},
    "random-label": {**SGD_REFERENCE, "epochs": 10, "lr": 0.013},
    "salun": {**SGD_REFERENCE, "epochs": 10, "lr": 0.013, "sparsity": 0.5},
    "scrub": {
        "epochs": 3,
        "msteps": 2,
        "alpha": 0.001,
        "gamma": 0.99,
        "temperature": 4.0,
        "lr": 5e-4,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 256,
        "forget_batch_size": 512,
        "optimizer": "sgd",
        "grad_clip": None,
    },
}

# The defaults before issue 9 (commit b4e9308), kept as the ".cpu" variants.
PRE_ISSUE_9_DEFAULTS: dict[str, dict] = {
    "finetune.cpu": {
        "epochs": 5,
        "lr": 0.02,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 128,
        "optimizer": "sgd",
    },
    "neggrad.cpu": {
        "epochs": 5,
        "lr": 0.01,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 32,
        "optimizer": "sgd",
        "grad_clip": 1.0,
    },
    "random-label.cpu": {
        "epochs": 5,
        "lr": 0.02,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 128,
        "optimizer": "sgd",
    },
    "salun.cpu": {
        "sparsity": 0.5,
        "epochs": 5,
        "lr": 0.013,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 128,
        "optimizer": "sgd",
    },
    "scrub.cpu": {
        "epochs": 3,
        "msteps": 2,
        "alpha": 0.001,
        "gamma": 0.99,
        "temperature": 4.0,
        "lr": 0.02,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 128,
        "forget_batch_size": 32,
        "optimizer": "sgd",
        "grad_clip": 1.0,
    },
}

# hparams() keys as committed result rows store them (before the shared settings dataclass): they must not change.
OPTIMIZER_KEYS = {"epochs", "lr", "momentum", "weight_decay", "batch_size", "optimizer"}
HPARAM_KEYS: dict[str, set[str]] = {
    "finetune": OPTIMIZER_KEYS,
    "neggrad": OPTIMIZER_KEYS | {"grad_clip"},
    "random-label": OPTIMIZER_KEYS,
    "salun": OPTIMIZER_KEYS | {"sparsity"},
    "bad-teacher": OPTIMIZER_KEYS | {"retain_fraction", "temperature"},
    "scrub": OPTIMIZER_KEYS | {"msteps", "alpha", "gamma", "temperature", "forget_batch_size", "grad_clip"},
    "neggrad+": OPTIMIZER_KEYS | {"alpha", "l2_to_original", "forget_batch_size", "grad_clip", "ascent_cap"},
}


@pytest.mark.parametrize("name", sorted(REFERENCE_DEFAULTS))
def test_baseline_defaults_are_the_reference_values(name):
    assert create_method(name).hparams() == REFERENCE_DEFAULTS[name]


@pytest.mark.parametrize("name", sorted(REFERENCE_DEFAULTS))
def test_baseline_source_cites_the_reference_repository(name):
    source = METHODS.get(name).source
    repo = "meghdadk/SCRUB" if name == "scrub" else "OPTML-Group/Unlearn-"
    assert repo in source, f"{name}: source does not name the reference repository: {source!r}"


@pytest.mark.parametrize("name", sorted(PRE_ISSUE_9_DEFAULTS))
def test_cpu_variants_keep_the_old_defaults(name):
    cls = METHODS.get(name)
    assert cls.variant_of == name.removesuffix(".cpu")
    assert cls.variant_reason.strip()
    assert create_method(name).hparams() == PRE_ISSUE_9_DEFAULTS[name]


@pytest.mark.parametrize("name", sorted(HPARAM_KEYS))
def test_hparams_keys_are_unchanged(name):
    assert set(create_method(name).hparams()) == HPARAM_KEYS[name]


@pytest.mark.parametrize("name", sorted(HPARAM_KEYS))
def test_baselines_inherit_the_settings_and_declare_their_own_defaults(name):
    cls = METHODS.get(name)
    assert issubclass(cls, OptimizerSettings)
    # Each method re-declares the six fields with its own values (a field override), not silently inherited ones.
    declared = set(cls.__dict__.get("__annotations__", {}))
    assert declared >= OPTIMIZER_KEYS, f"{name} does not declare {sorted(OPTIMIZER_KEYS - declared)}"


def test_settings_have_no_defaults_of_their_own():
    """A method that forgets to declare a default fails at once instead of inheriting someone else's value."""

    @dataclasses.dataclass(kw_only=True)
    class Forgetful(OptimizerSettings):
        epochs: int = 1
        lr: float = 0.1

    with pytest.raises(TypeError, match="momentum"):
        Forgetful()
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(OptimizerSettings))
    assert {f.name for f in dataclasses.fields(OptimizerSettings)} == OPTIMIZER_KEYS


def test_build_optimizer_follows_the_settings():
    import torch

    m = create_method("neggrad+")  # plain SGD, no momentum, no weight decay (its reference)
    opt = m.build_optimizer(torch.nn.Linear(2, 2).parameters())
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.SGD)
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.01, 0.0, 0.0)
    opt = create_method("bad-teacher").build_optimizer(torch.nn.Linear(2, 2).parameters())
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == 1e-4


def test_settings_are_keyword_only():
    with pytest.raises(TypeError):
        METHODS.get("finetune")(10, 0.01)  # type: ignore[misc]


def test_cost_matched_finetune_control_is_the_reference_at_one_epoch():
    """``finetune.1ep`` (issue 15's cost-matched control for TMU) changes the epoch count only, written by hand."""
    assert create_method("finetune.1ep").hparams() == {**REFERENCE_DEFAULTS["finetune"], "epochs": 1}
