"""Batched image transforms on tensors (no torchvision): ``[B, C, H, W]`` float images in [0, 1].

Random transforms take an explicit ``torch.Generator`` so that a seed fixes every crop and flip.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, padding: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop back to the input size at a random offset per image."""
    if padding <= 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device="cpu").to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device="cpu").to(x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)[None, :]  # [B, H]
    cols = dx[:, None] + torch.arange(w, device=x.device)[None, :]  # [B, W]
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def random_hflip(x: torch.Tensor, *, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image left-right with probability ``p``."""
    mask = torch.rand(x.shape[0], generator=generator, device="cpu").to(x.device) < p
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(3)


def vflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(2)


def center_crop_resize(x: torch.Tensor, *, fraction: float = 0.9) -> torch.Tensor:
    """Keep the central ``fraction`` of each side and resize back to the input size (bilinear)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    h, w = x.shape[-2:]
    ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top : top + ch, left : left + cw]
    return F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation, applied per batch on the batch's device.

    Args:
        crop_padding: random crop after zero padding by this many pixels (0 = off).
        hflip: random horizontal flip with probability 0.5.
    """

    crop_padding: int = 0
    hflip: bool = False

    @classmethod
    def parse(cls, spec: str | Augment | None) -> Augment:
        """``"none"``, ``"flip"``, ``"crop"``, ``"crop+flip"`` or ``"crop4+flip"`` (padding 4)."""
        if spec is None:
            return cls()
        if isinstance(spec, Augment):
            return spec
        crop, flip = 0, False
        for part in str(spec).lower().replace(" ", "").split("+"):
            if part in ("", "none"):
                continue
            if part == "flip":
                flip = True
            elif part.startswith("crop"):
                crop = int(part[4:] or 2)
            else:
                raise ValueError(f"unknown augmentation {part!r} in {spec!r}; use none, flip, crop[N] joined by '+'")
        return cls(crop_padding=crop, hflip=flip)

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.hflip

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, generator=generator)
        if self.hflip:
            x = random_hflip(x, p=0.5, generator=generator)
        return x
