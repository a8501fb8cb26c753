"""oblivio: aligned machine unlearning for PyTorch image classifiers.

The one-call entry points (imported on first use, so ``import oblivio`` stays light):

* :func:`oblivio.unlearn` -- your model and data in, ``(unlearned_model, report)`` out;
* :func:`oblivio.evaluate_unlearning` -- score any model on forget / retain / test (and against a gold model);
* :func:`oblivio.as_classifier` -- give a timm-, torchvision- or plain model the ``features`` contract;
* :func:`oblivio.as_image_dataset` -- a torch ``Dataset`` / ``DataLoader`` / arrays as an in-memory dataset;
* :func:`oblivio.stream_dataset` -- the same, read lazily batch by batch (data larger than memory);
* :func:`oblivio.enable_logging` -- show progress lines (epochs, loss, ETA) from the Python API.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"  # the package version (pyproject.toml reads it); CHANGELOG.md names it

_LAZY = {
    "unlearn": "oblivio.api",
    "evaluate_unlearning": "oblivio.api",
    "enable_logging": "oblivio.api",
    "UnlearningReport": "oblivio.api",
    "UnlearningResult": "oblivio.api",
    "as_classifier": "oblivio.models.adapters",
    "as_image_dataset": "oblivio.data.torch_data",
    "stream_dataset": "oblivio.data.stream_intake",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:  # PEP 562: import the API on first use
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'oblivio' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
