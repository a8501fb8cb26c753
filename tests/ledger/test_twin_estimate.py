"""The ledger's twin estimate reads exactly the TMU info keys that TMU declares (methods/tmu/info.py) and writes."""

from __future__ import annotations

import numpy as np
import pytest

from oblivio.ledger.apply import twin_estimate
from oblivio.methods.tmu import info as tmu_info


def test_declared_constants_name_declared_keys():
    constants = {v for k, v in vars(tmu_info).items() if k.isupper() and isinstance(v, str)}
    assert constants == set(tmu_info.TMU_INFO_KEYS)
    assert {
        "predicted_easy",
        "predicted_hard",
        "predicted_labels",
        "forget_ids",
        "twin_cache_hit",
        "stages",
        "unlearn_epochs",
        "acc_forget_hard",
        "acc_forget_easy",
        "twin_easy_rate",
        "predictor_train_accuracy",
    } <= tmu_info.TMU_INFO_KEYS


def test_twin_estimate_reads_the_declared_counts_only():
    est = twin_estimate({"predicted_easy": 3, "predicted_hard": np.int64(1)}, 0.5)
    assert est == {
        "twin_predicted_easy": 3,
        "twin_predicted_hard": 1,
        "twin_est_gold_acc_forget": 0.75,
        "twin_est_delta_forget": 0.25,
        "twin_est_source": "decided_easy_share",
    }
    # the twin problem's own easy rate is preferred when the run recorded one (a number in [0, 1])
    est = twin_estimate({"predicted_easy": 3, "predicted_hard": 1, "twin_easy_rate": 0.9}, 0.5)
    assert est["twin_est_gold_acc_forget"] == 0.9 and est["twin_est_source"] == "twin_easy_rate"
    assert est["twin_est_delta_forget"] == pytest.approx(0.4)
    for bad in (1.5, -0.1, True, "0.9", None):
        assert (
            twin_estimate({"predicted_easy": 3, "predicted_hard": 1, "twin_easy_rate": bad}, 0.5)["twin_est_source"]
            == "decided_easy_share"
        )
    for synonyms in (
        {"n_easy": 3, "n_hard": 1},
        {"easy": 3, "hard": 1},
        {"num_easy": 3, "num_hard": 1},
        {"n_predicted_easy": 3, "n_predicted_hard": 1},
    ):
        assert twin_estimate(synonyms, 0.5) == {}
    assert twin_estimate({"predicted_easy": True, "predicted_hard": 1}, 0.5) == {}
    assert twin_estimate({"predicted_easy": 0, "predicted_hard": 0}, 0.5) == {}


@pytest.mark.parametrize("paper_rule_check", [False, True])
def test_tmu_writes_the_declared_keys(tiny_experiment, paper_rule_check):
    from oblivio.methods import create_method

    splits = tiny_experiment.unlearning_splits("class-subset:3:20", seed=0)
    tmu = create_method("tmu", n_twins=1, twin_epochs=3, predictor_epochs=10, paper_rule_check=paper_rule_check)
    tmu(
        tiny_experiment.original(),
        forget=splits.forget,
        retain=splits.retain,
        holdout=splits.holdout,
        seed=0,
        progress=False,
    )
    info = tmu.info
    expected = tmu_info.TMU_INFO_KEYS if paper_rule_check else tmu_info.TMU_INFO_KEYS - tmu_info.PREDICTOR_INFO_KEYS
    missing = expected - set(info)
    assert not missing, f"TMU no longer writes {sorted(missing)}: update methods/tmu/info.py and its readers"
    if not paper_rule_check:  # the margin rule trains no predictor and writes none of its keys
        assert not tmu_info.PREDICTOR_INFO_KEYS & set(info)
    assert type(info[tmu_info.PREDICTED_EASY]) is int and type(info[tmu_info.PREDICTED_HARD]) is int
    assert len(info[tmu_info.PREDICTED_LABELS]) == len(info[tmu_info.FORGET_IDS]) == len(splits.forget)
    assert twin_estimate(info, 0.5)["twin_predicted_easy"] == info[tmu_info.PREDICTED_EASY]
    assert twin_estimate(info, 0.5)["twin_est_gold_acc_forget"] == info[tmu_info.TWIN_EASY_RATE]
