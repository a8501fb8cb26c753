"""Cheap unlearning methods for the runner tests, importable by worker processes (``imports=[__name__]``).

Not a test module (no ``test_`` prefix): the runner tests import it, and so do spawned pool / Ray workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

import torch

from oblivio.methods import METHODS, UnlearningMethod, register_method

NOISE = "test-runner-noise"
FAIL = "test-runner-fail"


@dataclass(kw_only=True)
class NoiseUnlearner(UnlearningMethod):
    """Adds seeded Gaussian noise to every weight; appends ``"<pid> <seed>"`` to ``counter`` on each call."""

    source: ClassVar[str] = "test double"
    scale: float = 0.05
    counter: str = ""

    def _unlearn(self, model, data, *, seed, progress):
        if self.counter:
            with open(self.counter, "a") as fh:
                fh.write(f"{os.getpid()} {seed}\n")
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=g) * self.scale)
        self.info["n_forget_seen"] = len(data.forget)
        self.info["predicted_labels"] = [1] * len(data.forget)  # "everything easy", to exercise label accuracy
        return model


@dataclass(kw_only=True)
class FailingUnlearner(UnlearningMethod):
    """Always fails (for error rows)."""

    source: ClassVar[str] = "test double"
    counter: str = ""

    def _unlearn(self, model, data, *, seed, progress):
        if self.counter:
            with open(self.counter, "a") as fh:
                fh.write(f"{os.getpid()} {seed}\n")
        raise RuntimeError("deliberate failure <b>")


if NOISE not in METHODS:
    register_method(NOISE)(NoiseUnlearner)
if FAIL not in METHODS:
    register_method(FAIL)(FailingUnlearner)
