"""TMU decided from held-out evidence (issue 23): K-fold held-out outputs and training dynamics, on hand-made evidence
whose right answers are known, and the key of every earlier configuration unchanged."""

from __future__ import annotations

import pytest
import torch

from oblivio.methods import create_method
from oblivio.methods.tmu.aligned import decide_from_evidence, heldout_hard_targets
from oblivio.methods.tmu.evidence import EvidenceError, HeldOutEvidence, evidence_scores
from oblivio.training.dynamics import summarise
from oblivio.training.evaluate import predict_logits


def _kfold_evidence(dataset, wrong_ids, n_classes=10):
    """Held-out logits for every image: right (margin 2) except ``wrong_ids`` (put on class (y + 1) % C)."""
    logits = torch.zeros(len(dataset), n_classes)
    y = dataset.labels
    wrong = torch.tensor([int(i) in set(wrong_ids) for i in dataset.ids.tolist()])
    target = torch.where(wrong, (y + 1) % n_classes, y)
    logits[torch.arange(len(dataset)), target] = 2.0
    return HeldOutEvidence(ids=dataset.ids.clone(), kfold_logits=logits, folds=5)


def test_kfold_decision_unlearns_exactly_what_the_held_out_models_get_wrong(tmu_original, tmu_splits):
    forget, retain = tmu_splits.forget, tmu_splits.retain
    train = retain.concat(forget)
    wrong = forget.ids[[1, 4, 7]].tolist()
    method = create_method("tmu.kfold")
    method.evidence = _kfold_evidence(train, wrong)
    out = method(tmu_original, forget=forget, retain=retain, holdout=tmu_splits.holdout, seed=0, progress=False)
    info = method.info
    hard = [i for i, lab in zip(info["forget_ids"], info["predicted_labels"], strict=True) if lab == 0]
    assert sorted(hard) == sorted(wrong) and info["evidence_wrong"] == 3
    assert "twin_size" not in info and "twin_models" not in info["stages"]  # no twin problem was built
    right = predict_logits(out, forget).argmax(1) == forget.labels
    # the step pushed the three down (on digits, arbitrary "hard" images of a well-learned class do not all flip
    # within the 10-epoch cap) and kept the rest
    assert info["acc_forget_hard"] < info["acc_forget_hard_start"] == 1.0
    assert int(right[[1, 4, 7]].sum()) < 3 and right[[0, 2, 3, 5, 6, 8, 9]].all()


def test_missing_evidence_fails_before_any_work_and_names_the_fix(tmu_original, tmu_splits):
    for name in ("tmu.kfold", "tmu.aum", "tmu.kfold-soft"):
        method = create_method(name)
        with pytest.raises(EvidenceError, match="HeldOutEvidence"):
            method(
                tmu_original,
                forget=tmu_splits.forget,
                retain=tmu_splits.retain,
                holdout=tmu_splits.holdout,
                progress=False,
            )
        assert "twin_models" not in method.info.get("stages", {})
    with pytest.raises(ValueError, match="twin set lacks"):
        create_method("tmu", hard_score="aum", hard_count="agreement")
    with pytest.raises(ValueError, match="needs an evidence score"):
        create_method("tmu", hard_count="evidence")


def test_dynamics_ranking_with_the_twin_rate(tmu_splits):
    forget = tmu_splits.forget
    n = len(forget)
    # AUM per forget image: the three lowest are positions 2, 5, 9
    aum = torch.linspace(1.0, 2.0, n)
    aum[[2, 5, 9]] = torch.tensor([-1.0, 0.1, -0.5])
    correct = torch.ones(3, n, dtype=torch.int8)
    dyn = summarise(forget.ids, correct, aum.repeat(3, 1))
    ev = HeldOutEvidence(dynamics=dyn)
    info: dict = {}
    labels_tw = torch.tensor([1] * 7 + [0] * 3)  # twin gold error rate 30%: 3 of 10 hard
    out = decide_from_evidence(
        info, hard_score="aum", hard_count="rate", evidence=ev, labels_tw=labels_tw, forget=forget
    )
    assert torch.nonzero(out == 0).squeeze(1).tolist() == [2, 5, 9]
    assert info["hard_fraction"] == pytest.approx(0.3)
    # the rank mix needs both kinds
    with pytest.raises(EvidenceError, match="K-fold"):
        evidence_scores(ev, "kfold+aum", ids=forget.ids, labels=forget.labels)


def test_held_out_hard_targets_always_point_to_a_wrong_class(tmu_splits):
    forget = tmu_splits.forget
    ev = _kfold_evidence(forget, forget.ids[:2].tolist())  # two held-out wrong, the rest right
    t = heldout_hard_targets(ev, forget)
    assert torch.allclose(t.sum(1), torch.ones(len(forget)))
    assert (t.argmax(1) != forget.labels).all()
    assert (t[torch.arange(len(forget)), forget.labels][2:] == 0).all()  # the right ones lost their true class


def test_earlier_configurations_keep_their_hyper_parameter_lists():
    for name in ("tmu", "tmu.paper", "tmu.random-control", "tmu.kfold"):
        hp = create_method(name).hparams()
        assert "easy_targets" not in hp and "soft_temperature" not in hp
    assert create_method("tmu.kfold-soft").hparams()["hard_targets"] == "kfold-soft"
    assert create_method("tmu", easy_targets="kfold-soft").hparams()["easy_targets"] == "kfold-soft"
    assert create_method("tmu.kfold").needed_evidence() == ("kfold",)
    assert create_method("tmu.aum").needed_evidence() == ("dynamics",)
    assert create_method("tmu").needed_evidence() == ()
