"""Datasets: loaders into memory, streamed datasets for data larger than memory, and the batched loader.

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
from .stream import StreamingDataset
from .stream_intake import (
    StreamDecision,
    TorchSplits,
    decide_streaming,
    default_memory_budget,
    estimate_bytes,
    parse_bytes,
    stream_dataset,
)
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


FILE_OPTIONS = ("root", "path")
"""The loader options the command line's ``--data-root`` sets (``path`` for ``npz``, ``root`` for the others)."""


def load_dataset(name: str, /, **kwargs: Any) -> DatasetSplits:
    """Load a registered dataset by name (``list_datasets()`` shows them).

    A loader that returns :class:`TorchSplits` (torch ``Dataset`` s) is resolved here with the defaults: streamed
    when larger than the memory budget (:func:`decide_streaming`), else read into memory. ``Experiment`` resolves
    it with its own ``stream`` / ``memory_budget`` / ``num_workers``.

    Raises:
        DatasetError: a required option is missing (``cifar10`` without its folder: ``--data-root``) or an option
            is unknown, before the loader runs; or the loader's own checks fail.
    """
    check_dataset_options(name, kwargs)
    splits = DATASETS.create(name, **kwargs)
    return splits.resolve() if isinstance(splits, TorchSplits) else splits


def check_dataset_options(name: str, options: dict[str, Any]) -> None:
    """Refuse a missing or unknown loader option before the loader runs (``cifar10`` without ``--data-root``).

    Raises:
        DatasetError: naming the option and how to give it.
    """
    missing, unknown, valid = DATASETS.option_problems(name, options)
    if missing:
        if set(missing) <= set(FILE_OPTIONS):
            raise DatasetError(
                f"dataset {name!r} is read from files: give their folder (or file) with --data-root PATH "
                f"(Python: dataset_options={{{missing[0]!r}: PATH}}); oblivio never downloads data"
            )
        raise DatasetError(
            f"dataset {name!r} needs the option(s) {', '.join(missing)}, which the command line cannot give"
            + (
                " (in-memory arrays): use oblivio.data.from_arrays in Python, or save the arrays with numpy.savez "
                "and use --dataset npz --data-root FILE.npz"
                if name.strip().lower() == "arrays"
                else f"; set them in ExperimentConfig(dataset_options={{...}}) (options: {', '.join(valid)})"
            )
        )
    if unknown:
        raise DatasetError(
            f"dataset {name!r} has no option(s) {', '.join(unknown)}; its options: {', '.join(valid) or '(none)'}"
        )


def list_datasets() -> list[str]:
    return DATASETS.names()


__all__ = [
    "DATASETS",
    "check_dataset_options",
    "StreamDecision",
    "StreamingDataset",
    "TorchSplits",
    "decide_streaming",
    "default_memory_budget",
    "estimate_bytes",
    "parse_bytes",
    "stream_dataset",
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
