"""Test-time-augmentation accuracy on a hand-built case, and the timing helpers."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from oblivio.data import ImageDataset
from oblivio.metrics import TTA_VIEWS, Timer, rte, tta_accuracy


class LeftVsRight(nn.Module):
    """Class 0 when the left half is brighter than the right half, class 1 otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.shape[-1]
        gap = x[..., : w // 2].mean((1, 2, 3)) - x[..., w // 2 :].mean((1, 2, 3))
        return torch.stack([gap, -gap], 1) + 0 * self.dummy


@pytest.fixture()
def halves():
    images = torch.zeros(10, 1, 10, 10)
    images[:5, :, :, :5] = 1.0  # bright left: class 0
    images[5:, :, :, 5:] = 1.0  # bright right: class 1
    return ImageDataset(images, torch.tensor([0] * 5 + [1] * 5), ("left", "right"))


def test_each_view_has_its_hand_computed_accuracy(halves):
    model = LeftVsRight().train()
    acc = tta_accuracy(model, halves, batch_size=3)
    assert list(acc) == list(TTA_VIEWS)
    assert acc == {"identity": 1.0, "hflip": 0.0, "vflip": 1.0, "center_crop": 1.0}
    assert model.training  # mode restored


def test_uint8_images_and_view_selection(halves):
    as_bytes = ImageDataset((halves.images * 255).to(torch.uint8), halves.labels, halves.classes)
    assert tta_accuracy(LeftVsRight(), as_bytes, views=("hflip",)) == {"hflip": 0.0}
    with pytest.raises(ValueError, match="identity, hflip, vflip, center_crop"):
        tta_accuracy(LeftVsRight(), halves, views=("rotate",))


def test_timer_and_rte():
    with Timer() as timer:
        time.sleep(0.02)
    assert 0.015 < timer.seconds < 1.0
    frozen = timer.seconds
    assert timer.seconds == frozen  # stopped after the block
    assert rte(30.0, 120.0) == 0.25
    with pytest.raises(ValueError, match="positive"):
        rte(1.0, 0.0)
