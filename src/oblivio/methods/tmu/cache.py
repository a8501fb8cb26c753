"""Reuse of TMU's twin work across requests (issue 10).

The twin sets, twin models, twin labels and features, the scaler, the predictor and the curriculum model depend
on the original model and on the request's *class profile* and *size*, not on which images are forgotten. A
:class:`TwinCache` keeps them, keyed by :func:`twin_cache_key` (model hash + class profile + size bucket + the
hyper-parameters and seed that shape them), so a later request of the same profile only computes its own forget
samples' features and runs the aligned step.

Methods do not import the experiments layer: the caller injects a cache object (anything with ``get(key)`` and
``put(key, entry)``); :class:`FileTwinCache` is the on-disk one the experiments and ledger layers point at a
folder under the checkpoint store.

Example:
    >>> import tempfile, torch
    >>> cache = FileTwinCache(tempfile.mkdtemp())
    >>> key = twin_cache_key(model_hash="ab" * 32, forget_labels=torch.tensor([3] * 100), num_classes=10,
    ...                      hparams={"n_twins": 4}, seed=0)
    >>> cache.get(key) is None
    True
    >>> cache.put(key, {"labels": torch.tensor([1, 0])})
    >>> cache.get(key)["labels"].tolist()
    [1, 0]
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from ...utils import CheckpointError, atomic_torch_save, config_hash, safe_torch_load

__all__ = ["FileTwinCache", "MemoryTwinCache", "TwinCache", "class_profile", "size_bucket", "twin_cache_key"]

log = logging.getLogger("oblivio.methods.tmu")

CACHE_FORMAT = 3  # 3: entries made without the predictor's work (issue 15 default) hold None there
"""Version of the cached entry layout (part of every key: a new layout never reads an old entry)."""


@runtime_checkable
class TwinCache(Protocol):
    """Where TMU keeps its request-independent twin work: ``get(key) -> entry | None`` and ``put(key, entry)``."""

    def get(self, key: dict) -> dict | None: ...

    def put(self, key: dict, entry: dict) -> None: ...


def class_profile(labels: torch.Tensor, num_classes: int, *, resolution: int = 20) -> tuple[tuple[int, int], ...]:
    """The forget set's classes and their shares in units of ``1 / resolution`` (shares below half a unit drop).

    Example:
        >>> class_profile(torch.tensor([3] * 100), 10)
        ((3, 20),)
        >>> class_profile(torch.tensor([0] * 50 + [1] * 48 + [2] * 2), 10)
        ((0, 10), (1, 10))
    """
    counts = torch.bincount(torch.as_tensor(labels).long().reshape(-1), minlength=num_classes).double()
    if counts.sum() == 0:
        return ()
    share = counts / counts.sum() * resolution
    return tuple((c, int(round(float(share[c])))) for c in range(num_classes) if round(float(share[c])) > 0)


def size_bucket(n: int) -> int:
    """Half-octave bucket of ``|D_f|``: ``round(2 log2 n)`` (sizes within a factor √2 share a bucket).

    Example:
        >>> [size_bucket(n) for n in (100, 110, 140, 200)]
        [13, 14, 14, 15]
    """
    if n <= 0:
        raise ValueError(f"size must be positive, got {n}")
    return int(round(2 * math.log2(n)))


def twin_cache_key(
    *,
    model_hash: str,
    forget_labels: torch.Tensor,
    num_classes: int,
    hparams: dict,
    seed: int,
    holdout_hash: str | None = None,
) -> dict:
    """The key of a cached twin entry: everything the twin work depends on, nothing that names forget samples.

    Args:
        model_hash: the original model's :func:`~oblivio.utils.state_dict_hash` (or the hash of the version
            whose twins a child version reuses).
        forget_labels: ``D_f``'s labels (only the class profile and the size bucket enter the key).
        num_classes: number of classes.
        hparams: the TMU hyper-parameters that shape the twin work.
        seed: the unlearning seed (twin draws, twin training order, curriculum model).
        holdout_hash: a hash of the holdout ids the twin images come from.
    """
    return {
        "format": CACHE_FORMAT,
        "model": model_hash,
        "profile": [list(p) for p in class_profile(forget_labels, num_classes)],
        "size_bucket": size_bucket(int(torch.as_tensor(forget_labels).numel())),
        "hparams": hparams,
        "seed": int(seed),
        "holdout": holdout_hash,
    }


class MemoryTwinCache:
    """An in-process cache (tests, one-off sessions): entries live in a dict."""

    def __init__(self) -> None:
        self.entries: dict[str, dict] = {}

    def get(self, key: dict) -> dict | None:
        return self.entries.get(config_hash(key))

    def put(self, key: dict, entry: dict) -> None:
        self.entries[config_hash(key)] = entry


class FileTwinCache:
    """Entries on disk: ``root/<hash of key>.pt``, written atomically, read with ``weights_only=True``.

    An unreadable or mismatched entry is logged and treated as a miss (it is recomputed and overwritten), so a
    damaged file costs one cold request, never a wrong result.

    Args:
        root: the folder (the experiments layer uses ``<checkpoint store>/tmu-twins``).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, key: dict) -> Path:
        return self.root / f"{config_hash(key)}.pt"

    def get(self, key: dict) -> dict | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            entry = safe_torch_load(path)
        except CheckpointError as exc:
            log.warning("tmu twin cache: %s; recomputing", exc)
            return None
        if not isinstance(entry, dict) or entry.get("key_hash") != config_hash(key):
            log.warning("tmu twin cache: %s does not hold this key; recomputing", path)
            return None
        return entry

    def put(self, key: dict, entry: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({**entry, "key_hash": config_hash(key)}, self.path(key))

    def __repr__(self) -> str:
        return f"FileTwinCache({str(self.root)!r})"
