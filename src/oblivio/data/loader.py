"""The batched loader: slices in-memory tensors (or reads a streamed dataset's batches), augments whole batches,
seeds every epoch."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple, cast

import numpy as np
import torch

from .base import DatasetError, ImageDataset
from .transforms import Augment

if TYPE_CHECKING:
    from .stream import StreamingDataset


class Batch(NamedTuple):
    """One batch: float images in [0, 1] on the target device, labels, and positions in the dataset."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor


class TensorLoader:
    """Iterate over an :class:`ImageDataset` (or a :class:`~oblivio.data.StreamingDataset`) in batches.

    The order of epoch ``e`` depends only on ``(seed, e)``, so a run that resumes at epoch ``e`` sees the same
    batches as one that never stopped.

    A streamed dataset goes through the same code: the same order, batch composition, label override and batch
    augmentation; only the images of each batch are read from the dataset's sources (your ``Dataset``'s
    ``__getitem__`` and its transform, in the dataset's ``num_workers`` loader processes) instead of sliced from a
    tensor. So every method and metric gives the same numbers on the same data streamed or in memory.

    Args:
        dataset: the data (in memory, or streamed).
        batch_size: samples per batch.
        shuffle: shuffle each epoch.
        augment: batch augmentation (``Augment`` or a spec such as ``"crop+flip"``).
        drop_last: drop the last incomplete batch.
        seed: base seed for shuffling and augmentation.
        device: where batches go (the model's device); a CUDA device moves the whole dataset there once.
        labels: optional label override (e.g. random or contrastive labels), same length as the dataset.
        fraction: use a random ``fraction`` of the data each epoch (re-drawn every epoch).

    Example:
        >>> import torch
        >>> from oblivio.data import ImageDataset, TensorLoader
        >>> ds = ImageDataset(torch.rand(10, 1, 4, 4), torch.arange(10) % 2, ("a", "b"))
        >>> [b.x.shape[0] for b in TensorLoader(ds, batch_size=4)]
        [4, 4, 2]
    """

    def __init__(
        self,
        dataset: ImageDataset,
        *,
        batch_size: int = 128,
        shuffle: bool = False,
        augment: Augment | str | None = None,
        drop_last: bool = False,
        seed: int = 0,
        device: torch.device | str = "cpu",
        labels: torch.Tensor | None = None,
        fraction: float = 1.0,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.augment = Augment.parse(augment)
        self.drop_last = drop_last
        self.seed = int(seed)
        self.device = torch.device(device)
        self.fraction = float(fraction)
        self.epoch = 0
        self._labels = dataset.labels if labels is None else torch.as_tensor(labels).long()
        if self._labels.shape[0] != len(dataset):
            raise DatasetError(f"{dataset.name}: {len(dataset)} samples but {self._labels.shape[0]} override labels")
        self._streamed = bool(getattr(dataset, "is_streaming", False))
        self._images = None if self._streamed else dataset.images
        if self.device.type != "cpu":
            if self._images is not None:
                self._images = self._images.to(self.device)
            self._labels = self._labels.to(self.device)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _count(self) -> int:
        n = len(self.dataset)
        return max(1, int(math.ceil(n * self.fraction))) if n else 0

    def __len__(self) -> int:
        n = self._count()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n_total = len(self.dataset)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.shuffle or self.fraction < 1:
            order = torch.randperm(n_total, generator=gen)[: self._count()]
        else:
            order = torch.arange(n_total)
        n = order.numel()
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        batches = [order[start : start + self.batch_size] for start in range(0, stop, self.batch_size)]
        reader = (
            cast("StreamingDataset", self.dataset).iter_batches(batches, seed=self.seed, epoch=self.epoch)
            if self._streamed
            else None
        )
        images = self._images
        try:
            for idx in batches:
                if reader is not None:
                    x = next(reader)
                else:
                    assert images is not None  # in memory: the images tensor is set in __init__
                    x = images[idx.to(images.device)]
                x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
                x = x.to(self.device, non_blocking=True)
                if self.augment.active:
                    x = self.augment(x, gen)
                y = self._labels[idx.to(self._labels.device)].to(self.device, non_blocking=True)
                yield Batch(x, y, idx)
        finally:
            if reader is not None:
                reader.close()  # stops its loader workers when the epoch is left early
        self.epoch += 1


def stratified_sample(dataset: ImageDataset, size: int | float, *, seed: int = 0) -> np.ndarray:
    """Positions of a class-stratified random sample of ``size`` samples (or that fraction), sorted."""
    n = len(dataset)
    k = int(round(size * n)) if isinstance(size, float) and size <= 1 else int(size)
    if not 0 < k <= n:
        raise ValueError(f"sample size must be in (0, {n}], got {size}")
    rng = np.random.default_rng(seed)
    labels = dataset.labels.numpy()
    counts = np.bincount(labels, minlength=dataset.num_classes)
    quota = np.floor(counts / n * k).astype(int)
    remainder = k - quota.sum()
    if remainder > 0:  # give the leftovers to the classes with the largest fractional parts
        frac = counts / n * k - quota
        for c in np.argsort(-frac, kind="stable")[:remainder]:
            quota[c] += 1
    picks = [
        rng.choice(np.flatnonzero(labels == c), size=quota[c], replace=False) for c in range(len(counts)) if quota[c]
    ]
    return np.sort(np.concatenate(picks)) if picks else np.zeros(0, dtype=np.int64)


class ZipLoader:
    """Several loaders stepped together: each step yields ``{name: Batch}``.

    The epoch length is that of ``primary``; the other loaders restart whenever they run out (a small forget set
    is cycled beside a large retain set).

    Example:
        >>> import torch
        >>> from oblivio.data import ImageDataset
        >>> big = ImageDataset(torch.rand(8, 1, 4, 4), torch.zeros(8), ("a", "b"))
        >>> small = ImageDataset(torch.rand(2, 1, 4, 4), torch.ones(2), ("a", "b"))
        >>> z = ZipLoader({"retain": TensorLoader(big, batch_size=2), "forget": TensorLoader(small, batch_size=2)},
        ...               primary="retain")
        >>> len(z), sorted(next(iter(z)))
        (4, ['forget', 'retain'])
    """

    def __init__(self, loaders: dict[str, TensorLoader], *, primary: str) -> None:
        if primary not in loaders:
            raise ValueError(f"primary {primary!r} is not one of {sorted(loaders)}")
        for name, loader in loaders.items():
            if len(loader) == 0:
                raise DatasetError(f"loader {name!r} has no batches (empty dataset?)")
        self.loaders, self.primary = loaders, primary

    def set_epoch(self, epoch: int) -> None:
        for loader in self.loaders.values():
            loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loaders[self.primary])

    def __iter__(self) -> Iterator[dict[str, Batch]]:
        others = {k: iter(v) for k, v in self.loaders.items() if k != self.primary}
        for batch in self.loaders[self.primary]:
            out = {self.primary: batch}
            for name in list(others):
                try:
                    out[name] = next(others[name])
                except StopIteration:
                    others[name] = iter(self.loaders[name])
                    out[name] = next(others[name])
            yield out
