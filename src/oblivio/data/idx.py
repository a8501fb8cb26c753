"""MNIST-format ``idx`` files (plain or ``.gz``): MNIST, Fashion-MNIST, KMNIST, EMNIST...

The format (LeCun et al.): a big-endian magic number ``0x0000TTDD`` (``TT`` the element type, ``DD`` the number of
dimensions), ``DD`` big-endian uint32 sizes, then the raw array. Images are ``uint8`` ``[N, H, W]``, labels ``[N]``.

Other element types are converted only when that is exact: float images in [0, 1] are scaled to 0..255, float
labels must be whole numbers; anything else (a float image range that is not [0, 1] or 0..255, fractional labels,
negative values) is a :class:`DatasetError`, never silently zeroed or truncated.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
from pathlib import Path

import numpy as np
import torch

from .base import DatasetError, DatasetSplits, ImageDataset

log = logging.getLogger("oblivio.data")

_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DEFAULT_FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one idx file (gzip detected from the magic bytes, not the name)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"idx file {path} does not exist")
    with open(path, "rb") as fh:
        head = fh.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    if len(data) < 4:
        raise DatasetError(f"{path}: too short to be an idx file")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code not in _IDX_TYPES or ndim == 0:
        raise DatasetError(f"{path}: bad idx magic number {data[:4].hex()}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path}: truncated idx header")
    shape = struct.unpack(">" + "I" * ndim, data[4:header])
    dtype = _IDX_TYPES[dtype_code]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise DatasetError(
            f"{path}: header says shape {shape} ({expected} bytes) but {len(data) - header} bytes follow"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an idx file (``.gz`` names are gzip-compressed). Used by tests and tools."""
    path = Path(path)
    array = np.asarray(array)
    code = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"dtype {array.dtype} cannot be written as idx")
    payload = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    payload += array.astype(_IDX_TYPES[code]).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / f"{stem}.gz", root / stem, root / stem.replace("-idx", ".idx")):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{root}: no file {stem}[.gz]")


def _images_uint8(images: np.ndarray, name: str) -> np.ndarray:
    """idx images as ``uint8``: 8-bit as they are; float images in [0, 1] scaled to 0..255 (rounded), float or
    wider integer images already in 0..255 with integral values kept; anything else is refused (never wrapped,
    truncated or silently zeroed)."""
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind == "f":
        if not np.all(np.isfinite(images)):
            raise DatasetError(f"{name}: idx images hold NaN or infinite values")
        lo, hi = (float(images.min()), float(images.max())) if images.size else (0.0, 0.0)
        if lo >= 0.0 and hi <= 1.0:
            log.info("%s: float idx images in [0, 1]: scaled to 0..255", name)
            return np.rint(images.astype(np.float64) * 255.0).astype(np.uint8)
        if lo >= 0.0 and hi <= 255.0 and np.array_equal(images, np.round(images)):
            return images.astype(np.uint8)
        raise DatasetError(
            f"{name}: float idx images must lie in [0, 1] (scaled to 0..255) or hold whole numbers "
            f"in 0..255; these range over [{lo:g}, {hi:g}]"
        )
    lo, hi = (int(images.min()), int(images.max())) if images.size else (0, 0)
    if lo < 0 or hi > 255:
        raise DatasetError(f"{name}: integer idx images must lie in 0..255, these range over [{lo}, {hi}]")
    return images.astype(np.uint8)


def _labels_int64(labels: np.ndarray, name: str) -> np.ndarray:
    """idx labels as ``int64``: integer labels as they are, float labels only when every value is a whole number;
    negative labels are refused."""
    if labels.ndim != 1:
        raise DatasetError(f"{name}: idx labels must be [N], got shape {labels.shape}")
    if labels.dtype.kind == "f" and (not np.all(np.isfinite(labels)) or not np.array_equal(labels, np.round(labels))):
        bad = labels[~np.isfinite(labels) | (labels != np.round(labels))][:5].tolist()
        raise DatasetError(f"{name}: float idx labels must be whole numbers (class indices), got e.g. {bad}")
    out = labels.astype(np.int64)
    if out.size and out.min() < 0:
        raise DatasetError(f"{name}: idx labels must be class indices >= 0, got {int(out.min())}")
    return out


def _split(images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], name: str) -> ImageDataset:
    if images.ndim != 3:
        raise DatasetError(f"{name}: idx images must be [N, H, W], got {images.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(f"{name}: {images.shape[0]} images but {labels.shape[0]} labels")
    labels = _labels_int64(labels, name)
    if labels.size and labels.max() >= len(classes):
        raise DatasetError(f"{name}: label {int(labels.max())} but only {len(classes)} classes")
    return ImageDataset(
        torch.from_numpy(_images_uint8(images, name)).unsqueeze(1), torch.from_numpy(labels), classes, name=name
    )


def load_idx_dataset(
    root: str | os.PathLike, *, classes: tuple[str, ...] | None = None, name: str = "idx"
) -> DatasetSplits:
    """Load ``train-images-idx3-ubyte[.gz]`` & co. from ``root`` (the MNIST file names)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{name}: folder {root} does not exist")
    tr_x = read_idx(_find(root, "train-images-idx3-ubyte"))
    tr_y = read_idx(_find(root, "train-labels-idx1-ubyte"))
    te_x = read_idx(_find(root, "t10k-images-idx3-ubyte"))
    te_y = read_idx(_find(root, "t10k-labels-idx1-ubyte"))
    for array, stem in ((tr_x, "train-images-idx3-ubyte"), (te_x, "t10k-images-idx3-ubyte")):
        if array.ndim and array.shape[0] == 0:
            raise DatasetError(
                f"{name}: {_find(root, stem)} holds 0 images (its header says shape {array.shape}); "
                "the file is empty or truncated: replace it with the full file"
            )
    if classes is None:
        n = (
            int(
                max(
                    _labels_int64(tr_y, f"{name}/train").max(initial=0),
                    _labels_int64(te_y, f"{name}/test").max(initial=0),
                )
            )
            + 1
        )
        classes = tuple(str(i) for i in range(n))
    return DatasetSplits(
        _split(tr_x, tr_y, classes, f"{name}/train"),
        _split(te_x, te_y, classes, f"{name}/test"),
        name=name,
        info={"root": str(root), "format": "idx"},
    )


def load_fashion_mnist(root: str | os.PathLike | None = None) -> DatasetSplits:
    """The embedded default dataset: Fashion-MNIST (70,000 28x28 grey images, 10 classes, MIT licence).

    Looked up in ``root``, else ``$OBLIVIO_FASHION_MNIST``, else Debian's ``dataset-fashion-mnist`` package
    (``/usr/share/datasets/fashion-mnist``), which ``make demo`` / ``make test`` install.
    """
    root = Path(root or os.environ.get("OBLIVIO_FASHION_MNIST") or DEFAULT_FASHION_MNIST_ROOT)
    if not root.is_dir():
        raise DatasetError(
            f"Fashion-MNIST not found in {root}. Install it with `sudo apt-get install dataset-fashion-mnist` "
            "(Debian/Ubuntu; `make demo` does this), or download the four idx .gz files from "
            "https://github.com/zalandoresearch/fashion-mnist into a folder and set OBLIVIO_FASHION_MNIST to it."
        )
    splits = load_idx_dataset(root, classes=FASHION_MNIST_CLASSES, name="fashion-mnist")
    return splits
