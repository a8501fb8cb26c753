"""TMU step 2: NF against a brute-force reference, PGD / AF properties, the CF model, the robust scaler."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from oblivio.methods.tmu import (
    RobustScaler,
    af_feature,
    attack_divergence,
    fresh_copy,
    nearest_distance,
    nf_feature,
    per_sample_loss,
    pgd_attack,
    train_curriculum_model,
)
from oblivio.training import predict_logits


def _brute_force_nf(q, ql, r, rl, k):
    """Literal loop: normalise, then per query the mean of the k smallest same-class distances."""
    q, r = F.normalize(q, dim=1), F.normalize(r, dim=1)
    out = []
    for i in range(q.shape[0]):
        dists = sorted(float(torch.sqrt(((q[i] - r[j]) ** 2).sum())) for j in range(r.shape[0]) if rl[j] == ql[i])
        out.append(sum(dists[:k]) / len(dists[:k]))
    return torch.tensor(out)


@pytest.mark.parametrize("chunk_size", [3, 7, 4096])
def test_nearest_distance_matches_brute_force(chunk_size):
    g = torch.Generator().manual_seed(0)
    q, r = torch.randn(23, 6, generator=g), torch.randn(61, 6, generator=g)
    ql, rl = torch.randint(0, 3, (23,), generator=g), torch.randint(0, 3, (61,), generator=g)
    rl[:3] = 3  # class 3 has only 3 reference samples (< k): all of them are used
    ql[0] = 3
    got = nearest_distance(q, ql, r, rl, k=5, chunk_size=chunk_size)
    torch.testing.assert_close(got, _brute_force_nf(q, ql, r, rl, 5), atol=1e-4, rtol=1e-4)


def test_nearest_distance_same_class_only():
    q = torch.tensor([[1.0, 0.0]])
    r = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # the identical vector is of another class: the same-class neighbour is at distance sqrt(2)
    got = nearest_distance(q, torch.tensor([1]), r, torch.tensor([0, 1]), k=1)
    assert got.item() == pytest.approx(2**0.5)
    # a class with no reference sample gets the largest distance between unit vectors
    assert nearest_distance(q, torch.tensor([2]), r, torch.tensor([0, 1]), k=1).item() == 2.0


def test_nf_feature_on_a_model(tmu_original, tmu_splits):
    nf = nf_feature(tmu_original, tmu_splits.forget, tmu_splits.retain, k=5)
    assert nf.shape == (len(tmu_splits.forget),)
    assert torch.all(nf >= 0) and torch.all(nf <= 2)


def test_pgd_stays_in_the_budget_and_the_image_range(tmu_original, tmu_splits):
    x = tmu_splits.forget.float_images()
    y = tmu_splits.forget.labels
    eps = 4 / 255
    grads = [None if p.grad is None else p.grad.clone() for p in tmu_original.parameters()]
    for random_start in (False, True):
        adv = pgd_attack(
            tmu_original, x, y, eps=eps, steps=5, random_start=random_start, generator=torch.Generator().manual_seed(0)
        )
        assert (adv - x).abs().max() <= eps + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1
    for before, p in zip(grads, tmu_original.parameters(), strict=True):  # the attack leaves parameter gradients alone
        assert (before is None and p.grad is None) or torch.equal(before, p.grad)
    assert not tmu_original.training


def test_pgd_raises_the_loss(tmu_original, tmu_splits):
    x, y = tmu_splits.forget.float_images(), tmu_splits.forget.labels
    adv = pgd_attack(tmu_original, x, y, eps=16 / 255, steps=5)
    with torch.no_grad():
        assert F.cross_entropy(tmu_original(adv), y) > F.cross_entropy(tmu_original(x), y)


def test_af_is_nonnegative_and_zero_without_attack(tmu_original, tmu_splits):
    af = af_feature(tmu_original, tmu_splits.forget)
    assert af.shape == (len(tmu_splits.forget),) and torch.all(af >= 0) and af.sum() > 0
    assert torch.allclose(
        af_feature(tmu_original, tmu_splits.forget, eps=0.0), torch.zeros(len(tmu_splits.forget)), atol=1e-6
    )


def test_attack_divergence_literal_formulas():
    adv, clean = torch.tensor([[0.3, -1.0, 2.0]]), torch.tensor([[1.0, 0.5, -0.2]])
    p, q = adv.softmax(1)[0], clean.softmax(1)[0]
    ce = -sum(float(p[i]) * float(torch.log(q[i])) for i in range(3))
    ent = -sum(float(p[i]) * float(torch.log(p[i])) for i in range(3))
    assert attack_divergence(adv, clean, form="ce").item() == pytest.approx(ce, rel=1e-5)
    assert attack_divergence(adv, clean, form="kl").item() == pytest.approx(ce - ent, rel=1e-5)
    with pytest.raises(ValueError):
        attack_divergence(adv, clean, form="l2")  # type: ignore[arg-type]


def test_curriculum_model_is_fresh_and_gives_per_sample_losses(tmu_original, tmu_splits):
    fresh = fresh_copy(tmu_original, seed=0)
    assert type(fresh) is type(tmu_original)
    assert any(not torch.equal(a, b) for a, b in zip(fresh.parameters(), tmu_original.parameters(), strict=True))
    again = fresh_copy(tmu_original, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(fresh.parameters(), again.parameters(), strict=True))
    before = copy.deepcopy(tmu_original.state_dict())
    m_r = train_curriculum_model(
        tmu_original, tmu_splits.retain.subset(range(200)).concat(tmu_splits.forget), epochs=1, seed=0
    )
    assert all(torch.equal(before[k], v) for k, v in tmu_original.state_dict().items())
    losses = per_sample_loss(m_r, tmu_splits.forget)
    logits = predict_logits(m_r, tmu_splits.forget)
    expected = [
        float(F.cross_entropy(logits[i : i + 1], tmu_splits.forget.labels[i : i + 1])) for i in range(len(logits))
    ]
    torch.testing.assert_close(losses, torch.tensor(expected), atol=1e-5, rtol=1e-5)


def test_robust_scaler_hand_computed():
    twin = torch.tensor([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 5.0], [100.0, 5.0]])
    # column 0: Q1 = 2, Q3 = 4, IQR = 2 -> fences [-1, 7] -> clip range [max(-1, 1), min(7, 100)] = [1, 7]
    s = RobustScaler.fit(twin)
    assert s.lo.tolist() == [1.0, 5.0] and s.hi.tolist() == [7.0, 5.0]
    out = s.transform(twin)
    torch.testing.assert_close(out[:, 0], torch.tensor([0.0, 1 / 6, 2 / 6, 3 / 6, 1.0]))
    assert torch.all(out[:, 1] == 0)  # a constant column maps to 0
    # the same transform on the "original problem": out-of-range values saturate
    new = s.transform(torch.tensor([[0.0, 9.0], [5.5, 5.0], [1e6, 0.0]]))
    torch.testing.assert_close(new[:, 0], torch.tensor([0.0, 0.75, 1.0]))


def test_robust_scaler_rejects_empty_input():
    with pytest.raises(ValueError):
        RobustScaler.fit(torch.zeros(0, 3))
