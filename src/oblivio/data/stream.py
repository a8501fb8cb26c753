"""Data larger than memory: a lazy, index-view dataset whose images are read batch by batch when a loader asks.

:class:`StreamingDataset` has the interface the rest of oblivio uses of an :class:`~oblivio.data.ImageDataset`
(``labels``, ``ids``, ``classes``, ``subset``, ``concat``, ``with_labels``, ``positions_of_ids``, ``float_images``
of a few rows, ``stats``), but it holds only an index: for every row, which *source* (your map-style torch
``Dataset``, or an in-memory ``ImageDataset``) and which position in it. Subsets, concatenations such as
``D_r ∪ D_f ∪ D_tw`` and relabelled copies are new index views; no image is read until a loader reads a batch.
Labels and ids live in memory (16 bytes a sample: 16 MB for a million images).

:class:`~oblivio.data.TensorLoader` reads a ``StreamingDataset`` with :meth:`StreamingDataset.iter_batches`: the
same sample order, batch composition, label overrides and batch augmentation as for in-memory data (so a method
gives the same numbers on both when the data are the same), while each batch's images come from ``dataset[i]``
(your transform runs on every read: random augmentations are drawn anew each epoch) in ``num_workers`` loader
processes. Every batch is read under its own seed, derived from ``(loader seed, epoch, batch number)``, which
seeds ``torch``, ``random`` and ``numpy`` while the batch's items are read: a fixed seed gives the same images
whatever the number of workers, and reading in the main process leaves the caller's random state as it was.

Build one with :func:`oblivio.data.stream_dataset` (a torch ``Dataset``, ``Subset`` or ``DataLoader``) or
:meth:`StreamingDataset.from_memory` (an ``ImageDataset``, to read it through the same path).

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from oblivio.data import TensorLoader, stream_dataset
    >>> ds = stream_dataset(TensorDataset(torch.rand(10, 1, 4, 4), torch.arange(10) % 2))
    >>> part = ds.subset([7, 2, 5])          # an index view: nothing is read
    >>> len(part), part.ids.tolist(), part.labels.tolist()
    (3, [7, 2, 5], [1, 0, 1])
    >>> [b.x.shape[0] for b in TensorLoader(ds.concat(part), batch_size=8)]
    [8, 5]
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Generator, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from .arrays import Layout
from .base import DatasetError, ImageDataset, _as_index_tensor
from .torch_data import _label, _numpy_image

__all__ = ["StreamingDataset", "batch_seed"]


# ---------------------------------------------------------------------------------------------- sources
class _TorchSource:
    """Items ``dataset[p]`` of a map-style dataset, converted to ``[C, H, W]`` ``uint8`` / ``float32`` tensors."""

    def __init__(self, dataset: Any, *, layout: Layout, name: str) -> None:
        self.dataset, self.layout, self.name = dataset, layout, name

    def read(self, positions: Sequence[int]) -> tuple[list[torch.Tensor], list[int]]:
        images, labels = [], []
        for pos in positions:
            item = self.dataset[int(pos)]
            if not isinstance(item, (tuple, list)) or len(item) < 2:
                raise DatasetError(
                    f"{self.name}: item {pos} is a {type(item).__name__}; the dataset must yield (image, label) pairs"
                )
            images.append(_item_tensor(item[0], self.layout, f"{self.name}: item {pos}"))
            labels.append(_label(item[1], self.name))
        return images, labels


def _item_tensor(img: Any, layout: Layout, what: str) -> torch.Tensor:
    """One image as ``[C, H, W]`` ``uint8`` or ``float32``, by the rules of :func:`oblivio.data.arrays._images`
    (which this follows per item, for speed: float ranges are checked per batch, in :func:`_check_range`)."""
    # (np.array copies: PIL images and read-only arrays are fine)
    t = img.detach().cpu() if isinstance(img, torch.Tensor) else torch.from_numpy(np.array(_numpy_image(img, what)))
    if t.dim() == 2:
        t = t[None]
    elif t.dim() == 3:
        channels_last = t.shape[-1] in (1, 3) and t.shape[0] not in (1, 3)
        if layout == "nhwc" or (layout == "auto" and channels_last):
            t = t.permute(2, 0, 1)
    else:
        raise DatasetError(f"{what}: images must be [H, W], [H, W, C] or [C, H, W], got shape {tuple(t.shape)}")
    if t.is_floating_point():
        return t.to(torch.float32)
    if t.dtype == torch.uint8:
        return t
    if t.dtype == torch.bool or t.is_complex():
        raise DatasetError(f"{what}: images must be uint8 or floating point in [0, 1], got dtype {t.dtype}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) > 255):
        raise DatasetError(f"{what}: integer images must lie in 0-255, found [{int(t.min())}, {int(t.max())}]")
    return t.to(torch.uint8)


def _check_range(x: torch.Tensor, rows: torch.Tensor, ids: torch.Tensor, name: str) -> None:
    """Float images must be finite and in [0, 1] (a normalising transform is the usual cause)."""
    bad = ~(torch.isfinite(x) & (x >= 0) & (x <= 1)).flatten(1).all(1)
    if bool(bad.any()):
        k = int(torch.nonzero(bad)[0])
        raise DatasetError(
            f"{name}: sample {int(ids[rows[k]])}: float images must lie in [0, 1] (and be finite), found "
            f"[{float(x[k].min())}, {float(x[k].max())}]; divide 0-255 images by 255 or pass them as uint8. If the "
            "dataset's transform normalises (Normalize(mean, std)), drop it there and put "
            "oblivio.models.Normalize(mean, std) first in the model instead"
        )


class _MemorySource:
    """Rows of an in-memory :class:`ImageDataset` (e.g. TMU's augmented twin images beside a streamed ``D_r``)."""

    def __init__(self, dataset: ImageDataset) -> None:
        self.dataset = dataset

    def read(self, positions: Sequence[int]) -> tuple[list[torch.Tensor], list[int]]:
        idx = torch.as_tensor(list(positions), dtype=torch.long)
        return list(self.dataset.images[idx].unbind(0)), self.dataset.labels[idx].tolist()


# ---------------------------------------------------------------------------------------------- seeding
def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """The seed a batch's items are read under: a hash of ``(loader seed, epoch, batch number)``, in ``[0, 2**32)``.

    Example:
        >>> batch_seed(0, 0, 0) == batch_seed(0, 0, 0) != batch_seed(0, 1, 0)
        True
    """
    words = [int(seed) % 2**32, int(seed) // 2**32 % 2**32, int(epoch) % 2**32, int(batch) % 2**32]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint32)[0])


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed ``torch``, ``random`` and ``numpy``'s global generators for a block; restore their states after it."""
    states = (torch.get_rng_state(), random.getstate(), np.random.get_state())
    torch.default_generator.manual_seed(seed)  # the CPU generator (torch.manual_seed also queues CUDA seeding)
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        random.setstate(states[1])
        np.random.set_state(states[2])


class _BatchReader(torch.utils.data.Dataset):
    """What a loader worker runs: ``reader[(seed, rows)]`` reads those rows under that seed."""

    def __init__(self, dataset: StreamingDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:  # never used for sampling (the sampler is an explicit list of keys)
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        seed, rows = key
        with _seeded(seed):
            x, labels = self.dataset._read(rows)
        if torch.utils.data.get_worker_info() is not None:
            # In a loader worker, convert to float here: the batch then reaches the main process as shared memory,
            # and the main process allocates no batch-sized buffer of its own (with glibc, one per batch between the
            # model's allocations fragments the heap: measured, the RSS grew with every batch kept).
            x = _as_float(x)
        return x, labels


def _identity(batch: Any) -> Any:
    return batch


# ---------------------------------------------------------------------------------------------- the dataset
class StreamingDataset:
    """A lazy dataset: an index over sources whose images are read when a batch is.

    Do not build it directly: use :func:`oblivio.data.stream_dataset` or :meth:`from_memory`.

    Args:
        sources: the sources (:class:`_TorchSource` / :class:`_MemorySource`).
        source_of: ``[N]`` which source each row comes from.
        position: ``[N]`` the row's index in its source.
        labels: ``[N]`` the labels a loader gives (may be overridden by :meth:`with_labels`).
        classes: class names.
        image_shape: ``(C, H, W)`` of every image (checked on every read).
        name: name in messages and reports.
        ids: ``[N]`` stable sample ids (default ``0..N-1``).
        groups: optional ``[N]`` group ids.
        item_labels: ``[N]`` the labels the sources declare (checked against every item read; default ``labels``).
        num_workers: loader processes that read batches (0: the main process).
        itemsize: bytes per pixel of the images as stored (1 for ``uint8``, 4 for float), for memory estimates.
    """

    is_streaming: ClassVar[bool] = True

    # The same definitions as the in-memory dataset's (they read only labels, ids, name and len).
    class_counts = ImageDataset.class_counts
    positions_of_ids = ImageDataset.positions_of_ids

    def __init__(
        self,
        sources: Sequence[Any],
        source_of: torch.Tensor,
        position: torch.Tensor,
        labels: torch.Tensor,
        classes: Sequence[str],
        *,
        image_shape: tuple[int, int, int],
        name: str = "dataset",
        ids: torch.Tensor | None = None,
        groups: torch.Tensor | None = None,
        item_labels: torch.Tensor | None = None,
        num_workers: int = 0,
        itemsize: int = 1,
    ) -> None:
        self.sources = list(sources)
        self.source_of = torch.as_tensor(source_of, dtype=torch.int32).reshape(-1)
        self.position = torch.as_tensor(position, dtype=torch.long).reshape(-1)
        self.labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        self.classes = tuple(str(c) for c in classes)
        c, h, w = (int(s) for s in image_shape)
        self.image_shape: tuple[int, int, int] = (c, h, w)
        self.name = name
        n = self.position.shape[0]
        self.ids = torch.arange(n, dtype=torch.long) if ids is None else torch.as_tensor(ids, dtype=torch.long)
        self.groups = None if groups is None else torch.as_tensor(groups, dtype=torch.long).reshape(-1)
        self.item_labels = self.labels if item_labels is None else torch.as_tensor(item_labels, dtype=torch.long)
        if int(num_workers) < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.num_workers = int(num_workers)
        self.itemsize = int(itemsize)
        for what, t in (("labels", self.labels), ("ids", self.ids), ("source rows", self.source_of)):
            if t.shape[0] != n:
                raise DatasetError(f"{name}: {n} samples but {t.shape[0]} {what}")
        if self.groups is not None and self.groups.shape[0] != n:
            raise DatasetError(f"{name}: {n} samples but {self.groups.shape[0]} group ids")
        if not self.classes:
            raise DatasetError(f"{name}: no class names given")
        if n and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise DatasetError(
                f"{name}: labels span [{int(self.labels.min())}, {int(self.labels.max())}] "
                f"but there are only {len(self.classes)} classes"
            )

    @classmethod
    def from_memory(cls, dataset: ImageDataset, *, num_workers: int = 0) -> StreamingDataset:
        """An in-memory :class:`ImageDataset` read through the streaming path (same rows, labels, ids, groups).

        Example:
            >>> ds = ImageDataset(torch.rand(4, 1, 2, 2), torch.tensor([0, 1, 0, 1]), ("a", "b"), ids=[9, 8, 7, 6])
            >>> StreamingDataset.from_memory(ds).subset([1]).ids.tolist()
            [8]
        """
        return cls(
            [_MemorySource(dataset)],
            torch.zeros(len(dataset), dtype=torch.int32),
            torch.arange(len(dataset)),
            dataset.labels,
            dataset.classes,
            image_shape=dataset.image_shape,
            name=dataset.name,
            ids=dataset.ids,
            groups=dataset.groups,
            num_workers=num_workers,
            itemsize=dataset.images.element_size(),
        )

    # ------------------------------------------------------------------ basic facts
    def __len__(self) -> int:
        return int(self.position.shape[0])

    @property
    def in_channels(self) -> int:
        return self.image_shape[0]

    @property
    def images(self) -> torch.Tensor:
        raise DatasetError(
            f"{self.name}: a streamed dataset holds no image tensor; read batches with a loader "
            "(oblivio.data.TensorLoader) or a few rows with float_images(indices)"
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def estimated_bytes(self) -> int:
        """Bytes its images would take in memory as one tensor (``uint8``: 1 byte a pixel, float: 4)."""
        c, h, w = self.image_shape
        return len(self) * c * h * w * self.itemsize

    def __repr__(self) -> str:
        return (
            f"StreamingDataset(name={self.name!r}, n={len(self)}, shape={self.image_shape}, "
            f"classes={self.num_classes}, sources={len(self.sources)}, num_workers={self.num_workers})"
        )

    # ------------------------------------------------------------------ index views
    def _view(self, rows: torch.Tensor | None = None, *, name: str | None = None, **changes: Any) -> StreamingDataset:
        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return t if t is None or rows is None else t[rows]

        fields: dict[str, Any] = {
            "labels": pick(self.labels),
            "ids": pick(self.ids),
            "groups": pick(self.groups),
            "item_labels": pick(self.item_labels),
            "classes": self.classes,
            "num_workers": self.num_workers,
        }
        fields.update(changes)
        return StreamingDataset(
            self.sources,
            pick(self.source_of),  # type: ignore[arg-type]
            pick(self.position),  # type: ignore[arg-type]
            fields.pop("labels"),
            fields.pop("classes"),
            image_shape=self.image_shape,
            name=name or self.name,
            itemsize=self.itemsize,
            **fields,
        )

    def subset(
        self, indices: Sequence[int] | np.ndarray | torch.Tensor, *, name: str | None = None
    ) -> StreamingDataset:
        """Rows ``indices`` (positions in *this* dataset) as a new view, keeping their ids, labels and groups."""
        idx = _as_index_tensor(indices)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= len(self)):
            raise DatasetError(f"{self.name}: subset indices out of range [0, {len(self)})")
        return self._view(idx, name=name)

    def with_labels(self, labels: torch.Tensor, *, name: str | None = None) -> StreamingDataset:
        """The same images with other labels (random or contrastive labels); reads still check the true ones."""
        labels = torch.as_tensor(labels).long().reshape(-1)
        if labels.shape[0] != len(self):
            raise DatasetError(f"{self.name}: {len(self)} samples but {labels.shape[0]} labels")
        return self._view(name=name, labels=labels)

    def replace(
        self,
        *,
        classes: Sequence[str] | None = None,
        ids: Any = None,
        name: str | None = None,
        num_workers: int | None = None,
    ) -> StreamingDataset:
        """The same rows with other class names, sample ids, name or worker count."""
        changes: dict[str, Any] = {}
        if classes is not None:
            changes["classes"] = tuple(classes)
        if ids is not None:
            changes["ids"] = torch.as_tensor(np.asarray(ids), dtype=torch.long).reshape(-1)
        if num_workers is not None:
            changes["num_workers"] = int(num_workers)
        return self._view(name=name, **changes)

    def concat(self, other: StreamingDataset | ImageDataset, *, name: str | None = None) -> StreamingDataset:
        """This dataset followed by ``other`` (streamed or in memory; same classes and image shape), lazily."""
        if not getattr(other, "is_streaming", False):
            other = StreamingDataset.from_memory(other, num_workers=self.num_workers)  # type: ignore[arg-type]
        assert isinstance(other, StreamingDataset)
        if other.classes != self.classes or other.image_shape != self.image_shape:
            raise DatasetError(f"cannot concatenate {self.name} and {other.name}: classes or image shapes differ")
        sources = list(self.sources)
        remap = []
        for src in other.sources:  # a source both sides share (two Subsets of one Dataset) stays one source
            found = next((i for i, s in enumerate(sources) if s is src), None)
            if found is None:
                sources.append(src)
                found = len(sources) - 1
            remap.append(found)
        other_sources = torch.as_tensor(remap, dtype=torch.int32)[other.source_of.long()]
        groups = None
        if self.groups is not None and other.groups is not None:
            groups = torch.cat([self.groups, other.groups])
        return StreamingDataset(
            sources,
            torch.cat([self.source_of, other_sources]),
            torch.cat([self.position, other.position]),
            torch.cat([self.labels, other.labels]),
            self.classes,
            image_shape=self.image_shape,
            name=name or self.name,
            ids=torch.cat([self.ids, other.ids]),
            groups=groups,
            item_labels=torch.cat([self.item_labels, other.item_labels]),
            num_workers=max(self.num_workers, other.num_workers),
            itemsize=max(self.itemsize, other.itemsize),
        )

    def concat_after(self, first: ImageDataset, *, name: str | None = None) -> StreamingDataset:
        """``first`` (in memory) followed by this dataset: what ``ImageDataset.concat`` returns for a streamed one."""
        return StreamingDataset.from_memory(first, num_workers=self.num_workers).concat(self, name=name or first.name)

    # ------------------------------------------------------------------ reading
    def _read(self, rows: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (``uint8`` when every item is, else ``float32`` in [0, 1]) and declared item labels of ``rows``."""
        rows = torch.as_tensor(rows, dtype=torch.long).reshape(-1)
        src, pos = self.source_of[rows], self.position[rows]
        images: list[torch.Tensor | None] = [None] * rows.numel()
        labels = torch.empty(rows.numel(), dtype=torch.long)
        for s in torch.unique(src).tolist():
            where = torch.nonzero(src == s).squeeze(1)
            imgs, labs = self.sources[s].read(pos[where].tolist())
            for k, img, lab in zip(where.tolist(), imgs, labs, strict=True):
                if tuple(img.shape) != self.image_shape:
                    raise DatasetError(
                        f"{self.name}: sample {int(self.ids[rows[k]])} has image shape {tuple(img.shape)} but the "
                        f"dataset's is {self.image_shape}; resize the images to one size in the dataset's transform"
                    )
                images[k] = img
                labels[k] = lab
        if not images:
            return torch.zeros((0, *self.image_shape)), labels
        if all(img.dtype == torch.uint8 for img in images):  # type: ignore[union-attr]
            return torch.stack(images), labels  # type: ignore[arg-type]
        x = torch.stack([_as_float(img) for img in images])  # type: ignore[arg-type]
        _check_range(x, rows, self.ids, self.name)
        return x, labels

    def _check_labels(self, rows: torch.Tensor, read: torch.Tensor) -> None:
        expected = self.item_labels[rows]
        bad = torch.nonzero(expected != read).squeeze(1)
        if bad.numel():
            k = int(bad[0])
            raise DatasetError(
                f"{self.name}: sample {int(self.ids[rows[k]])} was read with label {int(read[k])} but the dataset "
                f"declared {int(expected[k])} (its `targets` / labels= do not match its items, or its labels are "
                "random); pass labels that match the items"
            )

    def float_images(self, indices: torch.Tensor | Sequence[int] | None = None, *, seed: int = 0) -> torch.Tensor:
        """Images of rows ``indices`` (default: all of them, which reads the whole dataset) as float32 in [0, 1]."""
        rows = torch.arange(len(self)) if indices is None else _as_index_tensor(indices)
        with _seeded(batch_seed(seed, 0, 0)):
            x, read = self._read(rows)
        self._check_labels(rows, read)
        return _as_float(x)

    def iter_batches(
        self, batches: Sequence[torch.Tensor], *, seed: int = 0, epoch: int = 0
    ) -> Generator[torch.Tensor, None, None]:
        """The images of each batch of rows in ``batches``, in order (``uint8`` or ``float32``, on the CPU).

        Batch ``b`` is read under :func:`batch_seed` ``(seed, epoch, b)``, in ``num_workers`` loader processes when
        there are at least twice as many batches as workers (else in this process: starting workers for a
        couple of batches costs more than it saves). The result does not depend on the worker count. Every item's
        label is checked against the label the dataset declared for it.
        """
        for rows, x, read in self._iter_read(batches, seed=seed, epoch=epoch):
            self._check_labels(rows, read)
            yield x

    def _iter_read(
        self, batches: Sequence[torch.Tensor], *, seed: int, epoch: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(rows, images, labels the items carry)`` per batch (see :meth:`iter_batches`), unchecked."""
        # rows as NumPy arrays: they reach a worker pickled by value (a tensor would be moved to shared memory)
        keys = [(batch_seed(seed, epoch, b), np.asarray(rows, dtype=np.int64)) for b, rows in enumerate(batches)]
        workers = self.num_workers if len(keys) >= 2 * self.num_workers else 0
        if workers == 0:
            reader = _BatchReader(self)
            for key in keys:
                yield (torch.from_numpy(key[1]), *reader[key])
            return
        loader = torch.utils.data.DataLoader(
            _BatchReader(self),
            batch_size=None,
            sampler=keys,
            num_workers=workers,
            collate_fn=_identity,
            generator=torch.Generator().manual_seed(0),  # its worker seeds are unused (each batch has its own)
        )  # and drawing them from the global generator would change the caller's random state
        it = iter(loader)
        try:
            for key, (x, read) in zip(keys, it, strict=True):
                yield torch.from_numpy(key[1]), x, read
        finally:  # an epoch left early (a stop rule, a cycled stream) must not leave worker processes behind
            shutdown = getattr(it, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()

    def stats(self, *, batch_size: int = 512) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std in [0, 1] units, in one streamed pass (float64 sums; ``std`` is unbiased)."""
        n_pix = len(self) * self.image_shape[1] * self.image_shape[2]
        if n_pix < 2:
            raise DatasetError(f"{self.name}: too few pixels for statistics")
        total = torch.zeros(self.image_shape[0], dtype=torch.float64)
        squares = torch.zeros_like(total)
        batches = list(torch.arange(len(self)).split(batch_size))
        for x in self.iter_batches(batches):
            x = _as_float(x).double()
            total += x.sum(dim=(0, 2, 3))
            squares += (x * x).sum(dim=(0, 2, 3))
        mean = total / n_pix
        var = ((squares - n_pix * mean * mean) / (n_pix - 1)).clamp_min(0.0)
        std = var.sqrt().clamp_min(1e-6)
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
