"""NegGrad+: the literal reference loss (SCRUB repository) by default, the per-sample ascent cap as a variant."""

import math

import pytest
import torch
import torch.nn.functional as F

from oblivio.data.loader import Batch
from oblivio.methods import create_method


class Fixed(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(logits.clone())

    def forward(self, x):
        return self.logits[: x.shape[0]]


def _batch(y):
    return Batch(torch.zeros(len(y), 1, 2, 2), torch.tensor(y), torch.arange(len(y)))


def test_ascent_term_is_capped_per_sample():
    logits = torch.tensor([[20.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # sample 0: CE 40 for label 1; sample 1: ln 3
    method = create_method("neggrad+", alpha=0.5, ascent_cap=2.0)
    model = Fixed(logits)
    loss, logs = method.loss(model, {"retain": _batch([0, 0]), "forget": _batch([1, 1])})
    ce_r = F.cross_entropy(logits, torch.tensor([0, 0]))
    per = F.cross_entropy(logits, torch.tensor([1, 1]), reduction="none").clamp(max=2 * math.log(3))
    assert torch.isclose(loss, 0.5 * ce_r - 0.5 * per.mean())
    uncapped, _ = create_method("neggrad+", alpha=0.5, ascent_cap=None).loss(
        model, {"retain": _batch([0, 0]), "forget": _batch([1, 1])}
    )
    assert uncapped < loss  # the uncapped ascent term is larger


def test_capped_sample_stops_pulling():
    model = Fixed(torch.tensor([[20.0, 0.0, 0.0]]))
    method = create_method("neggrad+", alpha=0.0, ascent_cap=1.0)
    loss, _ = method.loss(model, {"retain": _batch([0]), "forget": _batch([1])})
    loss.backward()
    assert torch.count_nonzero(model.logits.grad) == 0


def test_defaults_are_the_reference_codes():
    # SCRUB repository, small_scale_unlearning.ipynb: args.ng_alpha 0.95, ng_epochs 10, ng_lr 0.01, plain SGD
    # (momentum 0, weight_decay 0), retain batch 128, forget batch 64, l2_penalty with --weight-decay 0.1.
    m = create_method("neggrad+")
    assert (m.alpha, m.epochs, m.lr, m.momentum, m.weight_decay) == (0.95, 10, 0.01, 0.0, 0.0)
    assert (m.batch_size, m.forget_batch_size, m.l2_to_original) == (128, 64, 0.1)
    assert m.grad_clip is None and m.ascent_cap is None
    capped = create_method("neggrad+capped")
    assert (capped.ascent_cap, capped.grad_clip, capped.alpha, capped.momentum) == (2.0, 1.0, 0.6, 0.9)


def test_reference_loss_has_the_l2_pull_to_the_original_inside_the_retain_term():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    model = Fixed(logits)
    origin = logits + torch.tensor([[0.5, -0.5, 0.0], [0.0, 1.0, 0.0]])  # θ_o differs from θ by these offsets
    method = create_method("neggrad+")
    method._anchor = [origin]
    loss, _ = method.loss(model, {"retain": _batch([0, 1]), "forget": _batch([2, 2])})
    # by hand: alpha · (CE_r + (0.1 / 2) · ||θ − θ_o||²) − (1 − alpha) · CE_f, squared offsets sum to 1.5
    ce_r = F.cross_entropy(logits, torch.tensor([0, 1]))
    ce_f = F.cross_entropy(logits, torch.tensor([2, 2]))
    assert float(loss.detach()) == pytest.approx(float(0.95 * (ce_r + 0.05 * 1.5) - 0.05 * ce_f), rel=1e-6)
    method._anchor = None  # no anchor (a direct call outside a run): no penalty
    plain, _ = method.loss(model, {"retain": _batch([0, 1]), "forget": _batch([2, 2])})
    assert float(plain.detach()) == pytest.approx(float(0.95 * ce_r - 0.05 * ce_f), rel=1e-6)


def test_reference_run_keeps_the_original_unchanged_and_clears_its_anchor(original, mu_world):
    s = mu_world.subset
    before = [p.detach().clone() for p in original.parameters()]
    method = create_method("neggrad+", epochs=1)
    out = method(original, forget=s.forget, retain=s.retain, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, original.parameters(), strict=True))
    assert method._anchor is None and out is not original
    assert all(torch.isfinite(p).all() for p in out.parameters())
