"""Torch data in: a map-style ``Dataset`` of ``(image, label)``, a ``DataLoader`` over one, or arrays.

oblivio keeps every dataset in memory as one tensor (:class:`~oblivio.data.ImageDataset`), so
:func:`as_image_dataset` reads the samples once, in index order, and stacks them. Images may be tensors, NumPy
arrays or PIL images, ``[C, H, W]``, ``[H, W, C]`` or ``[H, W]``; ``uint8`` (0-255) or floating point in [0, 1]
(normalise inside the model, not in the transform: prepend :class:`oblivio.models.Normalize`).

Sample ids name a training image across forget requests, subsets and the ledger. They come, in this order, from
the ``ids=`` argument (a sequence, or a function of the dataset index), from a ``torch.utils.data.Subset`` (its
indices into the parent dataset, so two subsets of one dataset never share an id), from a ``DataLoader``'s
``SubsetRandomSampler``, or else are the positions ``0..N-1``.

Example:
    >>> import torch
    >>> from torch.utils.data import DataLoader, Subset, TensorDataset
    >>> from oblivio.data import as_image_dataset
    >>> full = TensorDataset(torch.rand(10, 1, 8, 8), torch.arange(10) % 2)
    >>> ds = as_image_dataset(Subset(full, [7, 2, 5]))
    >>> len(ds), ds.ids.tolist(), ds.num_classes
    (3, [7, 2, 5], 2)
    >>> as_image_dataset(DataLoader(full, batch_size=4, shuffle=True)).ids.tolist() == list(range(10))
    True
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import (
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
)

from .arrays import Layout, _images, _labels
from .base import DatasetError, ImageDataset

log = logging.getLogger("oblivio.data")

IdSpec = "Sequence[int] | np.ndarray | torch.Tensor | Callable[[int], int] | None"

__all__ = ["as_image_dataset"]


def _numpy_image(img: Any, what: str) -> np.ndarray:
    if isinstance(img, torch.Tensor):
        return img.detach().cpu().numpy()
    if isinstance(img, np.ndarray):
        return img
    if hasattr(img, "mode") and hasattr(img, "size"):  # a PIL image: HW or HWC uint8
        return np.asarray(img)
    raise DatasetError(f"{what}: images must be tensors, NumPy arrays or PIL images, got {type(img).__name__}")


def _label(value: Any, what: str) -> int:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        if (value.size if isinstance(value, np.ndarray) else value.numel()) != 1:
            raise DatasetError(
                f"{what}: each label must be one class index, got shape {tuple(value.shape)} "
                "(one-hot labels: pass their argmax)"
            )
        value = value.reshape(-1)[0].item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise DatasetError(f"{what}: labels must be integer class indices, got {value!r}")
    return int(value)


def _base_and_indices(data: Any) -> tuple[Any, list[int] | None]:
    """The innermost dataset and, for (nested) ``Subset``s, the indices into it."""
    indices: list[int] | None = None
    while isinstance(data, Subset):
        idx = [int(i) for i in data.indices]
        indices = idx if indices is None else [idx[i] for i in indices]
        data = data.dataset
    return data, indices


def _loader_dataset(loader: DataLoader, what: str) -> tuple[Dataset, list[int] | None]:
    """The dataset of a loader and the indices its sampler covers (``None`` = all of them)."""
    ds, sampler = loader.dataset, loader.sampler
    if isinstance(ds, IterableDataset):
        raise DatasetError(
            f"{what}: a DataLoader over an IterableDataset cannot be read by index; pass a map-style "
            "Dataset (with __len__ and __getitem__) or arrays"
        )
    if isinstance(sampler, SubsetRandomSampler):
        return ds, sorted(int(i) for i in sampler.indices)
    if isinstance(sampler, SequentialSampler) or (
        isinstance(sampler, RandomSampler) and not sampler.replacement and len(sampler) == len(ds)
    ):
        return ds, None
    raise DatasetError(
        f"{what}: the DataLoader's sampler {type(sampler).__name__} may repeat or skip samples; "
        "pass its dataset (or a Subset of it) instead"
    )


def _read_items(data: Any, positions: Sequence[int], what: str) -> tuple[list[np.ndarray], list[int]]:
    if len(positions) > 20000:
        log.info("%s: reading %d samples into memory", what, len(positions))
    images, labels = [], []
    first_shape = None
    for pos in positions:
        item = data[pos]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DatasetError(
                f"{what}: item {pos} is a {type(item).__name__}; the dataset must yield (image, label) pairs"
            )
        img = _numpy_image(item[0], what)
        if first_shape is None:
            first_shape = img.shape
        elif img.shape != first_shape:
            raise DatasetError(
                f"{what}: item {pos} has image shape {img.shape} but the first has {first_shape}; "
                "resize the images to one size in the dataset's transform"
            )
        images.append(img)
        labels.append(_label(item[1], what))
    _check_deterministic(data, positions, images, what)
    return images, labels


RANDOM_TRANSFORM_CHECKS = 8
"""Items read a second time (evenly spread) to detect a random transform before it is frozen into memory."""


def _check_deterministic(data: Any, positions: Sequence[int], images: list[np.ndarray], what: str) -> None:
    """Refuse a dataset whose items change between reads (a random augmentation in its transform).

    Reading into memory samples such a transform once per image and freezes it: every epoch would then see the same
    "augmented" copy, and forget / test images would be scored on a random crop. Two reads of the same items are
    compared (a flip with p = 0.5 escapes ``RANDOM_TRANSFORM_CHECKS`` items with probability 0.5 ** 8 = 0.4%).

    Raises:
        DatasetError: an item read twice gives two different images (the message names the fix).
    """
    n = len(positions)
    for k in sorted({round(i * (n - 1) / max(1, RANDOM_TRANSFORM_CHECKS - 1)) for i in range(RANDOM_TRANSFORM_CHECKS)}):
        if not 0 <= k < n:
            continue
        again = _numpy_image(data[positions[k]][0], what)
        if again.shape != images[k].shape or not np.array_equal(again, images[k], equal_nan=True):
            raise DatasetError(
                f"{what}: item {positions[k]} read twice gave two different images: the dataset's transform is "
                "random (an augmentation such as a random crop or flip), and reading the data into memory would "
                "freeze one random draw per image. Stream it instead (stream=True, --stream on: the transform runs "
                "on every read), or pass this data with its deterministic (test-time) transform and augment while "
                "training with a recipe's augment (Recipe(augment='crop4+flip')) or inside your training function "
                "(oblivio.training.register_recipe)"
            )


def _class_names(data: Any) -> tuple[str, ...] | None:
    names = getattr(data, "classes", None)
    if isinstance(names, (list, tuple)) and names and all(isinstance(c, (str, int)) for c in names):
        return tuple(str(c) for c in names)
    return None


def _convert(
    data: Any, *, classes: Sequence[str] | None, ids: Any, name: str, layout: Layout
) -> tuple[ImageDataset, bool]:
    """``(dataset, positional)``: ``positional`` is True when the ids are mere positions ``0..N-1``."""
    if isinstance(data, ImageDataset):
        if ids is None and classes is None:
            return data, False
        return ImageDataset(
            data.images,
            data.labels,
            tuple(classes) if classes is not None else data.classes,
            data.name,
            data.groups,
            data.ids if ids is None else _resolve_ids(ids, range(len(data)), name),
        ), False
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (tuple, list)):
        x = _images(data[0], layout, name)
        y = _labels(data[1], x.shape[0], name)
        positions: Sequence[int] = range(x.shape[0])
        return _build(x, y, classes, None, ids, positions, name, subset_ids=None), ids is None
    if isinstance(data, DataLoader):
        ds, sampled = _loader_dataset(data, name)
        base, sub = _base_and_indices(ds)
        positions = sampled if sampled is not None else range(len(ds))
        subset_ids = (
            [sub[p] for p in positions] if sub is not None else (list(positions) if sampled is not None else None)
        )
        images, labels = _read_items(ds, positions, name)
        return (
            _build(
                _stack(images, layout, name),
                torch.tensor(labels),
                classes,
                _class_names(base),
                ids,
                positions,
                name,
                subset_ids=subset_ids,
            ),
            ids is None and subset_ids is None,
        )
    if isinstance(data, IterableDataset):
        raise DatasetError(
            f"{name}: an IterableDataset cannot be read by index; pass a map-style Dataset "
            "(with __len__ and __getitem__) or arrays"
        )
    if isinstance(data, Dataset) or (
        hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, (str, bytes, dict))
    ):
        base, sub = _base_and_indices(data)
        positions = range(len(data))
        images, labels = _read_items(data, positions, name)
        return (
            _build(
                _stack(images, layout, name),
                torch.tensor(labels),
                classes,
                _class_names(base),
                ids,
                positions,
                name,
                subset_ids=sub,
            ),
            ids is None and sub is None,
        )
    raise DatasetError(
        f"{name}: expected an ImageDataset, a map-style torch Dataset of (image, label), a "
        f"DataLoader over one, or an (images, labels) pair of arrays; got {type(data).__name__}"
    )


def _stack(images: list[np.ndarray], layout: Layout, name: str) -> torch.Tensor:
    if not images:
        raise DatasetError(f"{name}: the dataset is empty")
    try:
        return _images(np.stack(images), layout, name)
    except DatasetError as exc:
        if "[0, 1]" not in str(exc):
            raise
        raise DatasetError(
            f"{exc}. If the dataset's transform normalises (Normalize(mean, std)), drop it there and "
            "put oblivio.models.Normalize(mean, std) first in the model instead"
        ) from None


def _resolve_ids(ids: Any, positions: Sequence[int], name: str) -> torch.Tensor:
    if callable(ids):
        try:
            values = [int(ids(p)) for p in positions]
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{name}: the sample-id function must map a dataset index to an integer: {exc}") from exc
    else:
        values = np.asarray(ids.detach().cpu() if isinstance(ids, torch.Tensor) else ids).reshape(-1).tolist()
    out = torch.as_tensor(values, dtype=torch.long)
    if out.numel() != len(positions):
        raise DatasetError(f"{name}: {len(positions)} samples but {out.numel()} ids")
    if torch.unique(out).numel() != out.numel():
        raise DatasetError(f"{name}: sample ids must be unique (a forget request names images by id)")
    return out


def _build(
    x: torch.Tensor,
    y: torch.Tensor,
    classes: Sequence[str] | None,
    found: tuple[str, ...] | None,
    ids: Any,
    positions: Sequence[int],
    name: str,
    *,
    subset_ids: list[int] | None,
) -> ImageDataset:
    if classes is None:
        classes = found or tuple(str(i) for i in range(int(y.max()) + 1 if y.numel() else 1))
    if ids is not None:
        id_tensor = _resolve_ids(ids, positions, name)
    elif subset_ids is not None:
        id_tensor = torch.as_tensor(subset_ids, dtype=torch.long)
    else:
        id_tensor = None
    return ImageDataset(x, y, tuple(classes), name=name, ids=id_tensor)


def as_image_dataset(
    data: Any,
    *,
    classes: Sequence[str] | None = None,
    ids: IdSpec = None,
    name: str = "data",
    layout: Layout = "auto",
) -> ImageDataset:
    """Any supported data in, an in-memory :class:`ImageDataset` out.

    Args:
        data: an ``ImageDataset`` (returned as is unless ``classes``/``ids`` change it); a map-style torch
            ``Dataset`` whose items are ``(image, label, ...)``; a ``DataLoader`` over one (its batching and
            shuffling are ignored; a ``SubsetRandomSampler`` selects its indices); or an ``(images, labels)`` pair
            of arrays or tensors (layouts as in :func:`oblivio.data.from_arrays`).
        classes: class names (default: the dataset's ``classes`` attribute when it has one, else ``"0"`` to
            ``"K-1"`` with ``K`` the largest label + 1).
        ids: stable sample ids: a sequence (one per sample, in order) or a function ``index -> id`` of the dataset
            index. Default: a ``Subset``'s parent indices, else positions ``0..N-1``.
        name: the dataset's name in messages and reports.
        layout: image layout of array data: ``"auto"``, ``"nchw"`` or ``"nhwc"``.

    Returns:
        The samples as one ``ImageDataset`` (``uint8`` images stay ``uint8``, float ones become ``float32``).

    Raises:
        DatasetError: items are not ``(image, label)`` pairs, images differ in shape, float pixels leave [0, 1],
            labels are not class indices, ids are not unique, or the type is not supported.

    Example:
        >>> import numpy as np
        >>> ds = as_image_dataset((np.zeros((4, 8, 8, 3), np.uint8), [0, 1, 1, 0]), ids=lambda i: 100 + i)
        >>> ds.image_shape, ds.ids.tolist()
        ((3, 8, 8), [100, 101, 102, 103])
    """
    if layout not in ("auto", "nchw", "nhwc"):
        raise ValueError(f"layout must be 'auto', 'nchw' or 'nhwc', got {layout!r}")
    return _convert(data, classes=classes, ids=ids, name=name, layout=layout)[0]
