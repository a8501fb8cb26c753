"""Each baseline does what it promises on a whole-class forget request (digits class 3).

Thresholds are loose on purpose: they check the direction and rough size of the effect, not exact numbers.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from oblivio.methods import create_method
from oblivio.methods.common import RestoreOutsideMask, kd_loss, random_wrong_labels, reinitialise, relabelled_union
from oblivio.training.evaluate import accuracy, predict_logits


def _accs(model, splits):
    return accuracy(model, splits.forget), accuracy(model, splits.retain)


def _apply(name, original, splits, **hparams):
    method = create_method(name, **hparams)
    out = method(original, forget=splits.forget, retain=splits.retain, holdout=splits.holdout, progress=False)
    return method, out


def test_original_memorises(mu_world):
    f, r = _accs(mu_world.original, mu_world.whole)
    assert f >= 0.95 and r >= 0.95


@pytest.mark.parametrize(
    "name,max_forget,min_retain",
    [
        # Our CPU tunings (named variants); the literal reference baselines are checked below.
        ("neggrad.cpu", 0.5, 0.5),  # plain ascent: forgets, and is known to hurt the rest of the model
        ("neggrad+capped", 0.7, 0.8),
        ("random-label.cpu", 0.3, 0.95),
        ("random-label", 0.3, 0.95),  # the reference settings (10 epochs at 0.013) forget here too
        ("salun", 0.3, 0.95),
        ("scrub.cpu", 0.5, 0.95),
        ("two-stage", 0.6, 0.9),
    ],
)
def test_forgetting_methods_lower_forget_accuracy(name, max_forget, min_retain, original, mu_world):
    _, out = _apply(name, original, mu_world.whole)
    f, r = _accs(out, mu_world.whole)
    assert f <= max_forget, f"{name}: forget accuracy {f:.3f} > {max_forget}"
    assert r >= min_retain, f"{name}: retain accuracy {r:.3f} < {min_retain}"


def test_literal_neggrad_plus_ascends_on_forget_and_keeps_retain(original, mu_world):
    """The reference settings (alpha 0.95, plain SGD 0.01, L2 pull to M_o) are mild here: measured on digits class 3,
    forget accuracy stays near 98% (so the bench's forgetting comparisons name the variant). What must hold: the
    forget loss goes up (ascent, not descent) while retain accuracy is kept."""
    w = mu_world.whole
    _, out = _apply("neggrad+", original, w, epochs=3)
    ce = lambda m: float(F.cross_entropy(predict_logits(m, w.forget), w.forget.labels))  # noqa: E731
    assert ce(out) > ce(original)
    assert accuracy(out, w.retain) >= 0.95


@pytest.mark.parametrize("name", ["neggrad", "scrub"])
def test_literal_ascent_baselines_raise_the_forget_loss_and_keep_retain(name, original, mu_world):
    """The reference settings are mild at this scale (neggrad: lr 1e-4 at batch 256 is one small step per epoch;
    scrub: lr 5e-4): measured on digits class 3, forget accuracy stays at 99% and the forget cross-entropy rises by
    under 3%, which is why the benches name the ``.cpu`` variants. What must hold: the forget loss goes up (ascent,
    not descent) while retain accuracy is kept."""
    w = mu_world.whole
    _, out = _apply(name, original, w)
    ce = lambda m: float(F.cross_entropy(predict_logits(m, w.forget), w.forget.labels))  # noqa: E731
    assert ce(out) > ce(original)
    assert accuracy(out, w.retain) >= 0.95


def test_finetune_keeps_retain_accuracy(original, mu_world):
    before = accuracy(original, mu_world.whole.retain)
    _, out = _apply("finetune", original, mu_world.whole)
    assert accuracy(out, mu_world.whole.retain) >= before - 0.02


def test_retrain_ignores_the_original_weights(original, mu_world):
    """Exact unlearning: the result depends on the seed and D_r only, not on what the original learned."""
    s = mu_world.whole
    method = create_method("retrain", recipe="tiny", epochs=3)
    a = method(original, forget=s.forget, retain=s.retain, seed=3, progress=False)
    scrambled = reinitialise(copy.deepcopy(original))
    b = method(scrambled, forget=s.forget, retain=s.retain, seed=3, progress=False)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert accuracy(a, s.forget) <= 0.1  # no class-3 sample left to learn from


def test_bad_teacher_moves_forget_outputs_toward_the_incompetent_teacher(original, mu_world):
    s = mu_world.whole
    seed = 0
    _, out = _apply("bad-teacher", original, s, lr=1e-3, epochs=5, batch_size=64)
    # The incompetent teacher is the first draw from the RNG the call seeds: rebuild it the same way.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        incompetent = reinitialise(copy.deepcopy(original)).eval()
    t = predict_logits(incompetent, s.forget)
    gap_before = float(kd_loss(predict_logits(original, s.forget), t))
    gap_after = float(kd_loss(predict_logits(out, s.forget), t))
    assert gap_after < 0.5 * gap_before
    f, r = _accs(out, s)
    assert f <= 0.6 and r >= 0.95


def test_salun_mask_is_enforced_with_weight_decay_and_momentum(original, mu_world):
    s = mu_world.whole
    method, out = _apply("salun", original, s, sparsity=0.3, weight_decay=5e-3, momentum=0.9, epochs=2)
    masks = method.masks
    total = sum(m.numel() for m in masks.values())
    assert method.info["n_salient"] == round(0.3 * total)
    moved = 0
    for (name, p), q in zip(out.named_parameters(), original.parameters(), strict=True):
        frozen = ~masks[name]
        assert torch.equal(p[frozen], q[frozen]), f"{name}: weights outside the mask moved"
        moved += int((p[masks[name]] != q[masks[name]]).sum())
    assert moved > 0


def test_salun_with_empty_mask_changes_nothing(original, mu_world):
    """Degenerate case: sparsity 0 freezes every weight, so the model must come back bit-identical."""
    _, out = _apply("salun", original, mu_world.subset, sparsity=0.0, epochs=1)
    for p, q in zip(out.parameters(), original.parameters(), strict=True):
        assert torch.equal(p, q)


def test_restore_outside_mask_callback_alone():
    from oblivio.training.loop import fit

    lin = torch.nn.Linear(4, 2)
    start = {k: v.clone() for k, v in lin.state_dict().items()}
    masks = {"weight": torch.zeros(2, 4, dtype=torch.bool), "bias": torch.tensor([True, False])}
    masks["weight"][0, 0] = True
    batches = [(torch.randn(8, 4), torch.randint(0, 2, (8,))) for _ in range(3)]
    opt = torch.optim.SGD(lin.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    fit(
        lin,
        batches,
        epochs=3,
        optimizer=opt,
        loss_fn=lambda m, b: F.cross_entropy(m(b[0]), b[1]),
        callbacks=[RestoreOutsideMask(masks)],
        progress=False,
    )
    w, b = lin.weight.detach(), lin.bias.detach()
    assert torch.equal(w[~masks["weight"]], start["weight"][~masks["weight"]])
    assert b[1] == start["bias"][1] and b[0] != start["bias"][0] and w[0, 0] != start["weight"][0, 0]


def test_random_wrong_labels_are_wrong_and_seeded(mu_world):
    y = mu_world.whole.retain.labels
    a = random_wrong_labels(y, 10, generator=torch.Generator().manual_seed(1))
    b = random_wrong_labels(y, 10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and bool((a != y).all())
    assert len(torch.unique(a)) == 10
    union, wrong = relabelled_union(mu_world.whole.retain, mu_world.whole.forget, seed=0)
    assert len(union) == len(mu_world.whole.retain) + len(mu_world.whole.forget)
    assert bool((wrong != mu_world.whole.forget.labels).all())


def test_reinitialise_draws_fresh_weights(original):
    torch.manual_seed(5)
    a = reinitialise(copy.deepcopy(original))
    torch.manual_seed(5)
    b = reinitialise(copy.deepcopy(original))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert all(not torch.equal(p, q) for p, q in zip(a.parameters(), original.parameters(), strict=True))
    assert torch.equal(a.normalize.mean, original.normalize.mean)  # data statistics are kept


def test_finite_weights_with_overflowing_outputs_are_a_divergence(original, mu_world):
    """Literal neggrad has no clip: one step at an absurd rate leaves finite weights whose logits overflow. The
    call must fail as a divergence (callers such as the ledger keep the current model), not return the model."""
    from oblivio.training.loop import DivergenceError

    with pytest.raises(DivergenceError, match="outputs are not finite"):
        _apply("neggrad", original, mu_world.subset, lr=1e12, epochs=1)
