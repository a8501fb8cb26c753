"""scikit-learn's 8x8 handwritten digits (1,797 images): tiny, shipped with sklearn, for fast tests."""

from __future__ import annotations

import numpy as np
import torch

from .base import DatasetSplits, ImageDataset


def load_digits_dataset(*, test_fraction: float = 0.25, seed: int = 0) -> DatasetSplits:
    """sklearn ``load_digits`` as ``[N, 1, 8, 8]`` float images in [0, 1], split per class (seeded)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy((bunch.images / 16.0).astype(np.float32)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    rng = np.random.default_rng(seed)
    test_mask = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        idx = np.flatnonzero(bunch.target == c)
        rng.shuffle(idx)
        test_mask[idx[: int(round(len(idx) * test_fraction))]] = True
    classes = tuple(str(i) for i in range(10))
    train_idx = np.flatnonzero(~test_mask)
    test_idx = np.flatnonzero(test_mask)
    train = ImageDataset(images[train_idx], labels[train_idx], classes, name="digits/train")
    test = ImageDataset(images[test_idx], labels[test_idx], classes, name="digits/test")
    return DatasetSplits(train, test, name="digits", info={"source": "sklearn.datasets.load_digits", "seed": seed})
