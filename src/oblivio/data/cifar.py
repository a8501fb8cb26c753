"""CIFAR-10 and CIFAR-100 from the "python version" pickle batches, read with a restricted unpickler.

The archives from https://www.cs.toronto.edu/~kriz/cifar.html extract to ``cifar-10-batches-py/``
(``data_batch_1`` ... ``data_batch_5``, ``test_batch``, ``batches.meta``) and ``cifar-100-python/``
(``train``, ``test``, ``meta``). Each batch is a pickled dict with bytes keys; ``b"data"`` is ``uint8``
``[N, 3072]`` where each row holds the red, then green, then blue 32x32 plane, row-major.

Pickle can run arbitrary code while loading, so the files are read by :class:`_RestrictedUnpickler`, which
only resolves the few globals a CIFAR batch actually needs (numpy array reconstruction, ``_codecs.encode``
for bytes written by Python 3 at protocol 2, and plain builtin containers) and refuses everything else.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .base import DatasetError, DatasetSplits, ImageDataset

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR100_FOLDER = "cifar-100-python"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))

_BUILTINS_ALLOWED = frozenset(
    {
        "set",
        "frozenset",
        "list",
        "dict",
        "tuple",
        "bytes",
        "bytearray",
        "str",
        "int",
        "float",
        "complex",
        "bool",
    }
)
# numpy moved numpy.core to numpy._core in 2.0; pickles name either, so both resolve to whichever exists.
_NUMPY_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds dicts, lists, bytes and numpy arrays, and nothing that could run code."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name in _BUILTINS_ALLOWED:
            return getattr(importlib.import_module("builtins"), name)
        if (module, name) == ("_codecs", "encode"):
            import _codecs

            return _codecs.encode
        if (module, name) in _NUMPY_ALLOWED:
            candidates = [module.replace("numpy.core", "numpy._core"), module.replace("numpy._core", "numpy.core")]
            for candidate in dict.fromkeys(candidates):
                try:
                    return getattr(importlib.import_module(candidate), name)
                except (ImportError, AttributeError):
                    continue
        raise pickle.UnpicklingError(
            f"refusing global {module}.{name}: a CIFAR batch only needs numpy arrays, lists, dicts and bytes, "
            "so this file is either not a CIFAR batch or was crafted to run code when loaded"
        )


def _unpickle(path: Path) -> dict:
    """Load one CIFAR pickle safely; every failure becomes a :class:`DatasetError` naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DatasetError(f"{path}: not loaded: {exc}") from exc
    except Exception as exc:  # truncated or garbled pickles raise EOFError, ValueError, TypeError, KeyError...
        raise DatasetError(f"{path}: corrupt or truncated pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _get(batch: dict, key: str, path: Path) -> Any:
    """``batch[b"key"]`` (as written by the original Python 2 pickles) or ``batch["key"]``."""
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    keys = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in batch)
    raise DatasetError(f"{path}: no {key!r} entry (found {keys})")


def _names(values: Any, path: Path, key: str) -> tuple[str, ...]:
    if not isinstance(values, (list, tuple)) or not values:
        raise DatasetError(f"{path}: {key!r} must be a non-empty list of names")
    return tuple(v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values)


def _images_labels(batch: dict, path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``data`` ([N, 3072] R,G,B planes) into ``[N, 3, 32, 32]`` and check the labels match."""
    data = _get(batch, "data", path)
    if not isinstance(data, np.ndarray):
        raise DatasetError(f"{path}: 'data' must be a numpy array, got {type(data).__name__}")
    if data.dtype != np.uint8:
        raise DatasetError(f"{path}: 'data' must be uint8, got {data.dtype}")
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(f"{path}: 'data' must be [N, 3072] (three 32x32 planes per row), got {data.shape}")
    try:
        raw = np.asarray(_get(batch, label_key, path)).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: {label_key!r} is not a list of integers ({exc})") from exc
    # Class indices only: a cast to int64 would truncate 0.5 -> 0 and 2.9 -> 2 without a word.
    if raw.dtype.kind == "f" and raw.size and np.all(np.isfinite(raw)) and np.array_equal(raw, np.round(raw)):
        raw = raw.astype(np.int64)  # whole numbers stored as floats (1.0): the same class indices, as idx allows
    if raw.dtype.kind not in "iu" and raw.size:
        bad = raw[:5].tolist()
        raise DatasetError(
            f"{path}: {label_key!r} must hold integer class indices, got {raw.dtype} values (e.g. {bad}); "
            "re-extract the archive, or convert the labels to integers yourself"
        )
    labels = raw.astype(np.int64)
    if labels.shape[0] != data.shape[0]:
        raise DatasetError(f"{path}: {data.shape[0]} images but {labels.shape[0]} {label_key!r}")
    return data.reshape(-1, 3, 32, 32), labels


def _resolve_root(root: str | os.PathLike, folder: str, marker: str, what: str, archive: str) -> Path:
    """``root`` itself when it holds the batches, else ``root/folder``; a clear error otherwise."""
    root = Path(root).expanduser()
    for candidate in (root / folder, root):
        if (candidate / marker).is_file():
            return candidate
    where = root / folder if (root / folder).is_dir() else root
    raise DatasetError(
        f"{what} not found: no {marker} in {where}. Download the {what} python version ({archive}) from "
        f"{CIFAR_URL} and extract it into {root} (this creates {root / folder}); oblivio never downloads data."
    )


def _require(folder: Path, files: tuple[str, ...], what: str, archive: str) -> None:
    for fname in files:
        if not (folder / fname).is_file():
            raise DatasetError(
                f"{folder / fname} is missing ({what} needs {', '.join(files)}). Re-download {archive} from "
                f"{CIFAR_URL} and extract it again."
            )


def _split(images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], name: str) -> ImageDataset:
    return ImageDataset(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels), classes, name=name)


def load_cifar10(root: str | os.PathLike, *, name: str = "cifar10") -> DatasetSplits:
    """Load CIFAR-10 (50,000 train and 10,000 test 32x32 colour images, 10 classes).

    Args:
        root: the folder the archive was extracted into, or the ``cifar-10-batches-py`` folder itself.
        name: dataset name used in reports.

    Returns:
        ``DatasetSplits`` with ``uint8`` images ``[N, 3, 32, 32]`` and ``int64`` labels; class names from
        ``batches.meta``.

    Raises:
        DatasetError: a file is missing, malformed, or the pickle asks for anything but plain data.

    Example:
        >>> from oblivio.data import load_cifar10
        >>> splits = load_cifar10("~/data")  # doctest: +SKIP
        >>> splits.image_shape, splits.classes[:2]  # doctest: +SKIP
        ((3, 32, 32), ('airplane', 'automobile'))
    """
    archive = "cifar-10-python.tar.gz"
    folder = _resolve_root(root, CIFAR10_FOLDER, "test_batch", "CIFAR-10", archive)
    _require(folder, CIFAR10_TRAIN_FILES + ("test_batch", "batches.meta"), "CIFAR-10", archive)
    meta_path = folder / "batches.meta"
    classes = _names(_get(_unpickle(meta_path), "label_names", meta_path), meta_path, "label_names")
    parts = [_images_labels(_unpickle(folder / f), folder / f, "labels") for f in CIFAR10_TRAIN_FILES]
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    test_x, test_y = _images_labels(_unpickle(folder / "test_batch"), folder / "test_batch", "labels")
    return DatasetSplits(
        _split(train_x, train_y, classes, f"{name}/train"),
        _split(test_x, test_y, classes, f"{name}/test"),
        name=name,
        info={"root": str(folder), "format": "cifar-python", "source": CIFAR_URL},
    )


def load_cifar100(
    root: str | os.PathLike, *, label_type: Literal["fine", "coarse"] = "fine", name: str = "cifar100"
) -> DatasetSplits:
    """Load CIFAR-100 (50,000 train and 10,000 test 32x32 colour images; 100 fine or 20 coarse classes).

    Args:
        root: the folder the archive was extracted into, or the ``cifar-100-python`` folder itself.
        label_type: ``"fine"`` (100 classes) or ``"coarse"`` (20 superclasses).
        name: dataset name used in reports.

    Returns:
        ``DatasetSplits`` with ``uint8`` images ``[N, 3, 32, 32]`` and ``int64`` labels; class names from ``meta``.

    Raises:
        DatasetError: a file is missing or malformed, or the pickle asks for anything but plain data.
        ValueError: ``label_type`` is neither ``"fine"`` nor ``"coarse"``.

    Example:
        >>> from oblivio.data import load_cifar100
        >>> splits = load_cifar100("~/data", label_type="coarse")  # doctest: +SKIP
        >>> splits.num_classes  # doctest: +SKIP
        20
    """
    if label_type not in ("fine", "coarse"):
        raise ValueError(f"label_type must be 'fine' or 'coarse', got {label_type!r}")
    archive = "cifar-100-python.tar.gz"
    folder = _resolve_root(root, CIFAR100_FOLDER, "test", "CIFAR-100", archive)
    _require(folder, ("train", "test", "meta"), "CIFAR-100", archive)
    meta_path = folder / "meta"
    key = f"{label_type}_label_names"
    classes = _names(_get(_unpickle(meta_path), key, meta_path), meta_path, key)
    train_x, train_y = _images_labels(_unpickle(folder / "train"), folder / "train", f"{label_type}_labels")
    test_x, test_y = _images_labels(_unpickle(folder / "test"), folder / "test", f"{label_type}_labels")
    return DatasetSplits(
        _split(train_x, train_y, classes, f"{name}/train"),
        _split(test_x, test_y, classes, f"{name}/test"),
        name=name,
        info={"root": str(folder), "format": "cifar-python", "label_type": label_type, "source": CIFAR_URL},
    )


__all__: list[str] = ["load_cifar10", "load_cifar100"]
