"""TMU's guard (issue 23): request shapes its twin estimate does not cover are detected before the aligned step runs
and answered by the fallback method (recorded) or refused (naming it). On sklearn digits ``class-subset:0:100`` (three
quarters of a class) TMU without the guard drove D_f to 0% where gold keeps about 90% (δ 93, issue 23). The guard is
on in ``tmu.guarded`` (the ledger's default) and off in the base ``tmu`` (earlier configurations unchanged)."""

from __future__ import annotations

import pytest
import torch

from oblivio.methods import UnlearningError, create_method
from oblivio.methods.tmu.guard import class_shares, twin_reasons
from oblivio.training import accuracy

NEAR_WHOLE = "class-subset:0:100"


@pytest.fixture(scope="module")
def near_whole(tmu_exp):
    return tmu_exp.unlearning_splits(NEAR_WHOLE, seed=0)


def _run(method, original, splits):
    return method(original, forget=splits.forget, retain=splits.retain, holdout=splits.holdout, seed=0, progress=False)


def test_near_whole_class_request_falls_back_to_fine_tune_and_says_why(tmu_original, near_whole):
    share = class_shares(near_whole.forget, near_whole.retain)[0]
    assert share == pytest.approx(100 / 134)
    tmu = create_method("tmu.guarded")
    out = _run(tmu, tmu_original, near_whole)
    assert tmu.info["guard_triggered"] is True and tmu.info["guard_fallback"] == "finetune"
    assert "75% of class 0" in tmu.info["guard_reason"] and "twin_models" not in tmu.info["stages"]
    ft = _run(create_method("finetune"), tmu_original, near_whole)  # the same answer as fine-tune itself
    a, b = out.state_dict(), ft.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert tmu.info["fallback_info"]["cpu_seconds"] > 0
    # the same request, refused: the error names the method to use
    with pytest.raises(UnlearningError, match="use method 'finetune'"):
        _run(create_method("tmu", guard="refuse"), tmu_original, near_whole)


def test_without_the_guard_tmu_runs_its_own_step_there(tmu_original, near_whole):
    for tmu in (create_method("tmu"), create_method("tmu.guarded", guard="off")):
        _run(tmu, tmu_original, near_whole)
        assert "guard_triggered" not in tmu.info and "twin_models" in tmu.info["stages"]


def test_an_ordinary_request_is_left_to_tmu(tmu_original, tmu_splits):
    tmu = create_method("tmu.guarded")
    out = _run(tmu, tmu_original, tmu_splits)
    assert tmu.info["guard_triggered"] is False and "twin_models" in tmu.info["stages"]
    assert accuracy(out, tmu_splits.retain) > 0.5


def test_twin_reasons_on_hand_made_twin_labels():
    labels = torch.tensor([1] * 9 + [0] * 1 + [1] * 5 + [0] * 5)  # two twin sets: error rates 10% and 50%
    (reason,) = twin_reasons([True, True], labels, 2, max_twin_spread=0.3)
    assert "between 10% and 50%" in reason and "spread 40%" in reason
    assert twin_reasons([True, True], labels, 2, max_twin_spread=0.5) == []
    (reason,) = twin_reasons([True, False], labels[:10], 1, max_twin_spread=0.3)
    assert "1 of 2 twin model(s) never memorised" in reason
    (reason,) = twin_reasons([True], labels[:10], 1, max_twin_spread=0.3, augmented=[6])
    assert "6 of 10 twin images are augmented copies" in reason
    assert twin_reasons([True], labels[:10], 1, max_twin_spread=0.3, augmented=[5]) == []
    with pytest.raises(ValueError, match="another method"):
        create_method("tmu", guard_fallback="tmu.paper")
    with pytest.raises(ValueError, match="guard"):
        create_method("tmu", guard="maybe")


def test_the_count_with_its_uncertainty_flips_fewer(monkeypatch):
    """hard_count_z lowers the twin share by z standard errors sqrt(f (1 − f) / |D_tw|) (hand-computed)."""
    import math

    import oblivio.methods.tmu.aligned as al

    class _Forget:
        labels = torch.zeros(20, dtype=torch.long)

    margins_f = torch.arange(20, dtype=torch.float64)  # M_o's margins on D_f: logits [m, 0] with label 0
    monkeypatch.setattr(al, "predict_logits", lambda model, data: torch.stack([margins_f, 0 * margins_f], 1))
    scores_tw = torch.arange(40, dtype=torch.float64)  # the 10 lowest twin margins are the 10 hard twin samples
    labels_tw = torch.tensor([0] * 10 + [1] * 30)

    def decide(z):
        info: dict = {}
        out = al.decide_hard(
            info, hard_score="margin", hard_count="agreement", predictor=None, x_tw=None, x_f=None,
            labels_tw=labels_tw, twin_margins=scores_tw, model=None, forget=_Forget(), count_z=z,
        )  # fmt: skip
        return out, info

    plain, info0 = decide(0.0)
    assert int((plain == 0).sum()) == 5 and info0["hard_fraction"] == 0.25  # 10 of 40 twin samples -> 5 of 20
    cautious, info2 = decide(2.0)
    se = math.sqrt(0.25 * 0.75 / 40)
    assert info2["hard_fraction_se"] == pytest.approx(se)
    assert info2["hard_fraction"] == pytest.approx(0.25 - 2 * se)
    assert int((cautious == 0).sum()) == round(20 * (0.25 - 2 * se))  # 2 instead of 5
