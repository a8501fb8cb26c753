"""Torch data in, streamed: :func:`stream_dataset`, the in-memory-or-streamed decision, and :class:`TorchSplits`.

:func:`stream_dataset` is :func:`~oblivio.data.as_image_dataset`'s lazy twin: the same inputs (a map-style
``Dataset``, a ``Subset``, a ``DataLoader`` over one), the same sample ids and class names, but only one item is
read (for the image shape); the rest is read batch by batch by the loaders (see :mod:`oblivio.data.stream`).

Labels are needed up front (forget requests, class-stratified samples and TMU's twins select by label). They come
from ``labels=``, else from a ``TensorDataset``'s label tensor or the dataset's ``targets`` attribute
(torchvision's convention), else from one pass that reads every item. Every item read later is checked against
them.

**When oblivio streams** (:func:`decide_streaming`): ``stream=True`` always, ``stream=False`` never, and
``stream="auto"`` (the default) when the torch data would take more memory, materialised as tensors, than the
memory budget: the number of samples times the bytes of one image as stored (``uint8`` images 1 byte a pixel,
float ones 4). The budget is ``memory_budget=`` (bytes, or a string such as ``"4GB"``), else the environment
variable ``OBLIVIO_MEMORY_BUDGET``, else a quarter of the machine's physical memory (methods hold up to two
copies of the data: ``D_r ∪ D_f`` concatenations, plus your own copy).

Example:
    >>> import torch
    >>> from torch.utils.data import Subset, TensorDataset
    >>> full = TensorDataset(torch.rand(10, 1, 8, 8), torch.arange(10) % 2)
    >>> ds = stream_dataset(Subset(full, [7, 2, 5]))
    >>> len(ds), ds.ids.tolist(), ds.num_classes
    (3, [7, 2, 5], 2)
    >>> decide_streaming({"train": full}, stream="auto", memory_budget="1KB").stream   # 10 * 64 * 4 bytes
    True
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset, TensorDataset

from .arrays import Layout
from .base import DatasetError, DatasetSplits, ImageDataset
from .stream import StreamingDataset, _seeded, _TorchSource, batch_seed
from .torch_data import (
    _class_names,
    _loader_dataset,
    _numpy_image,
    _resolve_ids,
    as_image_dataset,
)

log = logging.getLogger("oblivio.data")

__all__ = [
    "StreamDecision",
    "TorchSplits",
    "decide_streaming",
    "default_memory_budget",
    "estimate_bytes",
    "parse_bytes",
    "stream_dataset",
]

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_bytes(value: int | float | str) -> int:
    """Bytes from ``4294967296``, ``"4GB"``, ``"512 MiB"``, ``"1.5g"`` (binary units: 1 KB = 1024 bytes).

    Example:
        >>> parse_bytes("2GB"), parse_bytes("512MiB"), parse_bytes(1000)
        (2147483648, 536870912, 1000)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number, unit = float(value), ""
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgtb]?)(?:i?b)?\s*", str(value).lower())
        if m is None:
            raise ValueError(f"memory budget {value!r} is not a size; write bytes or e.g. '4GB', '512MB'")
        number, unit = float(m.group(1)), m.group(2)
    out = number * _UNITS[unit]
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"memory budget must be a positive size, got {value!r}")
    return int(out)


def default_memory_budget() -> int:
    """``$OBLIVIO_MEMORY_BUDGET`` when set, else a quarter of the machine's physical memory (bytes)."""
    env = os.environ.get("OBLIVIO_MEMORY_BUDGET")
    if env:
        try:
            return parse_bytes(env)
        except ValueError as exc:
            raise ValueError(f"OBLIVIO_MEMORY_BUDGET: {exc}") from None
    import psutil

    return int(psutil.virtual_memory().total // 4)


# ---------------------------------------------------------------------------------------------- reading torch data
def _is_torch_data(data: Any) -> bool:
    """A torch ``Dataset`` / ``DataLoader`` (or a map-style look-alike), not arrays or an ``ImageDataset``."""
    if isinstance(data, (ImageDataset, StreamingDataset)):
        return False
    if isinstance(data, (DataLoader, Dataset)):
        return True
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (tuple, list)):
        return False  # (images, labels) arrays
    return hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, (str, bytes, dict))


def _subset_chain(data: Any) -> tuple[Any, np.ndarray | None]:
    """As :func:`oblivio.data.torch_data._base_and_indices`, with the indices as one int64 array (no Python lists:
    a million-sample ``Subset`` would otherwise cost tens of MB of Python ints)."""
    indices: np.ndarray | None = None
    while isinstance(data, Subset):
        idx = np.asarray(data.indices, dtype=np.int64).reshape(-1)
        indices = idx if indices is None else idx[indices]
        data = data.dataset
    return data, indices


def _rows_of(data: Any, name: str) -> tuple[Any, Any, np.ndarray, np.ndarray | None, np.ndarray | None, bool]:
    """``(dataset read, innermost base, positions read in it, their indices in the base or None, ids from a Subset /
    sampler or None, is a DataLoader)``."""
    if isinstance(data, IterableDataset) or (
        isinstance(data, DataLoader) and isinstance(data.dataset, IterableDataset)
    ):
        raise DatasetError(
            f"{name}: an IterableDataset cannot be read by index; pass a map-style Dataset "
            "(with __len__ and __getitem__) or arrays"
        )
    if isinstance(data, DataLoader):
        ds, sampled = _loader_dataset(data, name)
        base, sub = _subset_chain(ds)
        n_ds = len(cast(Sized, ds))  # a map-style Dataset (an IterableDataset was refused above)
        positions = np.asarray(sampled, dtype=np.int64) if sampled is not None else np.arange(n_ds, dtype=np.int64)
        in_base = sub[positions] if sub is not None else positions
        ids = in_base if (sub is not None or sampled is not None) else None
        return ds, base, positions, in_base, ids, True
    base, sub = _subset_chain(data)
    positions = np.arange(len(data), dtype=np.int64)
    return data, base, positions, (sub if sub is not None else positions), sub, False


def _declared_labels(base: Any) -> np.ndarray | None:
    """A ``TensorDataset``'s label tensor or a ``targets`` attribute, when it is one integer label per item."""
    values = base.tensors[1] if isinstance(base, TensorDataset) and len(base.tensors) >= 2 else None
    if values is None:
        values = getattr(base, "targets", None)
    if values is None:
        return None
    try:
        arr = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values)
        n = len(base)
    except (TypeError, ValueError):
        return None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or arr.shape[0] != n or not np.issubdtype(arr.dtype, np.integer):
        return None
    return arr.astype(np.int64)


def _first_image(ds: Any, position: int, name: str, layout: Layout) -> torch.Tensor:
    """One item's image (read seeded, as every read is, so a random transform leaves the caller's RNG alone)."""
    with _seeded(batch_seed(0, 0, 0)):
        images, _ = _TorchSource(ds, layout=layout, name=name).read([position])
    return images[0]


def _stream_convert(
    data: Any,
    *,
    classes: Sequence[str] | None,
    ids: Any,
    name: str,
    layout: Layout,
    labels: Any = None,
    num_workers: int | None = None,
    read_batch_size: int = 256,
) -> tuple[StreamingDataset, bool]:
    """``(dataset, positional)`` as :func:`oblivio.data.torch_data._convert`, streamed."""
    if isinstance(data, StreamingDataset):
        out = data.replace(
            classes=classes,
            ids=None if ids is None else _resolve_ids(ids, range(len(data)), name),
            num_workers=num_workers,
        )
        return out, False
    if isinstance(data, ImageDataset) or not _is_torch_data(data):
        mem = as_image_dataset(data, classes=classes, ids=ids, name=name, layout=layout)
        positional = ids is None and not isinstance(data, ImageDataset)
        return StreamingDataset.from_memory(mem, num_workers=num_workers or 0), positional
    ds, base, positions, in_base, subset_ids, is_loader = _rows_of(data, name)
    if not positions.size:
        raise DatasetError(f"{name}: the dataset is empty")
    if num_workers is None:
        num_workers = int(getattr(data, "num_workers", 0)) if is_loader else 0
    first = _first_image(ds, int(positions[0]), name, layout)
    source = _TorchSource(ds, layout=layout, name=name)
    if labels is not None:
        label_t = torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1)
        if label_t.numel() != len(positions):
            raise DatasetError(f"{name}: {len(positions)} samples but {label_t.numel()} labels")
    else:
        declared = _declared_labels(base)
        if declared is not None:
            label_t = torch.from_numpy(declared[in_base])
        else:
            label_t = _read_labels(source, positions, first, name, num_workers, read_batch_size)
    if classes is None:
        found = _class_names(base)
        top = int(label_t.max()) + 1 if label_t.numel() else 1
        classes = found or tuple(str(i) for i in range(top))
    if ids is not None:
        id_t = _resolve_ids(ids, positions.tolist(), name)
    elif subset_ids is not None:
        id_t = torch.from_numpy(subset_ids)
    else:
        id_t = None
    out = StreamingDataset(
        [source],
        torch.zeros(len(positions), dtype=torch.int32),
        torch.from_numpy(positions),
        label_t,
        tuple(classes),
        image_shape=tuple(first.shape),  # type: ignore[arg-type]
        name=name,
        ids=id_t,
        num_workers=num_workers,
        itemsize=first.element_size(),
    )
    if id_t is not None and torch.unique(id_t).numel() != id_t.numel():
        raise DatasetError(f"{name}: sample ids must be unique (a forget request names images by id)")
    return out, ids is None and subset_ids is None


def _read_labels(
    source: _TorchSource, positions: np.ndarray, first: torch.Tensor, name: str, num_workers: int, batch_size: int
) -> torch.Tensor:
    """Every item's label, in one pass over the data (with the loader workers)."""
    log.info(
        "%s: reading the labels of %d samples (one pass over the data; a `targets` attribute or labels= skips it)",
        name,
        len(positions),
    )
    probe = StreamingDataset(
        [source],
        torch.zeros(len(positions), dtype=torch.int32),
        torch.from_numpy(positions),
        torch.zeros(len(positions), dtype=torch.long),
        ("?",),
        image_shape=tuple(first.shape),  # type: ignore[arg-type]
        name=name,
        num_workers=num_workers,
    )
    batches = list(torch.arange(len(positions)).split(batch_size))
    return torch.cat([read for _, _, read in probe._iter_read(batches, seed=0, epoch=0)])


def stream_dataset(
    data: Any,
    *,
    classes: Sequence[str] | None = None,
    ids: Any = None,
    name: str = "data",
    layout: Layout = "auto",
    labels: Sequence[int] | np.ndarray | torch.Tensor | None = None,
    num_workers: int | None = None,
) -> StreamingDataset:
    """Any data :func:`oblivio.as_image_dataset` reads, as a lazily read :class:`StreamingDataset`.

    Args:
        data: a map-style torch ``Dataset`` of ``(image, label, ...)``, a (nested) ``Subset`` (its indices become
            the sample ids), a ``DataLoader`` over one (its sampler selects as in ``as_image_dataset``; its
            ``num_workers`` is the default), a ``StreamingDataset``; in-memory data (an ``ImageDataset``, arrays)
            is read through the same path by index.
        classes: class names (default: the dataset's ``classes`` attribute, else ``"0"`` .. ``"K-1"``).
        ids: sample ids, a sequence or a function of the dataset index (default: ``Subset`` indices, else
            positions).
        name: the dataset's name in messages.
        layout: ``"auto"``, ``"nchw"`` or ``"nhwc"`` for array items.
        labels: one label per sample, when the dataset has no ``targets`` (saves the pass that reads them).
        num_workers: loader processes reading batches (default: a ``DataLoader``'s own, else 0).

    Returns:
        A :class:`StreamingDataset`: one item has been read (for the image shape), no other.

    Raises:
        DatasetError: as :func:`oblivio.as_image_dataset`; later reads check each item's shape and label.
    """
    if layout not in ("auto", "nchw", "nhwc"):
        raise ValueError(f"layout must be 'auto', 'nchw' or 'nhwc', got {layout!r}")
    return _stream_convert(
        data, classes=classes, ids=ids, name=name, layout=layout, labels=labels, num_workers=num_workers
    )[0]


# ---------------------------------------------------------------------------------------------- the decision
def estimate_bytes(data: Any) -> int | None:
    """Bytes of ``data``'s images materialised as one tensor, from one item; ``None`` for in-memory data.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> estimate_bytes(TensorDataset(torch.zeros(1000, 3, 64, 64, dtype=torch.uint8), torch.zeros(1000).long()))
        12288000
    """
    if isinstance(data, StreamingDataset):
        return data.estimated_bytes
    if not _is_torch_data(data):
        return None
    ds, _, positions, _, _, _ = _rows_of(data, "data")
    if not positions.size:
        return 0
    with _seeded(batch_seed(0, 0, 0)):
        item = ds[int(positions[0])]
    img = item[0] if isinstance(item, (tuple, list)) else item
    if isinstance(img, torch.Tensor):
        return len(positions) * img.numel() * (4 if img.is_floating_point() else 1)
    arr = _numpy_image(img, "data")
    return len(positions) * int(arr.size) * (4 if np.issubdtype(arr.dtype, np.floating) else 1)


@dataclass(frozen=True)
class StreamDecision:
    """Whether to stream, and why: the torch data's estimated size beside the memory budget."""

    stream: bool
    estimated_bytes: int
    memory_budget: int
    requested: bool | str

    def describe(self) -> str:
        """E.g. ``streamed (auto: 12.3 GB as tensors, budget 5.9 GB)``.

        Example:
            >>> StreamDecision(True, 12_582_912_000, 6 * 2**30, "auto").describe()
            'streamed (auto: 11.7 GB as tensors, budget 6 GB)'
        """
        size = f"{_size(self.estimated_bytes)} as tensors, budget {_size(self.memory_budget)}"
        if self.requested == "auto":
            return f"{'streamed' if self.stream else 'in memory'} (auto: {size})"
        return f"{'streamed' if self.stream else 'in memory'} (asked for; {size})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "streamed": self.stream,
            "estimated_bytes": self.estimated_bytes,
            "memory_budget": self.memory_budget,
            "requested": self.requested,
        }


def _size(n: int) -> str:
    """Bytes in binary units, three significant figures (``"450 KB"``, ``"11.7 GB"``)."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def _requested(stream: bool | str) -> bool | str:
    if isinstance(stream, bool):
        return stream
    value = str(stream).strip().lower()
    if value == "auto":
        return "auto"
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    raise ValueError(f"stream must be 'auto', True ('on') or False ('off'), got {stream!r}")


def decide_streaming(
    data: Mapping[str, Any], *, stream: bool | str = "auto", memory_budget: int | str | None = None
) -> StreamDecision:
    """Whether data ``{role: data}`` is streamed: asked for, or (``"auto"``) its torch data exceeds the budget."""
    requested = _requested(stream)
    budget = parse_bytes(memory_budget) if memory_budget is not None else default_memory_budget()
    # the estimate reads one item per role given as torch data (recorded also when the answer is fixed)
    total = sum(b for b in (estimate_bytes(v) for v in data.values() if v is not None) if b is not None)
    decision = requested if isinstance(requested, bool) else total > budget
    return StreamDecision(stream=bool(decision), estimated_bytes=int(total), memory_budget=budget, requested=requested)


# ---------------------------------------------------------------------------------------------- registered data
@dataclass
class TorchSplits:
    """A registered dataset's train and test splits as torch ``Dataset`` s: read into memory, or streamed, when an
    experiment uses them (``--stream auto|on|off``, ``--memory-budget``, ``--num-workers``).

    A loader registered with :func:`oblivio.data.register_dataset` may return this instead of ``DatasetSplits``.
    Sample ids are as :func:`stream_dataset` gives them (positions, or ``Subset`` indices).

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> raw = TorchSplits(TensorDataset(torch.rand(6, 1, 4, 4), torch.arange(6) % 2),
        ...                   TensorDataset(torch.rand(4, 1, 4, 4), torch.arange(4) % 2), name="toy")
        >>> type(raw.resolve(stream=True).train).__name__, type(raw.resolve(stream=False).train).__name__
        ('StreamingDataset', 'ImageDataset')
    """

    train: Any
    test: Any
    classes: Sequence[str] | None = None
    name: str = "dataset"
    info: dict = field(default_factory=dict)
    num_workers: int = 0

    def resolve(
        self, *, stream: bool | str = "auto", memory_budget: int | str | None = None, num_workers: int | None = None
    ) -> DatasetSplits:
        """``DatasetSplits`` of in-memory or streamed datasets (:func:`decide_streaming` decides)."""
        decision = decide_streaming(
            {"train": self.train, "test": self.test}, stream=stream, memory_budget=memory_budget
        )
        workers = self.num_workers if num_workers is None else int(num_workers)
        if decision.stream:
            train = stream_dataset(self.train, classes=self.classes, name=f"{self.name}/train", num_workers=workers)
            test = stream_dataset(self.test, classes=train.classes, name=f"{self.name}/test", num_workers=workers)
        else:
            train = as_image_dataset(self.train, classes=self.classes, name=f"{self.name}/train")  # type: ignore[assignment]
            test = as_image_dataset(self.test, classes=train.classes, name=f"{self.name}/test")  # type: ignore[assignment]
        log.info("%s: data %s", self.name, decision.describe())
        return DatasetSplits(train, test, name=self.name, info={**self.info, "data": decision.as_dict()})  # type: ignore[arg-type]
