"""TMU end to end: registry, validation, the run's report, aligned unlearning, noise variant, determinism (the scores
against gold, label accuracy and feature ablation, are tested in tests/experiments/test_analyses.py)."""

from __future__ import annotations

import copy

import pytest
import torch

from oblivio.methods import UnlearningError, create_method, list_methods
from oblivio.methods.tmu import TMU, noise_soft_targets, twin_size
from oblivio.training import accuracy


@pytest.fixture(scope="module")
def tmu_run(tmu_original, tmu_splits):
    method = create_method("tmu")
    out = method(
        tmu_original,
        forget=tmu_splits.forget,
        retain=tmu_splits.retain,
        holdout=tmu_splits.holdout,
        seed=0,
        progress=False,
    )
    return method, out


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_registered_and_needs_holdout():
    assert "tmu" in list_methods()
    assert isinstance(create_method("tmu"), TMU) and TMU.needs_holdout


def test_missing_holdout_is_a_clear_error(tmu_original, tmu_splits):
    with pytest.raises(UnlearningError, match="needs holdout"):
        create_method("tmu")(tmu_original, forget=tmu_splits.forget, retain=tmu_splits.retain, progress=False)


@pytest.mark.parametrize(
    "bad",
    [
        {"hard_mode": "zero"},
        {"features": ("nf", "xx")},
        {"balance": "smote"},
        {"af_form": "l1"},
        {"n_twins": 0},
        {"cf_fraction": 0.0},
        {"noise_mix": 2.0},
    ],
)
def test_bad_hyper_parameters_fail_at_construction(bad):
    with pytest.raises(ValueError):
        create_method("tmu", **bad)


def test_run_reports_what_it_did(tmu_run, tmu_original, tmu_splits):
    method, out = tmu_run
    info = method.info
    forget = tmu_splits.forget
    assert info["twin_size"] == twin_size(len(forget), len(tmu_splits.retain))
    assert info["features"] == []
    # default n_twins=4, capped by how many disjoint real twin sets the holdout holds
    assert 1 <= info["n_twins"] <= 4
    assert len(info["twin_epochs"]) == info["n_twins"] and info["twin_reached"] == [True] * info["n_twins"]
    assert info["forget_ids"] == forget.ids.tolist()
    assert len(info["predicted_labels"]) == len(forget) and set(info["predicted_labels"]) <= {0, 1}
    assert info["predicted_easy"] + info["predicted_hard"] == len(forget)
    assert info["predicted_easy"] == sum(info["predicted_labels"])
    # the default's margin rule reads no features and no predictor, so it computes neither (issue 15)
    assert "twin_features" not in info and "predictor_train_accuracy" not in info and method.predictor is None
    assert 0 <= info["hard_fraction"] <= 1 and 0 <= info["twin_rule_agreement"] <= 1
    assert len(info["twin_labels"]) == info["n_twins"] * info["twin_size"]
    assert out is not tmu_original and not out.training
    assert accuracy(out, tmu_splits.retain) >= accuracy(tmu_original, tmu_splits.retain) - 0.05


def test_deterministic(tmu_run, tmu_original, tmu_splits):
    method, out = tmu_run
    again = create_method("tmu")
    out2 = again(
        tmu_original,
        forget=tmu_splits.forget,
        retain=tmu_splits.retain,
        holdout=tmu_splits.holdout,
        seed=0,
        progress=False,
    )
    assert again.info["predicted_labels"] == method.info["predicted_labels"]
    assert again.info["twin_labels"] == method.info["twin_labels"]
    assert _same_weights(out, out2)


def test_paper_rule_check_records_the_predictor_beside_the_margin_rule(tmu_run, tmu_original, tmu_splits):
    method, out = tmu_run
    checked = create_method("tmu", paper_rule_check=True)
    out2 = checked(
        tmu_original,
        forget=tmu_splits.forget,
        retain=tmu_splits.retain,
        holdout=tmu_splits.holdout,
        seed=0,
        progress=False,
    )
    info, forget = checked.info, tmu_splits.forget
    assert info["features"] == ["nf", "af", "cf"] and 0 <= info["predictor_train_accuracy"] <= 1
    assert torch.tensor(info["twin_features"]).shape == (info["n_twins"] * info["twin_size"], 3)
    assert torch.tensor(info["forget_features"]).shape == (len(forget), 3)
    assert len(info["paper_rule_labels"]) == len(forget) and set(info["paper_rule_labels"]) <= {0, 1}
    assert {"curriculum", "twin_features", "predictor", "forget_features"} <= set(info["stages"])
    # the decision and the trained model are the margin rule's either way
    assert info["predicted_labels"] == method.info["predicted_labels"] and _same_weights(out, out2)


def test_aligned_unlearning_lowers_hard_and_keeps_easy(tmu_original, tmu_splits):
    forget = tmu_splits.forget
    predicted = torch.tensor([1, 0] * (len(forget) // 2))
    easy = forget.subset(torch.nonzero(predicted == 1).squeeze(1))
    hard = forget.subset(torch.nonzero(predicted == 0).squeeze(1))
    assert accuracy(tmu_original, hard) == 1.0
    for mode in ("random-label", "neggrad", "runner-up"):
        method = (
            create_method("tmu", hard_targets="runner-up")
            if mode == "runner-up"
            else create_method("tmu", hard_mode=mode, hard_targets="random-label")
        )
        out = method.aligned_unlearn(
            copy.deepcopy(tmu_original), forget=forget, retain=tmu_splits.retain, predicted=predicted, seed=0
        )
        assert accuracy(out, hard) <= 0.4 + 1e-6, mode
        assert accuracy(out, easy) >= 0.8, mode
        assert accuracy(out, tmu_splits.retain) >= accuracy(tmu_original, tmu_splits.retain) - 0.05, mode
        assert method.info["unlearn_epochs"] >= 1
    # runner-up targets (the default since issue 15) reach a low hard accuracy
    assert method.info["acc_forget_hard"] <= 0.4 + 1e-6
    with pytest.raises(ValueError, match="neggrad"):
        create_method("tmu", hard_mode="neggrad", hard_targets="runner-up")


def test_all_easy_prediction_returns_the_model_unchanged(tmu_original, tmu_splits):
    method = create_method("tmu")
    out = method.aligned_unlearn(
        copy.deepcopy(tmu_original),
        forget=tmu_splits.forget,
        retain=tmu_splits.retain,
        predicted=torch.ones(len(tmu_splits.forget), dtype=torch.long),
    )
    assert _same_weights(out, tmu_original) and method.info["unlearn_epochs"] == 0


def test_noise_variant_runs_and_differs(tmu_original, tmu_splits):
    predicted = torch.tensor([1, 0] * (len(tmu_splits.forget) // 2))
    outs = []
    for sigma in (0.0, 0.1):
        method = create_method("tmu", noise_sigma=sigma)
        outs.append(
            method.aligned_unlearn(
                copy.deepcopy(tmu_original),
                forget=tmu_splits.forget,
                retain=tmu_splits.retain,
                predicted=predicted,
                seed=0,
            )
        )
    assert not _same_weights(*outs)


def test_noise_soft_targets(tmu_original, tmu_splits):
    f = tmu_splits.forget
    onehot = torch.nn.functional.one_hot(f.labels, f.num_classes).float()
    assert torch.equal(noise_soft_targets(tmu_original, f, sigma=0.0), onehot)  # no noise == plain labels
    soft = noise_soft_targets(tmu_original, f, sigma=0.1, copies=4, mix=0.5, seed=0)
    torch.testing.assert_close(soft.sum(1), torch.ones(len(f)))
    assert torch.all(soft.argmax(1) == f.labels)  # the true label keeps at least half of the mass
    assert not torch.equal(soft, onehot)


def test_feature_subset_and_several_twins(tmu_original, tmu_splits):
    method = create_method("tmu", features=("nf",), n_twins=2, paper_rule_check=True)
    method(tmu_original, forget=tmu_splits.forget, retain=tmu_splits.retain, holdout=tmu_splits.holdout, progress=False)
    info = method.info
    assert info["features"] == ["nf"] and len(info["twin_epochs"]) == 2
    assert len(info["twin_labels"]) == 2 * info["twin_size"]
    assert torch.tensor(info["forget_features"]).shape == (len(tmu_splits.forget), 1)
