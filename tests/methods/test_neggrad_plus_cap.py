import math

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
        model, {"retain": _batch([0, 0]), "forget": _batch([1, 1])})
    assert uncapped < loss  # the uncapped ascent term is larger


def test_capped_sample_stops_pulling():
    model = Fixed(torch.tensor([[20.0, 0.0, 0.0]]))
    method = create_method("neggrad+", alpha=0.0, ascent_cap=1.0)
    loss, _ = method.loss(model, {"retain": _batch([0]), "forget": _batch([1])})
    loss.backward()
    assert torch.count_nonzero(model.logits.grad) == 0
