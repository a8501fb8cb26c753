"""Evaluation analyses against a gold or scratch model: the two-stage saving-point comparison, TMU's label accuracy
and feature ablation (oblivio.experiments.analyses), on the ``tiny`` experiment (sklearn digits)."""

from __future__ import annotations

import pytest
import torch

from oblivio.experiments import Experiment
from oblivio.experiments.analyses import feature_ablation, label_accuracy, saving_point_comparison, tmu_report
from oblivio.methods import create_method
from oblivio.methods.tmu import generalisation_labels
from oblivio.metrics.alignment import delta
from oblivio.training import accuracy


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    return Experiment("tiny", store=tmp_path_factory.mktemp("analyses-store"), device="cpu", progress=False)


@pytest.fixture(scope="module")
def original(exp):
    return exp.original()


def test_saving_point_comparison(exp, original):
    s = exp.unlearning_splits("class:3", seed=0)
    method = create_method("two-stage", recipe="tiny")
    two_stage_model, scratch, report = saving_point_comparison(
        original, forget=s.forget, retain=s.retain, method=method, seed=0
    )
    d = report.to_dict()
    assert d["chance"] == pytest.approx(0.1)
    assert d["validation"] == "retain-split"
    assert 1 <= d["two_stage_saving_point"] <= d["two_stage_epochs"] == 2
    assert 1 <= d["scratch_saving_point"] <= d["scratch_epochs"] == 3
    assert set(d["two_stage_tta"]) == {"identity", "hflip", "vflip", "center_crop"}
    assert d["scratch_tta"]["identity"] <= 0.1  # no class 3 in its training data
    assert two_stage_model is not scratch and two_stage_model is not original


def test_label_accuracy():
    assert label_accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
    assert label_accuracy(torch.tensor([1, 0]), [1, 0]) == 1.0
    with pytest.raises(ValueError, match="2 predicted labels but 3 gold labels"):
        label_accuracy([1, 0], [1, 0, 1])


def test_tmu_report_and_ablation_against_gold(exp, original):
    s = exp.unlearning_splits("class-subset:3:10", seed=0)
    method = create_method("tmu", paper_rule_check=True)  # the features too, for the ablation
    out = method(original, forget=s.forget, retain=s.retain, holdout=s.holdout, seed=0, progress=False)
    gold = exp.gold(s.split)
    report = tmu_report(method.info, gold_model=gold, original_model=original, unlearned_model=out, forget=s.forget)
    gold_labels = generalisation_labels(gold, s.forget)
    assert report["label_accuracy"] == label_accuracy(method.info["predicted_labels"], gold_labels)
    assert report["delta"] == pytest.approx(delta(accuracy(out, s.forget), accuracy(gold, s.forget)))
    assert report["activation_distance_l2"] >= 0
    ablation = feature_ablation(method.info, gold_labels)
    assert set(ablation) == {"nf", "af", "cf", "nf+af+cf"}
    assert all(0 <= v <= 1 for v in ablation.values())
    with pytest.raises(ValueError, match="ids differ"):
        tmu_report(
            method.info,
            gold_model=gold,
            original_model=original,
            unlearned_model=out,
            forget=s.retain.subset(range(len(s.forget))),
        )


def test_feature_ablation_says_when_the_run_computed_no_features():
    with pytest.raises(ValueError, match="computed no features.*paper_rule_check"):
        feature_ablation({"features": [], "twin_labels": [0, 1], "predicted_labels": [1]}, [1])


def test_feature_ablation_names_missing_features():
    info = {"features": ["nf"], "twin_features": [[0.0], [1.0]], "twin_labels": [0, 1], "forget_features": [[0.5]]}
    with pytest.raises(ValueError, match=r"\['af'\] are missing"):
        feature_ablation(info, [1], feature_sets=[("af",)])
