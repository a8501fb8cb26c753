"""TMU step 1: the twin problem (twin set ``D_tw``, twin model ``M_t``, twin generalisation labels).

The twin set plays, for the twin model, the role the forget set plays for the original model: ``M_t`` is ``M_o``
fine-tuned on ``D_r ∪ D_f ∪ D_tw`` until it has memorised ``D_tw`` as well as ``M_o`` memorised ``D_f``, so the
twin problem's gold model is ``M_o`` itself and the generalisation label of a twin sample is ``[M_o(x) == y]``.

The twin images come from ``holdout`` (unseen images of the training distribution, disjoint from the evaluation
test split), our stand-in for the paper's test images.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ...data.base import ImageDataset
from ...data.loader import TensorLoader, ZipLoader
from ...data.transforms import random_crop, random_hflip
from ...training.class_weights import ce as weighted_ce
from ...training.evaluate import accuracy, predict_logits
from ...training.loop import StopWhen, fit
from ...utils import model_device
from ..base import UnlearningError

__all__ = ["TwinSet", "augment_images", "build_twin_sets", "generalisation_labels", "train_twin_model", "twin_size"]


def twin_size(n_forget: int, n_retain: int) -> int:
    """Size of the twin set from Eq. 3 of TMU: ``|D_f| / |D_r| = |D_tw| / (|D_r| + |D_f|)``.

    Args:
        n_forget: ``|D_f|``.
        n_retain: ``|D_r|``.

    Returns:
        ``round(|D_f| (|D_r| + |D_f|) / |D_r|)``, at least 1.

    Example:
        >>> twin_size(100, 49900)
        100
        >>> twin_size(5000, 45000)
        5556
    """
    if n_forget <= 0 or n_retain <= 0:
        raise ValueError(f"both sets must be non-empty, got |D_f|={n_forget}, |D_r|={n_retain}")
    return max(1, int(round(n_forget * (n_retain + n_forget) / n_retain)))


def _quotas(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes proportionally to ``counts`` (largest remainders get the leftovers)."""
    share = counts / counts.sum() * total
    quota = np.floor(share).astype(int)
    rest = total - int(quota.sum())
    if rest > 0:
        for c in np.argsort(-(share - quota), kind="stable")[:rest]:
            quota[c] += 1
    return quota


def augment_images(x: torch.Tensor, spec: str, generator: torch.Generator, *, noise_std: float = 0.03) -> torch.Tensor:
    """Randomly augmented copies of float images in [0, 1] (used to grow a too-small twin set).

    Args:
        x: ``[B, C, H, W]`` float images in [0, 1].
        spec: parts joined by ``+``: ``flip`` (horizontal flip, p = 0.5), ``crop`` / ``cropN`` (random crop after
            zero-padding by N pixels; default ``max(1, H // 8)``), ``noise`` (Gaussian pixel noise), or ``none``.
        generator: the random source (CPU generator).
        noise_std: standard deviation of the pixel noise.

    Returns:
        Augmented images, clamped to [0, 1].
    """
    out = x.clone()
    for part in str(spec).lower().replace(" ", "").split("+"):
        if part in ("", "none"):
            continue
        if part == "flip":
            out = random_hflip(out, p=0.5, generator=generator)
        elif part.startswith("crop"):
            pad = int(part[4:]) if part[4:] else max(1, x.shape[-2] // 8)
            out = random_crop(out, pad, generator=generator)
        elif part == "noise":
            out = out + noise_std * torch.randn(out.shape, generator=generator).to(out.device)
        else:
            raise ValueError(f"unknown twin augmentation {part!r} in {spec!r}; use flip, crop[N], noise joined by '+'")
    return out.clamp_(0.0, 1.0)


@dataclass
class TwinSet:
    """One twin set and how it was made.

    Attributes:
        data: the twin images (float, in [0, 1]) with their true labels; ids are the holdout ids of the source images.
        augmented: ``[N]`` bool mask of the samples that are augmented copies.
    """

    data: ImageDataset
    augmented: torch.Tensor = field(repr=False)

    @property
    def n_augmented(self) -> int:
        return int(self.augmented.sum())


def real_twin_capacity(forget: ImageDataset, holdout: ImageDataset, *, size: int) -> int:
    """How many disjoint twin sets of ``size`` images ``holdout`` can fill with real (not augmented) images."""
    quota = _quotas(forget.class_counts().numpy(), size)
    hold_counts = holdout.class_counts().numpy()
    caps = [int(hold_counts[c] // quota[c]) for c in np.flatnonzero(quota)]
    return max(1, min(caps)) if caps else 1


def build_twin_sets(
    forget: ImageDataset,
    holdout: ImageDataset,
    *,
    size: int,
    n_twins: int = 1,
    seed: int = 0,
    augment: str = "crop+flip+noise",
) -> list[TwinSet]:
    """Draw ``n_twins`` disjoint twin sets from ``holdout``, each of ``size`` images in ``forget``'s class proportions.

    Per class, the holdout images of that class are shuffled and split into ``n_twins`` disjoint parts. A twin set
    takes a random sample of its part when the part is large enough, and otherwise all of it plus augmented copies
    (see :func:`augment_images`) of randomly chosen images of the part (the paper: "randomly sample ... otherwise
    employ data augmentation").

    Args:
        forget: ``D_f`` (only its labels are read).
        holdout: the source of unseen images.
        size: images per twin set (usually :func:`twin_size`).
        n_twins: number of disjoint twin sets.
        seed: sampling / augmentation seed.
        augment: augmentation spec for the augment branch.

    Returns:
        A list of :class:`TwinSet`.

    Raises:
        UnlearningError: ``holdout`` has too few images of a forget class (fewer than ``n_twins``).
    """
    if size <= 0 or n_twins <= 0:
        raise ValueError(f"size and n_twins must be positive, got size={size}, n_twins={n_twins}")
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(seed))
    counts = forget.class_counts().numpy()
    quota = _quotas(counts, size)
    hold_labels = holdout.labels.numpy()
    parts: dict[int, list[np.ndarray]] = {}
    for c in np.flatnonzero(quota):
        cand = np.flatnonzero(hold_labels == c)
        if cand.size < n_twins:
            raise UnlearningError(
                f"holdout has {cand.size} image(s) of class {holdout.classes[c]!r} but the twin set needs at least "
                f"{n_twins} (one per twin); use a larger holdout split or n_twins=1"
            )
        parts[int(c)] = np.array_split(rng.permutation(cand), n_twins)
    twins = []
    for t in range(n_twins):
        images, labels, ids, aug = [], [], [], []
        for c, class_parts in parts.items():
            part, need = class_parts[t], int(quota[c])
            if part.size >= need:
                pick = np.sort(rng.choice(part, size=need, replace=False))
                images.append(holdout.float_images(torch.as_tensor(pick)))
                extra = np.zeros(0, dtype=np.int64)
            else:
                pick = np.sort(part)
                extra = rng.choice(part, size=need - part.size, replace=True)
                images.append(holdout.float_images(torch.as_tensor(pick)))
                images.append(augment_images(holdout.float_images(torch.as_tensor(extra)), augment, gen))
            labels.append(torch.full((pick.size + extra.size,), c, dtype=torch.long))
            ids.append(holdout.ids[torch.as_tensor(np.concatenate([pick, extra]).astype(np.int64))])
            aug.append(torch.cat([torch.zeros(pick.size, dtype=torch.bool), torch.ones(extra.size, dtype=torch.bool)]))
        data = ImageDataset(torch.cat(images), torch.cat(labels), holdout.classes, name=f"twin{t}", ids=torch.cat(ids))
        twins.append(TwinSet(data=data, augmented=torch.cat(aug)))
    return twins


def generalisation_labels(model: nn.Module, dataset: ImageDataset, *, batch_size: int = 512) -> torch.Tensor:
    """``[M(x) == y]`` per sample as a ``long`` tensor (1 = easy, 0 = hard).

    With ``model = M_o`` on the twin set these are the twin problem's true labels (its gold model is ``M_o``);
    with the gold model on ``D_f`` they are the original problem's true labels.
    """
    if len(dataset) == 0:
        return torch.zeros(0, dtype=torch.long)
    return (predict_logits(model, dataset, batch_size=batch_size).argmax(1) == dataset.labels).long()


def train_twin_model(
    original: nn.Module,
    *,
    retain: ImageDataset,
    forget: ImageDataset,
    twin: ImageDataset,
    epochs: int = 30,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 64,
    twin_batch_size: int = 16,
    replay_fraction: float = 0.1,
    target_accuracy: float | None = None,
    seed: int = 0,
    check_every: int | None = None,
    progress: bool = False,
    class_weights: torch.Tensor | None = None,
) -> tuple[nn.Module, dict]:
    """The twin model ``M_t``: ``M_o`` fine-tuned on ``D_r ∪ D_f ∪ D_tw`` until ``D_tw`` is memorised.

    Each step trains on one batch of replayed training data (a fresh random ``replay_fraction`` of ``D_r ∪ D_f``
    per epoch) concatenated with one batch of ``D_tw`` (cycled, so the small twin set is oversampled: it is seen
    about ``len(replay batches) * twin_batch_size / |D_tw|`` times per epoch). Training stops at the end of the
    first epoch where ``acc(M_t, D_tw) >= target_accuracy`` (default ``acc(M_o, D_f)``), or after ``epochs``; with
    ``check_every=n`` the target is also checked after every ``n``-th step (``|D_tw|`` forwards each) and training
    stops there.

    Args:
        original: ``M_o`` (not modified).
        retain: ``D_r``.
        forget: ``D_f``.
        twin: ``D_tw``.
        epochs: epoch cap.
        lr: SGD learning rate.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        batch_size: replay batch size.
        twin_batch_size: twin batch size per step.
        replay_fraction: fraction of ``D_r ∪ D_f`` replayed per epoch.
        target_accuracy: accuracy on ``D_tw`` to reach (default ``acc(M_o, D_f)``).
        seed: data-order seed.
        check_every: also check the target every this many steps (None: at epoch ends only).
        progress: progress bar.

    Returns:
        ``(M_t, info)`` with ``epochs``, ``target_accuracy``, ``twin_accuracy`` (final), ``reached``.
    """
    target = accuracy(original, forget) if target_accuracy is None else float(target_accuracy)
    model = copy.deepcopy(original)
    start_acc = accuracy(model, twin)
    info = {"target_accuracy": target, "twin_accuracy_start": start_acc}
    if start_acc >= target or epochs == 0:
        info.update(epochs=0, twin_accuracy=start_acc, reached=start_acc >= target)
        return model, info
    device = model_device(model)
    replay = retain.concat(forget, name="replay")
    loaders = ZipLoader(
        {
            "replay": TensorLoader(
                replay, batch_size=batch_size, shuffle=True, fraction=replay_fraction, seed=seed, device=device
            ),
            "twin": TensorLoader(
                twin, batch_size=min(twin_batch_size, len(twin)), shuffle=True, seed=seed + 1, device=device
            ),
        },
        primary="replay",
    )

    def loss_fn(m: nn.Module, batch) -> torch.Tensor:
        x = torch.cat([batch["replay"].x, batch["twin"].x])
        y = torch.cat([batch["replay"].y, batch["twin"].y])
        return weighted_ce(m(x), y, class_weights)  # the recipe's class weights, when set (TMU.class_weights)

    stop = StopWhen("twin_acc", lambda m: accuracy(m, twin), lambda v: v >= target, every_steps=check_every)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    result = fit(
        model,
        loaders,
        epochs=epochs,
        optimizer=opt,
        loss_fn=loss_fn,
        callbacks=[stop],
        progress=progress,
        desc="tmu twin",
    )
    final = result.history[-1]["twin_acc"] if result.history else start_acc
    info.update(
        epochs=result.epochs_run,
        steps=int(result.cost.get("steps", 0)),
        twin_accuracy=float(final),
        reached=bool(final >= target - 1e-12),
    )
    model.eval()
    return model, info
