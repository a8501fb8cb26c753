"""A small Vision Transformer (Dosovitskiy et al. 2021) for small images.

The image is cut into non-overlapping ``patch_size`` x ``patch_size`` patches by a strided convolution, a learned
class token is prepended, learned position embeddings are added, and the sequence goes through ``depth`` pre-norm
transformer blocks (``x + attn(LN(x))``, then ``x + mlp(LN(x))``). The penultimate features are the class token
after the final LayerNorm; the head is a linear layer on it.

The TMU paper (``000``) reports ViT results in its supplementary material and cites the small-dataset ViT of Lee,
Lee and Song (2021). That paper adds Shifted Patch Tokenization and Locality Self-Attention to a plain ViT; we do
not implement those add-ons, this is the plain ViT at small scale.

Registered names: ``vit-small`` (dim 192, depth 6, 3 heads, patch 4) and ``vit-tiny`` (dim 64, depth 2, 2 heads,
patch 4, quick on a CPU). Both accept the :class:`ViT` knobs as extra keywords.

Example:
    >>> import torch
    >>> from oblivio.models import create_model
    >>> m = create_model("vit-tiny", num_classes=10, in_channels=1, image_size=(28, 28))
    >>> m(torch.rand(2, 1, 28, 28)).shape, m.feature_dim
    (torch.Size([2, 10]), 64)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import register_model
from .base import Classifier


def _valid_patch_sizes(height: int, width: int) -> list[int]:
    g = math.gcd(height, width)
    return [p for p in range(1, g + 1) if g % p == 0]


def _check_patch_size(patch_size: int, image_size: tuple[int, int]) -> None:
    h, w = image_size
    if patch_size >= 1 and h % patch_size == 0 and w % patch_size == 0:
        return
    valid = _valid_patch_sizes(h, w)
    nearest = min(valid, key=lambda p: (abs(p - patch_size), -p))  # ties go to the larger (cheaper) patch
    raise ValueError(
        f"patch_size={patch_size} does not divide the {h}x{w} image; use a patch size that divides both sides, "
        f"e.g. patch_size={nearest} (valid: {', '.join(map(str, valid))})"
    )


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention over a token sequence ``[B, N, dim]``.

    Args:
        dim: token dimension; must be divisible by ``heads``.
        heads: number of attention heads.
        dropout: dropout on the attention weights and on the output projection.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        # [B, N, 3*D] -> three tensors [B, heads, N, D / heads]
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, d)))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))`` then ``x + mlp(LN(x))`` with a GELU MLP.

    Args:
        dim: token dimension.
        heads: number of attention heads.
        mlp_ratio: hidden size of the MLP as a multiple of ``dim``.
        dropout: dropout inside attention and the MLP.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = int(round(dim * mlp_ratio))
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViTBody(nn.Module):
    """Images (already normalised) -> class-token features ``[B, dim]``.

    Args:
        in_channels: image channels.
        image_size: ``(H, W)``, both divisible by ``patch_size``.
        patch_size: side of the square patches.
        dim: token dimension.
        depth: number of transformer blocks.
        heads: attention heads per block.
        mlp_ratio: MLP hidden size as a multiple of ``dim``.
        dropout: dropout on the embeddings and inside the blocks.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        image_size: tuple[int, int],
        patch_size: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        dropout: float,
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.patch_size = patch_size
        num_patches = (image_size[0] // patch_size) * (image_size[1] // patch_size)
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, dim))
        self.embed_drop = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*(TransformerBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.image_size:
            # The position embeddings are learned for one grid of patches; say so rather than fail on a reshape.
            raise ValueError(
                f"this ViT was built for {self.image_size[0]}x{self.image_size[1]} images (its position "
                f"embeddings are per patch), got {x.shape[-2]}x{x.shape[-1]}"
            )
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # [B, N, dim]
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = self.embed_drop(torch.cat([cls, tokens], dim=1) + self.pos_embed)
        return self.norm(self.blocks(tokens))[:, 0]


class ViT(Classifier):
    """Vision Transformer with a class token and learned position embeddings; features = normalised class token.

    Args:
        num_classes: number of output logits.
        in_channels: image channels.
        image_size: ``(H, W)``; the model only accepts this size (the position embeddings are learned per patch).
        patch_size: side of the square patches; must divide both ``H`` and ``W`` (else a ``ValueError`` naming a
            valid one).
        dim: token dimension, also ``feature_dim``.
        depth: number of transformer blocks.
        heads: attention heads; must divide ``dim``.
        mlp_ratio: MLP hidden size as a multiple of ``dim`` (4 in Dosovitskiy et al.).
        dropout: dropout on the embeddings, attention weights and MLP (0 disables it).
        mean: per-channel normalisation mean (default 0.5 per channel).
        std: per-channel normalisation std (default 0.25 per channel).

    Example:
        >>> import torch
        >>> m = ViT(num_classes=3, in_channels=1, image_size=(8, 8), patch_size=2, dim=16, depth=1, heads=2)
        >>> m(torch.rand(4, 1, 8, 8)).shape
        torch.Size([4, 3])
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: Sequence[int] = (32, 32),
        patch_size: int = 4,
        dim: int = 192,
        depth: int = 6,
        heads: int = 3,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, image_size=image_size, mean=mean, std=std)
        _check_patch_size(int(patch_size), self.image_size)
        if depth < 1:
            raise ValueError(f"depth must be at least 1 transformer block, got {depth}")
        if heads < 1 or dim % heads != 0:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}, e.g. heads=1 or a divisor of {dim}")
        if mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be positive, got {mlp_ratio}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout}")
        self.patch_size = int(patch_size)
        self.body: ViTBody = ViTBody(
            in_channels=in_channels,
            image_size=self.image_size,
            patch_size=self.patch_size,
            dim=dim,
            depth=depth,
            heads=heads,
            mlp_ratio=mlp_ratio,
            dropout=dropout,
        )
        self.head = nn.Linear(dim, num_classes)
        self.feature_dim = dim
        self._init_weights()

    def _init_weights(self) -> None:
        # Truncated normal (std 0.02) for embeddings and linear layers, zero biases, identity LayerNorms: the
        # usual ViT/DeiT scheme.
        nn.init.trunc_normal_(self.body.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.body.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # The patch embedding is a linear map of flattened patches: initialise it like one (fan-in scaled).
        patch = self.body.patch_embed
        nn.init.trunc_normal_(patch.weight, std=math.sqrt(1.0 / (patch.in_channels * self.patch_size**2)))
        if patch.bias is not None:
            nn.init.zeros_(patch.bias)


def _build(
    defaults: dict[str, Any],
    *,
    num_classes: int,
    in_channels: int,
    image_size: Sequence[int],
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    knobs: dict[str, Any],
) -> ViT:
    return ViT(
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        mean=mean,
        std=std,
        **{**defaults, **knobs},
    )


@register_model("vit-small")
def vit_small(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: Sequence[int] = (32, 32),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **knobs: Any,
) -> ViT:
    """ViT with dim 192, depth 6, 3 heads, 4x4 patches (about 2.7M parameters at 32x32).

    Extra keyword arguments (``patch_size``, ``dim``, ``depth``, ``heads``, ``mlp_ratio``, ``dropout``) override
    the defaults of :class:`ViT`.
    """
    return _build(
        dict(patch_size=4, dim=192, depth=6, heads=3),
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        mean=mean,
        std=std,
        knobs=knobs,
    )


@register_model("vit-tiny")
def vit_tiny(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: Sequence[int] = (32, 32),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **knobs: Any,
) -> ViT:
    """ViT with dim 64, depth 2, 2 heads, 4x4 patches: small enough to train on a CPU."""
    return _build(
        dict(patch_size=4, dim=64, depth=2, heads=2),
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        mean=mean,
        std=std,
        knobs=knobs,
    )
