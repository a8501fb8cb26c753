"""Test-only unlearning methods for the attack tests (registered on import; cheap and deterministic)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from oblivio.methods import METHODS, UnlearningMethod, register_method


def _register(name: str):
    def decorator(cls):
        if name in METHODS:  # imported twice (test module and worker): keep the first
            return cls
        return register_method(name)(cls)

    return decorator


@_register("test-attack-sgd")
@dataclass(kw_only=True)
class OneStep(UnlearningMethod):
    """One SGD step on the first retain batch: the weights always change."""

    lr: float = 0.05

    def _unlearn(self, model, data, *, seed, progress):
        opt = torch.optim.SGD(model.parameters(), lr=self.lr)
        n = min(32, len(data.retain))
        x = data.retain.float_images(torch.arange(n)).to(next(model.parameters()).device)
        model.train()
        F.cross_entropy(model(x), data.retain.labels[:n].to(x.device)).backward()
        opt.step()
        return model


@_register("test-attack-noop")
@dataclass(kw_only=True)
class AllEasy(UnlearningMethod):
    """What TMU does when it predicts every forget sample easy: returns the model unchanged."""

    def _unlearn(self, model, data, *, seed, progress):
        self.info.update(predicted_easy=len(data.forget), predicted_hard=0)
        return model


@_register("test-attack-nan")
@dataclass(kw_only=True)
class Diverges(UnlearningMethod):
    """Training that blows up: every weight becomes NaN."""

    def _unlearn(self, model, data, *, seed, progress):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float("nan"))
        return model
