"""The rate-matched random control (SPEC §6): TMU's predictor count, a random hard set, the same aligned step."""

from __future__ import annotations

import pytest

from oblivio.methods import create_method, describe_method


@pytest.fixture(scope="module")
def splits9(tmu_exp):
    """20 training images of class 9: at unlearning seed 1 the predictor marks 5 of them hard (measured)."""
    return tmu_exp.unlearning_splits("class-subset:9:20", seed=0)


@pytest.fixture(scope="module")
def pair(tmu_original, splits9):
    runs = {}
    for name in ("tmu", "tmu.random-control"):
        method = create_method(name)
        out = method(
            tmu_original, forget=splits9.forget, retain=splits9.retain, holdout=splits9.holdout, seed=1, progress=False
        )
        runs[name] = (method, out)
    return runs


def test_registered_variant_with_a_reason():
    d = describe_method("tmu.random-control")
    assert d["variant_of"] == "tmu" and d["overrides"] == {"hard_selection": "random"}
    method = create_method("tmu.random-control")
    assert method.hard_selection == "random" and create_method("tmu").hard_selection == "predictor"
    assert "rate-matched" in type(method).variant_reason
    with pytest.raises(ValueError, match="hard_selection"):
        create_method("tmu", hard_selection="oracle")


def test_same_count_random_samples(pair):
    tmu, _ = pair["tmu"]
    ctrl, _ = pair["tmu.random-control"]
    # same seed: the same predictor output, kept in info for the control
    assert ctrl.info["predictor_labels"] == tmu.info["predicted_labels"]
    used = ctrl.info["predicted_labels"]
    assert sorted(used) == sorted(tmu.info["predicted_labels"])  # the count of hard samples is the predictor's
    assert ctrl.info["predicted_easy"] == tmu.info["predicted_easy"] == sum(used)
    assert "predictor_labels" not in tmu.info


def test_the_aligned_step_uses_the_random_hard_set(pair, splits9):
    import torch

    from oblivio.training.evaluate import predict_logits

    ctrl, out = pair["tmu.random-control"]
    used = torch.tensor(ctrl.info["predicted_labels"])
    assert int((used == 0).sum()) > 0
    assert used.tolist() != pair["tmu"][0].info["predicted_labels"]  # another hard set than the predictor's
    right = predict_logits(out, splits9.forget).argmax(1) == splits9.forget.labels
    # the step drives the (random) hard part down to hard_target = 0 and keeps the easy part
    assert ctrl.info["acc_forget_hard"] == pytest.approx(float(right[used == 0].float().mean()))
    assert float(right[used == 0].float().mean()) <= float(right[used == 1].float().mean())


def test_random_selection_is_deterministic(tmu_original, splits9):
    labels = []
    for seed in (1, 1):
        m = create_method("tmu.random-control", epochs=1)
        m(
            tmu_original,
            forget=splits9.forget,
            retain=splits9.retain,
            holdout=splits9.holdout,
            seed=seed,
            progress=False,
        )
        labels.append(m.info["predicted_labels"])
    assert labels[0] == labels[1]
