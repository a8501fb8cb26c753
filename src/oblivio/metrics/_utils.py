"""Input conversion shared by the metric functions: torch tensors or array-likes in, NumPy out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor | Sequence[float] | float


def to_numpy(x: ArrayLike, dtype: np.dtype | type | None = None) -> np.ndarray:
    """``x`` as a NumPy array (a detached CPU copy for tensors), optionally cast to ``dtype``."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16 or x.dtype == torch.float16:
            x = x.float()
        arr = x.numpy()
    else:
        arr = np.asarray(x)
    return arr.astype(dtype, copy=False) if dtype is not None else arr


def softmax(logits: ArrayLike) -> np.ndarray:
    """Row-wise softmax in float64, shifted by the row maximum."""
    z = to_numpy(logits, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits must be [n, C], got shape {z.shape}")
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
