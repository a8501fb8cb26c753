"""The in-memory image dataset every part of oblivio passes around.

Images live in memory as one tensor (``uint8`` 0-255 or ``float32`` in [0, 1]), laid out ``[N, C, H, W]``,
with integer labels. Models always receive float images in [0, 1]; normalisation happens inside the model.
Every sample keeps a stable ``id`` (its index in the split it was loaded from), so subsets, forget requests
and the ledger all talk about the same images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch


class DatasetError(ValueError):
    """A dataset is malformed, missing, or does not match what it is used with."""


def _as_index_tensor(indices: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.long).reshape(-1)
    return idx


@dataclass
class ImageDataset:
    """Images, labels and optional groups, in memory.

    Args:
        images: ``[N, C, H, W]`` tensor, ``uint8`` (0-255) or floating point in [0, 1].
        labels: ``[N]`` integer class labels in ``[0, len(classes))``.
        classes: class names; ``len(classes)`` is the number of classes.
        name: a short name used in reports (``"fashion-mnist/train"``).
        groups: optional ``[N]`` integer group ids (identity, patient...) for group forget requests.
        ids: optional ``[N]`` stable sample ids; defaults to ``arange(N)``.

    Example:
        >>> import torch
        >>> ds = ImageDataset(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]), ("a", "b"))
        >>> len(ds), ds.num_classes, ds.image_shape
        (4, 2, (1, 8, 8))
        >>> ds.subset([1, 3]).ids.tolist()
        [1, 3]
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str = "dataset"
    groups: torch.Tensor | None = None
    ids: torch.Tensor | None = field(default=None)

    def __post_init__(self) -> None:
        self.classes = tuple(str(c) for c in self.classes)
        if not isinstance(self.images, torch.Tensor):
            self.images = torch.as_tensor(np.asarray(self.images))
        self.labels = (
            torch.as_tensor(np.asarray(self.labels) if not isinstance(self.labels, torch.Tensor) else self.labels)
            .long()
            .reshape(-1)
        )
        if self.images.dim() == 3:  # [N, H, W] -> [N, 1, H, W]
            self.images = self.images.unsqueeze(1)
        if self.images.dim() != 4:
            raise DatasetError(f"{self.name}: images must be [N, C, H, W], got shape {tuple(self.images.shape)}")
        n = self.images.shape[0]
        if self.labels.shape[0] != n:
            raise DatasetError(f"{self.name}: {n} images but {self.labels.shape[0]} labels")
        if not self.classes:
            raise DatasetError(f"{self.name}: no class names given")
        if n and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise DatasetError(
                f"{self.name}: labels span [{int(self.labels.min())}, {int(self.labels.max())}] "
                f"but there are only {len(self.classes)} classes"
            )
        if self.images.dtype != torch.uint8 and not self.images.is_floating_point():
            raise DatasetError(f"{self.name}: images must be uint8 or floating point, got {self.images.dtype}")
        if self.ids is None:
            self.ids = torch.arange(n, dtype=torch.long)
        else:
            self.ids = torch.as_tensor(np.asarray(self.ids), dtype=torch.long).reshape(-1)
            if self.ids.shape[0] != n:
                raise DatasetError(f"{self.name}: {n} images but {self.ids.shape[0]} ids")
        if self.groups is not None:
            self.groups = torch.as_tensor(np.asarray(self.groups), dtype=torch.long).reshape(-1)
            if self.groups.shape[0] != n:
                raise DatasetError(f"{self.name}: {n} images but {self.groups.shape[0]} group ids")

    # ------------------------------------------------------------------ basic facts
    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def in_channels(self) -> int:
        return int(self.images.shape[1])

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.labels, minlength=self.num_classes)

    # ------------------------------------------------------------------ slicing
    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor, *, name: str | None = None) -> ImageDataset:
        """Rows ``indices`` (positions in *this* dataset), keeping their ids, labels and groups."""
        idx = _as_index_tensor(indices)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= len(self)):
            raise DatasetError(f"{self.name}: subset indices out of range [0, {len(self)})")
        return ImageDataset(
            images=self.images[idx],
            labels=self.labels[idx],
            classes=self.classes,
            name=name or self.name,
            groups=None if self.groups is None else self.groups[idx],
            ids=self.ids[idx],  # type: ignore[index]
        )

    def with_labels(self, labels: torch.Tensor, *, name: str | None = None) -> ImageDataset:
        """The same images with other labels (e.g. random or contrastive labels)."""
        return ImageDataset(self.images, labels, self.classes, name or self.name, self.groups, self.ids)

    def concat(self, other: ImageDataset, *, name: str | None = None) -> ImageDataset:
        """This dataset followed by ``other`` (same classes and image shape); a lazy view when ``other`` is streamed."""
        if getattr(other, "is_streaming", False):  # a StreamingDataset (oblivio.data.stream): nothing is copied
            return other.concat_after(self, name=name)  # type: ignore[attr-defined]
        if other.classes != self.classes or other.image_shape != self.image_shape:
            raise DatasetError(f"cannot concatenate {self.name} and {other.name}: classes or image shapes differ")
        images = (
            torch.cat([self.float_images(), other.float_images()])
            if (self.images.dtype != other.images.dtype)
            else torch.cat([self.images, other.images])
        )
        groups = None
        if self.groups is not None and other.groups is not None:
            groups = torch.cat([self.groups, other.groups])
        return ImageDataset(
            images,
            torch.cat([self.labels, other.labels]),
            self.classes,
            name or self.name,
            groups,
            torch.cat([self.ids, other.ids]),  # type: ignore[list-item]
        )

    def float_images(self, indices: torch.Tensor | None = None) -> torch.Tensor:
        """Images as float32 in [0, 1] (all, or rows ``indices``)."""
        x = self.images if indices is None else self.images[indices]
        if x.dtype == torch.uint8:
            return x.float().div_(255.0)
        return x.float()

    def positions_of_ids(self, ids: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """Positions in this dataset of the samples with the given ids (error on unknown ids)."""
        want = _as_index_tensor(ids)
        order = torch.argsort(self.ids)  # type: ignore[arg-type]
        sorted_ids = self.ids[order]  # type: ignore[index]
        pos = torch.searchsorted(sorted_ids, want)
        pos = pos.clamp(max=max(len(self) - 1, 0))
        found = sorted_ids[pos] == want if len(self) else torch.zeros_like(want, dtype=torch.bool)
        if not bool(found.all()):
            missing = want[~found][:10].tolist()
            raise DatasetError(f"{self.name}: unknown sample ids {missing}")
        return order[pos]

    def stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the images in [0, 1] units (for the model's normalisation layer)."""
        x = self.float_images()
        dims = (0, 2, 3)
        mean = x.mean(dim=dims)
        std = x.std(dim=dims).clamp_min(1e-6)
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, n={len(self)}, shape={self.image_shape}, "
            f"classes={self.num_classes}, dtype={self.images.dtype})"
        )


@dataclass
class DatasetSplits:
    """A dataset's train and test splits, as loaded.

    ``train`` is ``D`` (what the original model sees); ``test`` is the official held-out split.
    """

    train: ImageDataset
    test: ImageDataset
    name: str = "dataset"
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.train) == 0:
            raise DatasetError(f"{self.name}: the training split holds 0 images; nothing can be trained or forgotten")
        if self.train.classes != self.test.classes:
            raise DatasetError(f"{self.name}: train and test class lists differ")
        if self.train.image_shape != self.test.image_shape:
            raise DatasetError(
                f"{self.name}: train images are {self.train.image_shape} but test images are {self.test.image_shape}"
            )

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.train.image_shape
