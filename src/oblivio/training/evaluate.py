"""Inference helpers shared by training, methods and metrics (eval mode, no augmentation, fixed order)."""

from __future__ import annotations

import torch
from torch import nn

from ..data.base import ImageDataset
from ..data.loader import TensorLoader
from ..models.adapters import logits_of
from ..utils import eval_mode, model_device


@torch.no_grad()
def predict_logits(model: nn.Module, dataset: ImageDataset, *, batch_size: int = 512) -> torch.Tensor:
    """Logits ``[N, C]`` of ``model`` on ``dataset`` (eval mode restored afterwards), on the CPU, float32."""
    device = model_device(model)
    outs = []
    with eval_mode(model):
        for batch in TensorLoader(dataset, batch_size=batch_size, device=device):
            outs.append(logits_of(model(batch.x)).float().cpu())  # a tuple / dict output: its logits
    if not outs:
        return torch.zeros(0, getattr(model, "num_classes", dataset.num_classes))
    return torch.cat(outs)


@torch.no_grad()
def predict_features(model: nn.Module, dataset: ImageDataset, *, batch_size: int = 512) -> torch.Tensor:
    """Penultimate features ``[N, D]`` (``model.features``) on the CPU."""
    device = model_device(model)
    outs = []
    with eval_mode(model):
        for batch in TensorLoader(dataset, batch_size=batch_size, device=device):
            outs.append(model.features(batch.x).float().cpu())  # type: ignore[operator]
    return torch.cat(outs) if outs else torch.zeros(0, 0)


def accuracy(model: nn.Module, dataset: ImageDataset, *, batch_size: int = 512) -> float:
    """Top-1 accuracy in [0, 1] (NaN for an empty dataset)."""
    if len(dataset) == 0:
        return float("nan")
    logits = predict_logits(model, dataset, batch_size=batch_size)
    return float((logits.argmax(1) == dataset.labels).float().mean())
