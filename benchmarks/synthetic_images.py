"""A synthetic image dataset served through a map-style torch ``Dataset``, never held in memory.

Image ``i`` (``uint8``, ``[3, H, W]``) is generated from a seeded hash of ``i``: its class template (a smooth
pattern per class, drawn once from the seed, 10 x 48 KB) plus per-image noise from a PCG64 generator keyed by
``(seed, i)``; its label is the same hash modulo the number of classes. So ``dataset[i]`` is the same on every read
and in every process, a model can learn the classes, and 1,000,000 images of 3x64x64 take 12 GB only if
materialised. ``targets`` (one int64 per image, 8 MB for a million) lets oblivio skip the pass that reads labels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, vectorised over uint64 (wrapping arithmetic: the overflow is the point)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class SyntheticImages(Dataset):
    """``n`` images of ``[3, size, size]`` uint8 in ``num_classes`` classes, generated per index.

    Args:
        n: number of images.
        size: height and width.
        num_classes: classes.
        seed: the dataset's seed (templates, labels, noise).
        offset: image ``i`` is the generator's image ``offset + i`` (disjoint offsets: unseen images of the same
            distribution, for holdout and test sets).
        flip: a random horizontal flip per read (from numpy's global generator, which oblivio seeds per batch),
            as a user's live augmentation would be.

    Example:
        >>> ds = SyntheticImages(1000, size=8)
        >>> x, y = ds[7]
        >>> x.shape, x.dtype, bool(y == ds.targets[7]), bool((ds[7][0] == x).all())
        ((3, 8, 8), dtype('uint8'), True, True)
    """

    def __init__(
        self, n: int, *, size: int = 64, num_classes: int = 10, seed: int = 0, offset: int = 0, flip: bool = False
    ) -> None:
        self.n, self.size, self.num_classes, self.seed, self.flip = int(n), int(size), int(num_classes), int(seed), flip
        self.offset = int(offset)
        rng = np.random.default_rng([seed, 2**31])
        coarse = rng.uniform(0, 1, (num_classes, 3, 4, 4)).astype(np.float32)
        smooth = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=(size, size), mode="bilinear")
        self.templates = (smooth.numpy() * 160 + 32).astype(np.float32)  # class patterns, 32..192
        self.classes = [f"c{k}" for k in range(num_classes)]
        self._targets: np.ndarray | None = None

    def _hash(self, index: np.ndarray | int) -> np.ndarray:
        key = np.asarray(index, dtype=np.uint64) + np.uint64(self.offset)
        return _splitmix64(key ^ np.uint64(self.seed * 0x9E3779B1))

    @property
    def targets(self) -> np.ndarray:
        if self._targets is None:
            self._targets = (self._hash(np.arange(self.n)) % np.uint64(self.num_classes)).astype(np.int64)
        return self._targets

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(i)
        h = int(self._hash(i))
        label = h % self.num_classes
        noise = np.random.Generator(np.random.PCG64(h)).integers(-48, 48, (3, self.size, self.size), dtype=np.int16)
        image = np.clip(self.templates[label] + noise, 0, 255).astype(np.uint8)
        if self.flip and np.random.random() < 0.5:
            image = np.ascontiguousarray(image[:, :, ::-1])
        return image, label
