"""Datasets: loaders into memory, and the batched in-memory loader.

Every loader returns :class:`DatasetSplits` (train = ``D``, test = ``D_test``) of :class:`ImageDataset`.

Example:
    >>> from oblivio.data import load_dataset
    >>> splits = load_dataset("digits")
    >>> splits.num_classes, splits.image_shape
    (10, (1, 8, 8))
"""

from __future__ import annotations

from typing import Any

from ..registry import Registry
from .arrays import from_arrays, load_npz
from .base import DatasetError, DatasetSplits, ImageDataset
from .cifar import load_cifar10, load_cifar100
from .digits import load_digits_dataset
from .folder import load_image_folder
from .identities import load_fmnist_identities
from .idx import load_fashion_mnist, load_idx_dataset, read_idx, write_idx
from .loader import Batch, TensorLoader, ZipLoader, stratified_sample
from .svhn import load_svhn
from .torch_data import as_image_dataset
from .transforms import Augment

DATASETS: Registry = Registry("dataset")
DATASETS.register("fashion-mnist")(load_fashion_mnist)
DATASETS.register("digits")(load_digits_dataset)
DATASETS.register("mnist-idx")(load_idx_dataset)
DATASETS.register("cifar10")(load_cifar10)
DATASETS.register("cifar100")(load_cifar100)
DATASETS.register("svhn")(load_svhn)
DATASETS.register("image-folder")(load_image_folder)
DATASETS.register("npz")(load_npz)
DATASETS.register("arrays")(from_arrays)
DATASETS.register("fmnist-identities")(load_fmnist_identities)


def register_dataset(name: str, *, overwrite: bool = False):
    """Decorator registering a loader ``f(**options) -> DatasetSplits`` under ``name``.

    A registered dataset is reachable from every command (``--dataset NAME``, with ``--import MODULE`` naming the
    module that registers it) and from presets and configs. See docs/own-model-and-data.md.

    Example:
        >>> import numpy as np
        >>> from oblivio.data import from_arrays, load_dataset, register_dataset
        >>> @register_dataset("doc-toy")
        ... def toy(n: int = 8):
        ...     x = np.zeros((n, 1, 8, 8), np.uint8)
        ...     return from_arrays(x, np.arange(n) % 2, x[:2], [0, 1], name="doc-toy")
        >>> load_dataset("doc-toy", n=4).train.image_shape
        (1, 8, 8)
        >>> _ = DATASETS._entries.pop("doc-toy")
    """
    return DATASETS.register(name, overwrite=overwrite)


def load_dataset(name: str, /, **kwargs: Any) -> DatasetSplits:
    """Load a registered dataset by name (``list_datasets()`` shows them)."""
    return DATASETS.create(name, **kwargs)


def list_datasets() -> list[str]:
    return DATASETS.names()


__all__ = [
    "DATASETS",
    "Augment",
    "as_image_dataset",
    "register_dataset",
    "Batch",
    "ZipLoader",
    "DatasetError",
    "DatasetSplits",
    "ImageDataset",
    "TensorLoader",
    "list_datasets",
    "load_dataset",
    "load_digits_dataset",
    "load_fashion_mnist",
    "load_idx_dataset",
    "read_idx",
    "stratified_sample",
    "write_idx",
    # file and array loaders
    "from_arrays",
    "load_cifar10",
    "load_cifar100",
    "load_fmnist_identities",
    "load_image_folder",
    "load_npz",
    "load_svhn",
]
