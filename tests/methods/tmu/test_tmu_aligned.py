"""Issue 15's per-sample decision rules and targets, each against a reference written from its definition.

The oracles below are plain Python loops over the definitions in the docstrings of
``oblivio.methods.tmu.aligned`` (no helper of the module is imported by an oracle).
"""

from __future__ import annotations

import copy
import math
from fractions import Fraction

import pytest
import torch

from oblivio.methods import create_method, describe_method
from oblivio.methods.tmu import agreement_fraction, choose_hard, runner_up_targets, true_class_margin
from oblivio.methods.tmu.aligned import decide_hard, hard_count_for


def _margin_oracle(logits: list[list[float]], labels: list[int]) -> list[float]:
    out = []
    for row, y in zip(logits, labels, strict=True):
        best_other = max(v for j, v in enumerate(row) if j != y)
        out.append(row[y] - best_other)
    return out


def _agreement_oracle(scores: list[float], gold_easy: list[int]) -> tuple[float, float]:
    """Try every k: the k lowest-scored (stable order) are hard; keep the smallest k with the most agreement."""
    n = len(scores)
    order = sorted(range(n), key=lambda i: (scores[i], i))
    best_k, best = 0, -1
    for k in range(n + 1):
        hard = set(order[:k])
        agree = sum((gold_easy[i] == 0) if i in hard else (gold_easy[i] == 1) for i in range(n))
        if agree > best:
            best_k, best = k, agree
    return best_k / n, best / n


def test_true_class_margin_matches_loop():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 7, generator=gen)
    labels = torch.randint(0, 7, (50,), generator=gen)
    got = true_class_margin(logits, labels)
    want = _margin_oracle(logits.tolist(), labels.tolist())
    assert got.tolist() == pytest.approx(want, abs=1e-6)
    assert ((got > 0) == (logits.argmax(1) == labels)).all()  # positive margin <=> correctly classified


@pytest.mark.parametrize("seed", range(12))
def test_agreement_fraction_matches_brute_force(seed):
    gen = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 25, (1,), generator=gen))
    # rounded scores: ties are common, and the stable order must decide them the same way
    scores = (torch.rand(n, generator=gen) * 4).round() / 4
    gold = (torch.rand(n, generator=gen) < 0.7).long()
    frac, agree = agreement_fraction(scores, gold)
    want_frac, want_agree = _agreement_oracle(scores.tolist(), gold.tolist())
    assert frac == pytest.approx(want_frac) and agree == pytest.approx(want_agree)


def test_agreement_fraction_flips_nothing_for_an_uninformative_score():
    # every score equal and most samples easy: any flip loses agreement
    frac, agree = agreement_fraction(torch.zeros(10), torch.tensor([1] * 8 + [0] * 2))
    assert frac == 0.0 and agree == pytest.approx(0.8)
    with pytest.raises(ValueError, match="one length"):
        agreement_fraction(torch.zeros(3), torch.ones(4))


def test_choose_hard_calls_the_lowest_scores_hard():
    scores = torch.tensor([0.5, -1.0, 2.0, 0.1, 3.0, -0.2])
    labels = choose_hard(scores, 0.5)  # round(3.0) = 3 hard: the three lowest
    assert labels.tolist() == [1, 0, 1, 0, 1, 0]
    assert choose_hard(scores, 0.0).tolist() == [1] * 6
    assert choose_hard(scores, 1.0).tolist() == [0] * 6


def test_runner_up_targets(tmu_original, tmu_splits):
    from oblivio.training.evaluate import predict_logits

    forget = tmu_splits.forget
    t = runner_up_targets(tmu_original, forget)
    logits = predict_logits(tmu_original, forget).double()
    for i, y in enumerate(forget.labels.tolist()):
        assert t[i, y] == 0
        assert float(t[i].sum()) == pytest.approx(1.0, abs=1e-5)
        # the others keep their softmax ratios
        others = [j for j in range(logits.shape[1]) if j != y]
        z = [math.exp(float(logits[i, j] - logits[i, others].max())) for j in others]
        assert [float(t[i, j]) for j in others] == pytest.approx([v / sum(z) for v in z], rel=1e-4, abs=1e-7)


def test_variants_registered_with_reasons():
    for name, overrides in {
        "tmu.paper": {
            "n_twins": 1,
            "stop_check_steps": None,
            "hard_score": "predictor",
            "hard_count": "rate",
            "hard_targets": "random-label",
        },
        "tmu.predictor": {"hard_score": "predictor", "hard_count": "rate", "hard_targets": "random-label"},
        "tmu.margin": {"hard_count": "rate"},
        "tmu.agree+kd": {"retain_kd": 0.5},
    }.items():
        d = describe_method(name)
        assert d["variant_of"] == "tmu"
        assert all(d["overrides"].get(k) == v for k, v in overrides.items()), (name, d["overrides"])
    base = create_method("tmu")  # the issue-15 default: margin ranking, agreement count, runner-up targets
    assert (base.hard_score, base.hard_count, base.hard_targets, base.retain_kd) == (
        "margin",
        "agreement",
        "runner-up",
        0.0,
    )
    for bad in ({"hard_score": "oracle"}, {"hard_count": "half"}, {"hard_targets": "gold"}, {"retain_kd": 1.5}):
        with pytest.raises(ValueError):
            create_method("tmu", **bad)


@pytest.fixture(scope="module")
def margin_run(tmu_original, tmu_splits):
    method = create_method("tmu", hard_score="margin", hard_count="rate", hard_targets="runner-up")
    out = method(
        copy.deepcopy(tmu_original),
        forget=tmu_splits.forget,
        retain=tmu_splits.retain,
        holdout=tmu_splits.holdout,
        seed=0,
        progress=False,
    )
    return method, out


def test_margin_rule_flips_the_lowest_margins_at_the_twin_rate(margin_run, tmu_original, tmu_splits):
    from oblivio.training.evaluate import predict_logits

    method, out = margin_run
    info = method.info
    forget = tmu_splits.forget
    twin_rate = info["twin_easy_rate"]
    assert info["hard_fraction"] == pytest.approx(1 - twin_rate)
    predicted = torch.tensor(info["predicted_labels"])
    k = int(round((1 - twin_rate) * len(forget)))
    assert int((predicted == 0).sum()) == k == info["predicted_hard"]
    margins = _margin_oracle(predict_logits(tmu_original, forget).double().tolist(), forget.labels.tolist())
    if 0 < k < len(forget):  # every hard sample's margin is at most every easy sample's
        hard_m = [m for m, p in zip(margins, predicted.tolist(), strict=True) if p == 0]
        easy_m = [m for m, p in zip(margins, predicted.tolist(), strict=True) if p == 1]
        assert max(hard_m) <= min(easy_m)
    if k:  # runner-up targets: the hard samples now sit on their runner-up class, not on a random one
        logits0 = predict_logits(tmu_original, forget)
        logits1 = predict_logits(out, forget)
        hard_idx = torch.nonzero(predicted == 0).squeeze(1)
        masked = logits0.scatter(1, forget.labels[:, None], float("-inf"))
        moved = logits1[hard_idx].argmax(1) == masked[hard_idx].argmax(1)
        assert float(moved.float().mean()) >= 0.5
        assert info["acc_forget_hard"] <= 0.5


@pytest.mark.parametrize("den", [7, 20, 40, 120, 121])
def test_hard_count_rounds_to_nearest_with_halves_down(den):
    for num in range(den + 1):
        for n in (1, 10, 30, 31):
            exact = Fraction(num, den) * n  # nearest integer; an exact half goes down (fewer flips)
            want = math.floor(exact) + (1 if exact - math.floor(exact) > Fraction(1, 2) else 0)
            assert hard_count_for(num / den, n) == want, (num, den, n)


class _StubPredictor:
    """Stands in for the MLP: P(easy) given per row."""

    def __init__(self, p_tw, p_f):
        self.p = {"tw": torch.tensor(p_tw, dtype=torch.float32), "f": torch.tensor(p_f, dtype=torch.float32)}

    def predict_proba(self, x):
        return self.p["tw"] if x.shape[0] == len(self.p["tw"]) and float(x[0, 0]) == 0 else self.p["f"]

    def predict(self, x):
        return (self.predict_proba(x) >= 0.5).long()


def test_decide_hard_agreement_rule_matches_brute_force(tmu_original, tmu_splits):
    from oblivio.training.evaluate import predict_logits

    forget = tmu_splits.forget
    gen = torch.Generator().manual_seed(5)
    for _ in range(6):
        n_tw = 40
        twin_margins = (torch.randn(n_tw, generator=gen) * 2).round()  # ties on purpose
        labels_tw = (twin_margins + torch.randn(n_tw, generator=gen) > -1).long()
        info: dict = {}
        x_tw, x_f = torch.zeros(n_tw, 1), torch.ones(len(forget), 1)
        stub = _StubPredictor([0.9] * n_tw, [0.9] * len(forget))
        got = decide_hard(
            info,
            hard_score="margin",
            hard_count="agreement",
            predictor=stub,
            x_tw=x_tw,
            x_f=x_f,
            labels_tw=labels_tw,
            twin_margins=twin_margins,
            model=tmu_original,
            forget=forget,
        )
        frac, agree = _agreement_oracle(twin_margins.tolist(), labels_tw.tolist())
        assert info["hard_fraction"] == pytest.approx(frac) and info["twin_rule_agreement"] == pytest.approx(agree)
        k = hard_count_for(frac, len(forget))
        assert int((got == 0).sum()) == k
        margins = _margin_oracle(predict_logits(tmu_original, forget).double().tolist(), forget.labels.tolist())
        order = sorted(range(len(forget)), key=lambda i: (margins[i], i))
        assert sorted(torch.nonzero(got == 0).squeeze(1).tolist()) == sorted(order[:k])
        assert info["paper_rule_labels"] == [1] * len(forget)  # the stub predictor calls everything easy
    # the paper's rule is the predictor at its own threshold, and writes no rule keys
    info = {}
    got = decide_hard(
        info,
        hard_score="predictor",
        hard_count="rate",
        predictor=_StubPredictor([0.9], [0.2, 0.7]),
        x_tw=torch.zeros(1, 1),
        x_f=torch.ones(2, 1),
        labels_tw=torch.ones(1),
        twin_margins=torch.ones(1),
        model=tmu_original,
        forget=forget,
    )
    assert got.tolist() == [0, 1] and "hard_fraction" not in info


def test_rate_rule_uses_the_twin_error_rate_in_double_precision(tmu_original, tmu_splits):
    forget = tmu_splits.forget  # 10 samples
    # gold error rate 0.35 on the twin set: 3.5 of 10 -> 3 (half down). In float32, 1 - 0.65 is 0.35000002 (-> 4)
    labels_tw = torch.tensor([1] * 13 + [0] * 7)
    info: dict = {}
    got = decide_hard(
        info,
        hard_score="margin",
        hard_count="rate",
        predictor=_StubPredictor([0.9] * 20, [0.9] * 10),
        x_tw=torch.zeros(20, 1),
        x_f=torch.ones(10, 1),
        labels_tw=labels_tw,
        twin_margins=torch.arange(20.0),
        model=tmu_original,
        forget=forget,
    )
    assert info["hard_fraction"] == pytest.approx(0.35, abs=1e-12) and int((got == 0).sum()) == 3


def test_retain_kd_changes_the_step_and_is_deterministic(tmu_original, tmu_splits):
    forget = tmu_splits.forget
    predicted = torch.tensor([1, 0] * (len(forget) // 2))  # a fixed hard set: the step must run
    outs = {}
    for kd, rep_ in ((0.5, 0), (0.5, 1), (0.0, 0)):
        method = create_method("tmu", retain_kd=kd)
        outs[(kd, rep_)] = method.aligned_unlearn(
            copy.deepcopy(tmu_original), forget=forget, retain=tmu_splits.retain, predicted=predicted, seed=3
        )
        assert method.info["unlearn_epochs"] >= 1

    def same(a, b):
        return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))

    assert same(outs[(0.5, 0)], outs[(0.5, 1)])  # same seed, same weights
    assert not same(outs[(0.5, 0)], outs[(0.0, 0)])  # the KD term is in the loss
    assert not same(outs[(0.5, 0)], tmu_original)


def test_threshold_count_transfers_the_twin_cut_not_its_share(tmu_original, tmu_splits):
    """``hard_count="threshold"``: the twin set's agreement-maximising cut, in score units, applied to D_f (the
    expected labels are written out by hand here)."""
    from oblivio.methods.tmu.aligned import score_threshold

    forget = tmu_splits.forget  # 10 samples
    # twin: P(easy) 0.1..0.8 step 0.1; gold calls the two lowest hard -> cut between 0.2 and 0.3 = 0.25
    p_tw = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    labels_tw = torch.tensor([0, 0, 1, 1, 1, 1, 1, 1])
    x_tw, x_f = torch.zeros(8, 1), torch.ones(10, 1)
    for p_f, expected in (
        ([0.05, 0.15, 0.24, 0.26, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], [0, 0, 0] + [1] * 7),  # 3 below
        ([0.9] * 10, [1] * 10),  # an easy request
        ([0.01] * 10, [0] * 10),
    ):  # a hard one
        info: dict = {}
        got = decide_hard(
            info,
            hard_score="predictor",
            hard_count="threshold",
            predictor=_StubPredictor(p_tw, p_f),
            x_tw=x_tw,
            x_f=x_f,
            labels_tw=labels_tw,
            twin_margins=torch.zeros(8),
            model=tmu_original,
            forget=forget,
        )
        assert got.tolist() == expected
        assert info["hard_threshold"] == pytest.approx(0.25, abs=1e-6)
        assert info["hard_fraction"] == pytest.approx(expected.count(0) / 10)
    # the share rule on the easy request would still flip 2 of 10; the cut flips none
    info = {}
    share = decide_hard(
        info,
        hard_score="predictor",
        hard_count="agreement",
        predictor=_StubPredictor(p_tw, [0.9] * 10),
        x_tw=x_tw,
        x_f=x_f,
        labels_tw=labels_tw,
        twin_margins=torch.zeros(8),
        model=tmu_original,
        forget=forget,
    )
    assert int((share == 0).sum()) == 2
    assert score_threshold(torch.tensor([3.0, 1.0]), 1.0) == float("inf")
    assert create_method("tmu.threshold").hard_count == "threshold"
