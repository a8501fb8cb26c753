"""Samples that are in two data roles at once (forget and retain, or either and holdout / test).

``forget`` and ``retain`` come from one training set: where both carry sample ids (``Subset`` indices, ``ids=``, an
:class:`~oblivio.data.ImageDataset`'s ids) they are compared by id. Everywhere else (a role whose ids are mere
positions: arrays, a plain ``Dataset``, two wrappers of the same tensors; and ``holdout`` / ``test``, whose ids
count in another split) the images are compared by content: a BLAKE2b digest of each image's pixels.

Two distinct samples with byte-identical images count as shared when compared by content: a test image identical
to a forgotten one makes the evaluation wrong all the same.

Example:
    >>> import torch
    >>> x = torch.rand(6, 1, 4, 4)
    >>> a = ImageDataset(x[:2], torch.tensor([0, 1]), ("a", "b"))
    >>> b = ImageDataset(x, torch.arange(6) % 2, ("a", "b"))
    >>> shared({"forget": a, "retain": b}, positional={"retain"})
    [('forget', 'retain', 2, 'samples by image content (identical pixels)')]
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .base import ImageDataset

log = logging.getLogger("oblivio.data")

PAIRS = (
    ("forget", "retain"),
    ("forget", "holdout"),
    ("forget", "test"),
    ("retain", "holdout"),
    ("retain", "test"),
    ("holdout", "test"),
)
"""The pairs of roles that must not share a sample."""


def content_hashes(dataset: Any) -> np.ndarray | None:
    """One 16-byte BLAKE2b digest per image (its pixels, as 0-255 values when they are), or None for data that is
    not in memory.

    Hook for data that is not materialised (streaming): such a dataset may define ``content_hashes()`` returning
    the same digests; without it, it is skipped by :func:`shared` (nothing is read to check it).

    Cost: one pass over the images' bytes, one ``hashlib`` call per image (in C): 0.36 s for Fashion-MNIST's
    70,000 28x28 images on one core, so about 6 s per million 32x32x3 images; float images are first compared
    with their 0-255 rounding (a float32 copy of the images for that pass).

    Example:
        >>> ds = ImageDataset(torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 0]), ("a", "b"))
        >>> h = content_hashes(ds); h.shape, bool(h[0] == h[2])
        ((3,), True)
    """
    own = getattr(dataset, "content_hashes", None)
    if callable(own):
        return np.asarray(own())
    if getattr(dataset, "is_streaming", False):  # streamed: reading every image here would cost a whole pass
        return None
    images = getattr(dataset, "images", None)
    if not isinstance(images, torch.Tensor):
        return None
    x = images.detach().cpu()
    if x.is_floating_point():  # float images in [0, 1] that are k/255 exactly hash as their uint8 twins
        q = (x.float() * 255.0).round()
        x = q.to(torch.uint8) if torch.equal(q / 255.0, x.float()) else x.float()
    rows = x.reshape(len(x), -1).contiguous().numpy()
    # Hand-written on purpose: hashlib per row runs in C, and a fixed-width bytes array keeps np.isin vectorised.
    return np.array([hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in rows], dtype="S16")


def shared(
    sets: Mapping[str, ImageDataset], *, positional: set[str] | frozenset[str] = frozenset()
) -> list[tuple[str, str, int, str]]:
    """``(role_a, role_b, count, what)`` for every pair of roles (:data:`PAIRS`) that shares samples.

    Args:
        sets: the data per role (``forget``, ``retain``, ``holdout``, ``test``; absent roles are skipped).
        positional: the roles whose ids are mere positions (no ``Subset`` indices, no ``ids=``): compared by content.

    Returns:
        One tuple per overlapping pair; ``what`` says how they were compared (``sample ids (e.g. [...])`` or
        ``samples by image content (identical pixels)``). Empty when the roles are disjoint.
    """
    hashes: dict[str, np.ndarray | None] = {}

    def digests(role: str) -> np.ndarray | None:
        if role not in hashes:
            hashes[role] = content_hashes(sets[role])
            if hashes[role] is None:
                log.debug("%s is not in memory: not checked for shared samples by content", role)
        return hashes[role]

    found = []
    for a, b in PAIRS:
        if a not in sets or b not in sets or not len(sets[a]) or not len(sets[b]):
            continue
        if (a, b) == ("forget", "retain") and not ({a, b} & set(positional)):
            ids = np.intersect1d(sets[a].ids.numpy(), sets[b].ids.numpy())  # type: ignore[union-attr]
            n, what = int(ids.size), f"sample ids (e.g. {ids[:5].tolist()})"
        else:
            ha, hb = digests(a), digests(b)
            if ha is None or hb is None:
                continue
            n, what = int(np.isin(hb, ha).sum()), "samples by image content (identical pixels)"
        if n:
            found.append((a, b, n, what))
    return found


__all__ = ["PAIRS", "content_hashes", "shared"]
