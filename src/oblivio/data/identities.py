"""A grouped, imbalanced proxy of a faces dataset, built from the embedded Fashion-MNIST (no download).

The ``004`` study (SPEC §9) forgets 2% of the *identities* of a faces dataset, chosen toward the young end of an
attribute (age), from a model trained with class weights on imbalanced classes. Faces cannot ship with oblivio;
this module builds a dataset with the same *structure*, deterministically from ``(seed, sizes)``:

- **Identities.** Each identity is one Fashion-MNIST base image seen in ``views`` views: a random rotation
  (±12°), scale (0.9-1.1), shift (±2 px at 28 px), brightness (×0.85-1.15) and Gaussian pixel noise (σ 0.04).
  The views of one identity are close to each other and far from other identities, as photos of one person are.
- **An attribute in [0, 1]** (the study's "age"), per identity: ``a = clip(0.55·m_c + 0.25·q + 0.2·u)``, where
  ``m_c`` is a per-class mean (classes spread over [0.1, 0.9] in a seeded order: the attribute correlates with the
  label), ``q`` is the base image's quantile within its class by mean brightness, reversed (1 = the faintest item:
  it correlates with appearance) and ``u ~ U(0, 1)`` noise. The attribute also changes how the views look:
  contrast is scaled by ``1 - 0.35·a`` ("older" identities are fainter). So a request weighted toward one end of
  the attribute is shifted in both labels and appearance, as a deletion request biased toward young people is.
- **Imbalanced classes.** Identities per class fall geometrically from the most to the least frequent class at
  the stated ``imbalance`` ratio (max / min, after rounding), in a seeded class order; images per class follow
  (every identity has ``views`` images).
- **Disjoint test identities.** Test identities are built from Fashion-MNIST *test* images, with the same class
  proportions and the same rendering; their group ids follow the training ids, so no identity is on both sides.

``info["group_attributes"]`` maps each group id to its attribute (what the attribute-weighted request reads);
``info`` also records the seed, the ratio, identities and images per class, and the base Fashion-MNIST indices.

Limits (a proxy, not faces): the "identity" structure comes from augmenting one image, not from one person's
varied photos; the attribute is synthetic and its effect on appearance is a global contrast change; 10 clothing
classes stand in for the study's labels. What the study can conclude on it is whether a method's outputs on a
non-IID set of memorised groups look like a retrained model's, not anything about faces.

Example:
    >>> from oblivio.data import load_dataset
    >>> ds = load_dataset("fmnist-identities", train_identities=40, test_identities=20, views=3)  # doctest: +SKIP
    >>> len(ds.train), len(set(ds.train.groups.tolist()))  # doctest: +SKIP
    (120, 40)
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from .base import DatasetError, DatasetSplits, ImageDataset

ROTATION_DEGREES = 12.0
SCALE_RANGE = (0.9, 1.1)
SHIFT_PIXELS = 2.0
BRIGHTNESS_RANGE = (0.85, 1.15)
NOISE_STD = 0.04
AGE_CONTRAST = 0.35
"""A view's contrast is scaled by ``1 - AGE_CONTRAST · a``."""
ATTRIBUTE_MIX = (0.55, 0.25, 0.2)
"""Weights of the class mean, the within-class (reversed) brightness quantile and the noise in the attribute."""


def class_identity_counts(total: int, num_classes: int, imbalance: float, order: np.ndarray) -> np.ndarray:
    """Identities per class: geometric from ``imbalance`` (most frequent) to 1 (least), scaled to ``total``.

    ``order[r]`` is the class with frequency rank ``r`` (0 = most frequent); the ideal real counts are rounded by
    largest remainders. Every class needs at least 2.

    Example:
        >>> class_identity_counts(100, 4, 4.0, np.arange(4)).tolist()
        [44, 28, 17, 11]
    """
    if imbalance < 1:
        raise DatasetError(f"imbalance is max/min identities per class and must be >= 1, got {imbalance}")
    rel = imbalance ** (-np.arange(num_classes) / max(num_classes - 1, 1))
    ideal = total * rel / rel.sum()
    by_rank = np.floor(ideal).astype(np.int64)
    by_rank[np.argsort(-(ideal - by_rank), kind="stable")[: total - by_rank.sum()]] += 1  # largest remainders
    if by_rank.min() < 2 or by_rank[0] < by_rank[1]:
        raise DatasetError(f"{total} identities are too few for {num_classes} classes at imbalance {imbalance}")
    counts = np.zeros(num_classes, dtype=np.int64)
    counts[order] = by_rank
    return counts


def _render_views(base: torch.Tensor, attr: np.ndarray, views: int, rng: np.random.Generator, seed: int):
    """``[n·views, 1, 28, 28]`` float views of ``base`` ``[n, 1, 28, 28]`` (identity-major order)."""
    n = base.shape[0]
    m = n * views
    theta = np.deg2rad(rng.uniform(-ROTATION_DEGREES, ROTATION_DEGREES, m))
    scale = rng.uniform(*SCALE_RANGE, m)
    shift = rng.uniform(-SHIFT_PIXELS, SHIFT_PIXELS, (m, 2)) * (2.0 / 28.0)  # pixels -> normalised coordinates
    bright = rng.uniform(*BRIGHTNESS_RANGE, m)
    cos, sin = np.cos(theta) / scale, np.sin(theta) / scale
    mats = np.stack([np.stack([cos, -sin, shift[:, 0]], 1), np.stack([sin, cos, shift[:, 1]], 1)], 1)
    src = base.repeat_interleave(views, dim=0)
    grid = F.affine_grid(torch.from_numpy(mats).float(), list(src.shape), align_corners=False)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    contrast = 1.0 - AGE_CONTRAST * np.repeat(attr, views)
    out = out * torch.from_numpy(bright * contrast).float().view(-1, 1, 1, 1)
    gen = torch.Generator().manual_seed(int(seed))
    out = out + NOISE_STD * torch.randn(out.shape, generator=gen)
    return out.clamp_(0.0, 1.0)


def _build_side(
    images: torch.Tensor,
    labels: np.ndarray,
    counts: np.ndarray,
    class_mean: np.ndarray,
    views: int,
    size: int,
    rng: np.random.Generator,
    seed: int,
    first_group: int,
):
    base_idx, attrs = [], []
    ink = images.float().div(255.0).mean(dim=(1, 2, 3)).numpy()
    for c, n_c in enumerate(counts):
        pool = np.flatnonzero(labels == c)
        if len(pool) < n_c:
            raise DatasetError(f"class {c} has {len(pool)} base images, {n_c} identities asked")
        pick = np.sort(rng.choice(pool, size=int(n_c), replace=False))
        q = np.argsort(np.argsort(-ink[pick])) / max(len(pick) - 1, 1)  # 1 = the faintest of its class
        a = ATTRIBUTE_MIX[0] * class_mean[c] + ATTRIBUTE_MIX[1] * q + ATTRIBUTE_MIX[2] * rng.uniform(0, 1, len(pick))
        base_idx.append(pick)
        attrs.append(np.clip(a, 0.0, 1.0))
    base_idx_a = np.concatenate(base_idx)
    attr = np.concatenate(attrs)
    order = rng.permutation(len(base_idx_a))  # identities in random order, not sorted by class
    base_idx_a, attr = base_idx_a[order], attr[order]
    base = images[torch.from_numpy(base_idx_a)].float().div(255.0)
    x = _render_views(base, attr, views, rng, seed)
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="area")
    x = (x * 255.0).round_().to(torch.uint8)
    y = np.repeat(labels[base_idx_a], views)
    groups = np.repeat(np.arange(len(base_idx_a)) + first_group, views)
    return x, y, groups, attr, base_idx_a


@functools.lru_cache(maxsize=2)
def _fashion_mnist(root: str | None) -> DatasetSplits:
    """Fashion-MNIST, read once per process (several proxies of one run share it; it is only read from)."""
    from .idx import load_fashion_mnist

    return load_fashion_mnist(root)


def load_fmnist_identities(
    *,
    root: str | os.PathLike | None = None,
    seed: int = 0,
    train_identities: int = 600,
    test_identities: int = 300,
    views: int = 5,
    image_size: int = 14,
    imbalance: float = 5.0,
) -> DatasetSplits:
    """The grouped, imbalanced Fashion-MNIST proxy of the 004 study (see the module docstring).

    Args:
        root: Fashion-MNIST folder (default: the embedded one, as :func:`load_fashion_mnist`).
        seed: everything (base images, classes' order and attribute means, views, noise) follows from it.
        train_identities: identities of ``D`` (each gives ``views`` images).
        test_identities: identities of the test split (disjoint: built from Fashion-MNIST test images).
        views: images per identity.
        image_size: side of the square images (28 = Fashion-MNIST's; 14 halves it by area averaging).
        imbalance: identities of the most frequent class / of the least frequent (geometric in between).

    Raises:
        DatasetError: sizes that do not fit (too few identities or base images, ``views < 2``...).
    """
    if views < 2:
        raise DatasetError(f"an identity needs at least 2 views, got {views}")
    if train_identities < 20 or test_identities < 10:
        raise DatasetError(
            f"need at least 20 training and 10 test identities, got {train_identities} and {test_identities}"
        )
    if not 4 <= image_size <= 28:
        raise DatasetError(f"image_size must be in [4, 28], got {image_size}")
    fm = _fashion_mnist(str(root) if root is not None else None)
    num_classes = fm.num_classes
    rng = np.random.default_rng(seed)
    freq_order = rng.permutation(num_classes)
    class_mean = np.empty(num_classes)
    class_mean[rng.permutation(num_classes)] = np.linspace(0.1, 0.9, num_classes)
    train_counts = class_identity_counts(train_identities, num_classes, imbalance, freq_order)
    test_counts = class_identity_counts(test_identities, num_classes, imbalance, freq_order)
    side_seed = int(rng.integers(2**31))
    xs, ys, gs, attr_tr, base_tr = _build_side(
        fm.train.images, fm.train.labels.numpy(), train_counts, class_mean, views, image_size, rng, side_seed, 0
    )
    xt, yt, gt, attr_te, base_te = _build_side(
        fm.test.images,
        fm.test.labels.numpy(),
        test_counts,
        class_mean,
        views,
        image_size,
        rng,
        side_seed + 1,
        train_identities,
    )
    name = "fmnist-identities"
    attributes = {int(g): float(a) for g, a in enumerate(attr_tr)}
    attributes.update({int(g) + train_identities: float(a) for g, a in enumerate(attr_te)})
    info = {
        "format": "fmnist-identities",
        "seed": seed,
        "views": views,
        "image_size": image_size,
        "imbalance": float(imbalance),
        "identities_per_class_train": train_counts.tolist(),
        "identities_per_class_test": test_counts.tolist(),
        "class_attribute_mean": class_mean.round(6).tolist(),
        "group_attributes": attributes,
        "train_base_indices": base_tr.tolist(),
        "test_base_indices": base_te.tolist(),
        "attribute": "synthetic 'age' in [0, 1] (see oblivio.data.identities)",
    }
    train = ImageDataset(torch.from_numpy(np.asarray(xs)), ys, fm.classes, name=f"{name}/train", groups=gs)
    test = ImageDataset(torch.from_numpy(np.asarray(xt)), yt, fm.classes, name=f"{name}/test", groups=gt)
    return DatasetSplits(train, test, name=name, info=info)


def imbalance_ratio(labels: np.ndarray, num_classes: int) -> float:
    """Most frequent class count / least frequent (inf when a class is empty)."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes)
    return math.inf if counts.min() == 0 else float(counts.max() / counts.min())


__all__ = ["class_identity_counts", "imbalance_ratio", "load_fmnist_identities"]
