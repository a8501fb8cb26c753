"""Test-only unlearning methods for the ledger tests (registered on import; cheap and deterministic)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from oblivio.methods import METHODS, UnlearningMethod, register_method

STARTED = threading.Event()
GATE = threading.Event()


def _register(name: str):
    def decorator(cls):
        if name in METHODS:  # imported twice (test module and worker): keep the first
            return cls
        return register_method(name)(cls)

    return decorator


@_register("test-ledger-sgd")
@dataclass(kw_only=True)
class OneStep(UnlearningMethod):
    """One SGD step on the first retain batch; reports TMU-style predicted easy / hard counts."""

    lr: float = 0.01
    sleep: float = 0.0

    def _unlearn(self, model, data, *, seed, progress):
        if self.sleep:
            time.sleep(self.sleep)
        opt = torch.optim.SGD(model.parameters(), lr=self.lr)
        n = min(32, len(data.retain))
        x = data.retain.float_images(torch.arange(n)).to(next(model.parameters()).device)
        model.train()
        F.cross_entropy(model(x), data.retain.labels[:n].to(x.device)).backward()
        opt.step()
        self.info.update(predicted_easy=len(data.forget) // 2, predicted_hard=len(data.forget) - len(data.forget) // 2)
        return model


@_register("test-ledger-nan")
@dataclass(kw_only=True)
class Diverges(UnlearningMethod):
    """Training that blows up: every weight becomes NaN."""

    def _unlearn(self, model, data, *, seed, progress):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float("nan"))
        return model


@_register("test-ledger-gate")
@dataclass(kw_only=True)
class Gated(UnlearningMethod):
    """Signals STARTED, then waits for GATE (to hold the apply lease while a test tries a second apply)."""

    def _unlearn(self, model, data, *, seed, progress):
        STARTED.set()
        if not GATE.wait(60):
            raise RuntimeError("test gate never opened")
        return model
