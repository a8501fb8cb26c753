"""Hardware-independent training cost: forward / backward sample-passes, counted by a global forward hook.

:func:`~oblivio.training.loop.fit` counts the passes of every training; :mod:`oblivio.metrics.cost` reads them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class SamplePasses:
    """Hardware-independent cost: images pushed through a model forward, and forwards made with autograd on.

    A *forward* sample-pass is one image through one classifier (``forward`` or ``features``); a *backward*
    sample-pass is one image whose forward ran with autograd recording (training steps, PGD), whose backward is
    then run once. Counted by :func:`count_sample_passes` with a global forward hook on the input-normalisation
    module every :class:`~oblivio.models.Classifier` calls exactly once per forward.
    """

    forward: int = 0
    backward: int = 0

    def __add__(self, other: SamplePasses) -> SamplePasses:
        return SamplePasses(self.forward + other.forward, self.backward + other.backward)

    def as_dict(self) -> dict[str, int]:
        return {"forward_samples": self.forward, "backward_samples": self.backward}


_ACTIVE_COUNTERS: list[SamplePasses] = []
_COUNT_HOOK: Any = None


def _count_hook(module: nn.Module, inputs: tuple, output: Any) -> None:
    from ..models.base import Normalize

    if _ACTIVE_COUNTERS and isinstance(module, Normalize) and inputs and torch.is_tensor(inputs[0]):
        n = int(inputs[0].shape[0]) if inputs[0].dim() else 1
        grad = torch.is_grad_enabled()
        for c in _ACTIVE_COUNTERS:
            c.forward += n
            if grad:
                c.backward += n


@contextlib.contextmanager
def count_sample_passes() -> Iterator[SamplePasses]:
    """Count forward / backward sample-passes of every classifier in this process while the block runs.

    Nested blocks each count everything inside them. The global hook is installed only while a block is active.

    Example:
        >>> import torch
        >>> from oblivio.models import create_model
        >>> m = create_model("small-cnn", num_classes=2, in_channels=1, image_size=(8, 8))
        >>> with count_sample_passes() as passes, torch.no_grad():
        ...     _ = m(torch.rand(5, 1, 8, 8))
        >>> passes
        SamplePasses(forward=5, backward=0)
    """
    global _COUNT_HOOK
    counter = SamplePasses()
    if _COUNT_HOOK is None:
        _COUNT_HOOK = torch.nn.modules.module.register_module_forward_hook(_count_hook)
    _ACTIVE_COUNTERS.append(counter)
    try:
        yield counter
    finally:
        del _ACTIVE_COUNTERS[next(i for i, c in enumerate(_ACTIVE_COUNTERS) if c is counter)]  # by identity
        if not _ACTIVE_COUNTERS and _COUNT_HOOK is not None:
            _COUNT_HOOK.remove()
            _COUNT_HOOK = None


__all__ = ["SamplePasses", "count_sample_passes"]
