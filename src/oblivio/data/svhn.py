"""SVHN (Street View House Numbers), cropped-digit format: ``train_32x32.mat``, ``test_32x32.mat``, ``extra_32x32.mat``.

Each ``.mat`` file (MATLAB v5, read with :func:`scipy.io.loadmat`) holds ``X``, ``uint8`` ``[32, 32, 3, N]``,
and ``y``, ``[N, 1]`` labels 1..10 where 10 stands for the digit 0. The loader returns ``[N, 3, 32, 32]``
images and labels 0..9 equal to the digit shown.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .base import DatasetError, DatasetSplits, ImageDataset

SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
SVHN_CLASSES = tuple(str(d) for d in range(10))


def _missing(path: Path) -> DatasetError:
    return DatasetError(
        f"SVHN file {path} is missing. Download {path.name} (format 2, cropped digits) from {SVHN_URL} "
        f"into {path.parent}; oblivio never downloads data."
    )


def _read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``X`` as ``uint8`` ``[N, 3, 32, 32]`` and ``y`` as ``int64`` digits 0..9."""
    if not path.is_file():
        raise _missing(path)
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path), variable_names=("X", "y"))
    except Exception as exc:  # scipy raises ValueError, MatReadError, OSError, NotImplementedError (v7.3)...
        raise DatasetError(f"{path}: not a readable MATLAB v5 .mat file ({type(exc).__name__}: {exc})") from exc
    for key in ("X", "y"):
        if key not in mat:
            raise DatasetError(f"{path}: no variable {key!r} (an SVHN file has X [32, 32, 3, N] and y [N, 1])")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"])
    if x.ndim != 4 or x.shape[2] != 3:
        raise DatasetError(f"{path}: X must be [H, W, 3, N], got shape {x.shape}")
    if x.dtype != np.uint8:
        raise DatasetError(f"{path}: X must be uint8, got {x.dtype}")
    if y.ndim > 2 or (y.ndim == 2 and 1 not in y.shape):
        raise DatasetError(f"{path}: y must be [N, 1], got shape {y.shape}")
    y = y.reshape(-1)
    if y.shape[0] != x.shape[3]:
        raise DatasetError(f"{path}: {x.shape[3]} images in X but {y.shape[0]} labels in y")
    if y.size and (not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0 or y.max() > 10):
        raise DatasetError(f"{path}: labels must be integers 1..10 (10 = digit 0), found [{y.min()}, {y.max()}]")
    labels = y.astype(np.int64)
    labels[labels == 10] = 0
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # [H, W, C, N] -> [N, C, H, W]
    return images, labels


def load_svhn(root: str | os.PathLike, *, include_extra: bool = False, name: str = "svhn") -> DatasetSplits:
    """Load SVHN cropped digits (73,257 train, 26,032 test, optionally 531,131 extra 32x32 colour images).

    Args:
        root: folder holding ``train_32x32.mat`` and ``test_32x32.mat`` (and ``extra_32x32.mat``).
        include_extra: append ``extra_32x32.mat`` to the train split (its ids follow the train ids).
        name: dataset name used in reports.

    Returns:
        ``DatasetSplits`` with ``uint8`` images ``[N, 3, 32, 32]`` and labels 0..9 (the file's 10 becomes 0).

    Raises:
        DatasetError: a file is missing or malformed.

    Example:
        >>> from oblivio.data import load_svhn
        >>> splits = load_svhn("~/data/svhn")  # doctest: +SKIP
        >>> splits.classes[:3], splits.image_shape  # doctest: +SKIP
        (('0', '1', '2'), (3, 32, 32))
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"SVHN folder {root} does not exist. Download train_32x32.mat and test_32x32.mat (format 2) from "
            f"{SVHN_URL} into it; oblivio never downloads data."
        )
    files = ["train_32x32.mat", "test_32x32.mat"] + (["extra_32x32.mat"] if include_extra else [])
    for fname in files:  # report a missing file before spending time reading the others
        if not (root / fname).is_file():
            raise _missing(root / fname)
    train_x, train_y = _read_mat(root / "train_32x32.mat")
    if include_extra:
        extra_x, extra_y = _read_mat(root / "extra_32x32.mat")
        train_x, train_y = np.concatenate([train_x, extra_x]), np.concatenate([train_y, extra_y])
    test_x, test_y = _read_mat(root / "test_32x32.mat")
    train = ImageDataset(torch.from_numpy(train_x), torch.from_numpy(train_y), SVHN_CLASSES, name=f"{name}/train")
    test = ImageDataset(torch.from_numpy(test_x), torch.from_numpy(test_y), SVHN_CLASSES, name=f"{name}/test")
    return DatasetSplits(
        train,
        test,
        name=name,
        info={"root": str(root), "format": "svhn-mat", "include_extra": include_extra, "source": SVHN_URL},
    )


__all__: list[str] = ["load_svhn"]
