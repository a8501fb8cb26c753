"""Accuracy under test-time augmentation: the forget-set check of the two-stage method (SPEC §4.5).

The paper (``002_…``) checks that a neutralised / retrained model is at chance on the forget set not only on the
images as stored but also on simple views of them: horizontal flip, vertical flip, and a centre crop to 90 % of
each side resized back. Each view's accuracy is reported separately; compare them with chance, ``1 / C``.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from oblivio.data import ImageDataset
    >>> ds = ImageDataset(torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 0, 1, 0, 1]), ("a", "b"))
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    >>> sorted(tta_accuracy(model, ds))
    ['center_crop', 'hflip', 'identity', 'vflip']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import nn

from ..data.base import ImageDataset
from ..data.transforms import center_crop_resize, hflip, vflip
from ..models.adapters import logits_of
from ..utils import eval_mode, model_device

TTA_VIEWS: tuple[str, ...] = ("identity", "hflip", "vflip", "center_crop")


def _view(name: str, crop_fraction: float) -> Callable[[torch.Tensor], torch.Tensor]:
    views: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "identity": lambda x: x,
        "hflip": hflip,
        "vflip": vflip,
        "center_crop": partial(center_crop_resize, fraction=crop_fraction),
    }
    if name not in views:
        raise ValueError(f"unknown test-time view {name!r}; use one of {', '.join(TTA_VIEWS)}")
    return views[name]


@torch.no_grad()
def tta_accuracy(
    model: nn.Module,
    dataset: ImageDataset,
    *,
    views: Sequence[str] = TTA_VIEWS,
    crop_fraction: float = 0.9,
    batch_size: int = 512,
) -> dict[str, float]:
    """Top-1 accuracy of ``model`` on ``dataset`` under each test-time view, in ``[0, 1]``.

    Args:
        model: a classifier taking float images in [0, 1]; its train/eval mode is restored afterwards.
        dataset: the images to check (typically the forget set).
        views: any of ``"identity"``, ``"hflip"``, ``"vflip"``, ``"center_crop"``.
        crop_fraction: side fraction kept by ``"center_crop"`` before resizing back (0.9 in the paper).
        batch_size: images per forward pass.

    Returns:
        ``{view: accuracy}`` in the order of ``views`` (NaN for an empty dataset).
    """
    transforms = {name: _view(name, crop_fraction) for name in views}
    if len(dataset) == 0:
        return {name: float("nan") for name in transforms}
    device = model_device(model)
    correct = {name: 0 for name in transforms}
    with eval_mode(model):
        for start in range(0, len(dataset), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(dataset)))
            x = dataset.float_images(idx).to(device)
            y = dataset.labels[idx].to(device)
            for name, transform in transforms.items():
                correct[name] += int((logits_of(model(transform(x))).argmax(1) == y).sum())
    return {name: correct[name] / len(dataset) for name in transforms}


__all__ = ["TTA_VIEWS", "tta_accuracy"]
