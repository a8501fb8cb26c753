"""NumPy arrays in: a ``.npz`` file, or arrays (or tensors) already in memory.

The ``.npz`` holds ``x_train``, ``y_train``, ``x_test``, ``y_test`` and optionally ``groups_train``,
``groups_test`` and ``classes`` (a string array). Images may be ``[N, H, W]``, channels-last ``[N, H, W, C]``
or channels-first ``[N, C, H, W]``; ``uint8`` (0-255, kept as ``uint8``), other integers within 0-255 (stored
as ``uint8``) or floating point in [0, 1] (kept as ``float32``, so nothing is quantised).
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .base import DatasetError, DatasetSplits, ImageDataset

Layout = Literal["auto", "nchw", "nhwc"]
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _images(x: Any, layout: Layout, what: str) -> torch.Tensor:
    """``[N, C, H, W]`` ``uint8`` or ``float32`` images from any of the accepted layouts and dtypes."""
    x = _numpy(x)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        channels_last = x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3)
        if layout == "nhwc" or (layout == "auto" and channels_last):
            x = x.transpose(0, 3, 1, 2)
    else:
        raise DatasetError(f"{what}: images must be [N, H, W], [N, H, W, C] or [N, C, H, W], got shape {x.shape}")
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DatasetError(f"{what}: images must be uint8 or floating point in [0, 1], got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.floating):
        if x.size and (not np.isfinite(x).all() or x.min() < 0 or x.max() > 1):
            lo, hi = x.min(), x.max()  # NaN when any value is NaN
            raise DatasetError(
                f"{what}: float images must lie in [0, 1] (and be finite), found [{lo}, {hi}]; "
                "divide 0-255 images by 255 or pass them as uint8"
            )
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if x.dtype != np.uint8 and x.size and (x.min() < 0 or x.max() > 255):
        raise DatasetError(f"{what}: integer images must lie in 0-255, found [{x.min()}, {x.max()}]")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8))


def _labels(y: Any, n: int, what: str) -> torch.Tensor:
    y = _numpy(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DatasetError(f"{what}: labels must be [N] (or [N, 1]), got shape {y.shape}")
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{what}: labels must be integers, got dtype {y.dtype}")
    if y.shape[0] != n:
        raise DatasetError(f"{what}: {n} images but {y.shape[0]} labels")
    if y.size and y.min() < 0:
        raise DatasetError(f"{what}: labels must be >= 0, found {y.min()}")
    return torch.from_numpy(y.astype(np.int64))


def _groups(g: Any, n: int, what: str) -> torch.Tensor | None:
    if g is None:
        return None
    g = _numpy(g)
    if g.ndim == 2 and g.shape[1] == 1:
        g = g[:, 0]
    if g.ndim != 1 or g.dtype == np.bool_ or not np.issubdtype(g.dtype, np.integer):
        raise DatasetError(f"{what}: groups must be a [N] integer array, got shape {g.shape} dtype {g.dtype}")
    if g.shape[0] != n:
        raise DatasetError(f"{what}: {n} images but {g.shape[0]} group ids")
    return torch.from_numpy(g.astype(np.int64))


def from_arrays(
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    *,
    classes: Sequence[str] | None = None,
    groups_train: Any = None,
    groups_test: Any = None,
    layout: Layout = "auto",
    name: str = "arrays",
    info: dict | None = None,
) -> DatasetSplits:
    """Your arrays (NumPy or torch) in, ``DatasetSplits`` out.

    Args:
        x_train: train images ``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]``; ``uint8`` or float in [0, 1].
        y_train: train labels ``[N]`` (or ``[N, 1]``), integers from 0.
        x_test: test images, same layout rules.
        y_test: test labels.
        classes: class names; default ``"0"`` ... ``"K-1"`` with ``K`` = largest label + 1.
        groups_train: optional ``[N]`` integer group ids of the train images.
        groups_test: optional group ids of the test images.
        layout: ``"auto"`` treats 4-d arrays as channels-last when the last dimension is 1 or 3 and the second is
            not, else channels-first; ``"nchw"`` / ``"nhwc"`` say so explicitly.
        name: dataset name used in reports.
        info: extra provenance stored in ``DatasetSplits.info``.

    Returns:
        ``DatasetSplits``; ``uint8`` (and integer 0-255) images are stored as ``uint8``, float ones as ``float32``.

    Raises:
        DatasetError: shapes, dtypes, value ranges or lengths do not fit.
        ValueError: ``layout`` is not one of the three values.

    Example:
        >>> import numpy as np
        >>> from oblivio.data import from_arrays
        >>> x = np.zeros((4, 28, 28, 3), dtype=np.uint8)
        >>> splits = from_arrays(x, [0, 1, 0, 1], x[:2], [1, 0], classes=("cat", "dog"))
        >>> splits.image_shape, splits.train.images.dtype
        ((3, 28, 28), torch.uint8)
    """
    if layout not in ("auto", "nchw", "nhwc"):
        raise ValueError(f"layout must be 'auto', 'nchw' or 'nhwc', got {layout!r}")
    xs = {"train": _images(x_train, layout, f"{name}/train"), "test": _images(x_test, layout, f"{name}/test")}
    ys = {s: _labels(y, xs[s].shape[0], f"{name}/{s}") for s, y in (("train", y_train), ("test", y_test))}
    gs = {s: _groups(g, xs[s].shape[0], f"{name}/{s}") for s, g in (("train", groups_train), ("test", groups_test))}
    if classes is None:
        top = max([int(y.max()) for y in ys.values() if y.numel()], default=0)
        classes = tuple(str(i) for i in range(top + 1))
    splits = {
        s: ImageDataset(xs[s], ys[s], tuple(str(c) for c in classes), name=f"{name}/{s}", groups=gs[s])
        for s in ("train", "test")
    }
    return DatasetSplits(
        splits["train"], splits["test"], name=name, info={"format": "arrays", "layout": layout, **(info or {})}
    )


def load_npz(path: str | os.PathLike, *, layout: Layout = "auto", name: str | None = None) -> DatasetSplits:
    """Load a ``.npz`` with ``x_train, y_train, x_test, y_test`` (+ optional ``groups_*``, ``classes``, and
    ``group_attributes``: a ``[G, 2]`` array of (group id, attribute in [0, 1]) rows for attribute-weighted group
    requests, kept in ``info["group_attributes"]``).

    The file is opened with ``allow_pickle=False``, so it cannot run code; store ``classes`` as a string array
    (``np.array(["cat", "dog"])``), not an object array.

    Args:
        path: the ``.npz`` file (``np.savez`` or ``np.savez_compressed``).
        layout: image layout, as in :func:`from_arrays`.
        name: dataset name used in reports (default: the file name without ``.npz``).

    Returns:
        ``DatasetSplits`` as built by :func:`from_arrays`.

    Raises:
        DatasetError: the file is missing, not a readable ``.npz``, lacks a key, or its arrays do not fit.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from oblivio.data import load_npz
        >>> path = os.path.join(tempfile.mkdtemp(), "toy.npz")
        >>> x = np.random.default_rng(0).random((6, 1, 8, 8))
        >>> np.savez(path, x_train=x, y_train=[0, 1, 2, 0, 1, 2], x_test=x[:3], y_test=[0, 1, 2])
        >>> load_npz(path).num_classes
        3
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(
            f"arrays file {path} does not exist; write one with np.savez(path, x_train=..., y_train=..., "
            "x_test=..., y_test=...) or pass in-memory arrays to oblivio.data.from_arrays"
        )
    name = name or path.stem
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise DatasetError(f"{path}: not a .npz file (a .npz is a zip archive; write it with np.savez)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            if missing:
                raise DatasetError(
                    f"{path}: missing arrays {missing} (found {sorted(npz.files)}); needs {list(NPZ_KEYS)}"
                )
            arrays = {k: npz[k] for k in npz.files}
    except DatasetError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DatasetError(
                f"{path}: an array is stored as Python objects, which would need pickle to load; "
                "save class names as a string array, e.g. np.array(['cat', 'dog'])"
            ) from exc
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from exc
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from exc
    classes = arrays.get("classes")
    if classes is not None:
        classes = tuple(c.decode() if isinstance(c, bytes) else str(c) for c in np.asarray(classes).reshape(-1))
    return from_arrays(
        arrays["x_train"],
        arrays["y_train"],
        arrays["x_test"],
        arrays["y_test"],
        classes=classes,
        groups_train=arrays.get("groups_train"),
        groups_test=arrays.get("groups_test"),
        layout=layout,
        name=name,
        info={"path": str(path), "format": "npz", **_group_attributes(arrays.get("group_attributes"), path)},
    )


def _group_attributes(table: Any, path: Path) -> dict:
    """``{"group_attributes": {group id: attribute}}`` from an optional ``[G, 2]`` array of (group id, attribute)
    rows (what attribute-weighted group requests read), else ``{}``."""
    if table is None:
        return {}
    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2 or t.shape[1] != 2 or not np.isfinite(t).all() or (t[:, 0] != np.round(t[:, 0])).any():
        raise DatasetError(f"{path}: group_attributes must be a [G, 2] array of (integer group id, attribute) rows")
    return {"group_attributes": {int(g): float(a) for g, a in t}}


__all__: list[str] = ["from_arrays", "load_npz"]
