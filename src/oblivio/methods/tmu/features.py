"""TMU step 2: the three features that separate easy from hard forget samples, and their robust scaling.

Each feature is a pure function of tensors (testable on its own) plus a thin wrapper that runs a model on an
:class:`ImageDataset`:

* NF, nearest distance: mean L2 distance of a sample's L2-normalised penultimate features to its ``k`` nearest
  "remain" samples of the same class (:func:`nearest_distance`, :func:`nf_feature`).
* AF, adversarial: how much an untargeted L∞ PGD attack with a small budget moves the model's softmax
  (:func:`pgd_attack`, :func:`attack_divergence`, :func:`af_feature`).
* CF, curriculum loss: per-sample cross-entropy of a freshly initialised copy of the architecture trained for one
  or two epochs (:func:`fresh_copy`, :func:`train_curriculum_model`, :func:`per_sample_loss`).

:class:`RobustScaler` clips each feature at the Tukey fences (1.5 IQR) of the twin set and min-max scales it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...data.base import ImageDataset
from ...data.loader import TensorLoader, stratified_sample
from ...training.evaluate import predict_features, predict_logits
from ...training.loop import fit
from ...utils import eval_mode, model_device

__all__ = [
    "FEATURE_NAMES",
    "AFForm",
    "RobustScaler",
    "af_feature",
    "attack_divergence",
    "fresh_copy",
    "nearest_distance",
    "nf_feature",
    "nf_reference",
    "per_sample_loss",
    "pgd_attack",
    "train_curriculum_model",
]

FEATURE_NAMES = ("nf", "af", "cf")
AFForm = Literal["kl", "ce"]


# ---------------------------------------------------------------------------------------------- NF
def _knn_mean_distance(q: torch.Tensor, r: torch.Tensor, k: int, chunk_size: int) -> torch.Tensor:
    """Mean distance of each row of ``q`` to its ``k`` nearest rows of ``r`` (both chunked; exact)."""
    out = torch.empty(q.shape[0], dtype=q.dtype)
    r_sq = (r * r).sum(1)
    for qs in range(0, q.shape[0], chunk_size):
        qc = q[qs : qs + chunk_size]
        q_sq = (qc * qc).sum(1, keepdim=True)
        best = None  # running k smallest squared distances [q, k']
        for rs in range(0, r.shape[0], chunk_size):
            d2 = (q_sq + r_sq[None, rs : rs + chunk_size] - 2.0 * qc @ r[rs : rs + chunk_size].T).clamp_min_(0.0)
            cand = d2 if best is None else torch.cat([best, d2], 1)
            best = cand.topk(min(k, cand.shape[1]), dim=1, largest=False).values
        out[qs : qs + chunk_size] = best.sqrt().mean(1)  # type: ignore[union-attr]
    return out


def nearest_distance(
    query: torch.Tensor,
    query_labels: torch.Tensor,
    reference: torch.Tensor,
    reference_labels: torch.Tensor,
    *,
    k: int = 5,
    normalize: bool = True,
    chunk_size: int = 2048,
) -> torch.Tensor:
    """NF: mean L2 distance from each query vector to its ``k`` nearest reference vectors of the same class.

    The search is exact: squared distances ``‖a‖² + ‖b‖² − 2ab`` in ``chunk_size × chunk_size`` blocks with a
    running top-k, so memory stays ``O(chunk_size²)`` whatever the set sizes.

    Args:
        query: ``[N, D]`` features of the samples to describe (the forget / twin set).
        query_labels: ``[N]`` their classes.
        reference: ``[M, D]`` features of the remain set.
        reference_labels: ``[M]`` its classes.
        k: neighbours averaged (TMU: 5). A class with fewer than ``k`` reference samples uses all it has.
        normalize: L2-normalise both sides first (TMU's ``g()``).
        chunk_size: block size of the distance computation.

    Returns:
        ``[N]`` float32 distances. A query whose class has no reference sample gets the largest possible distance
        (2 for normalised features, else the largest distance seen).

    Example:
        >>> q = torch.tensor([[1.0, 0.0]]); r = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> nearest_distance(q, torch.tensor([0]), r, torch.tensor([0, 0]), k=1).tolist()
        [0.0]
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    q, r = query.float().cpu(), reference.float().cpu()
    if normalize:
        q, r = F.normalize(q, dim=1), F.normalize(r, dim=1)
    ql, rl = query_labels.long().cpu(), reference_labels.long().cpu()
    out = torch.full((q.shape[0],), float("nan"))
    for c in torch.unique(ql).tolist():
        qi, ri = (ql == c).nonzero().squeeze(1), (rl == c).nonzero().squeeze(1)
        if ri.numel():
            out[qi] = _knn_mean_distance(q[qi], r[ri], k, chunk_size)
    missing = torch.isnan(out)
    if missing.any():
        fill = 2.0 if normalize else float(out[~missing].max()) if (~missing).any() else 0.0
        out[missing] = fill
    return out


def nf_reference(
    query_labels: torch.Tensor, remain: ImageDataset, *, max_size: int | None = None, seed: int = 0
) -> ImageDataset:
    """The remain samples NF can use as neighbours: those of the query's classes (the search is per class), and
    at most ``max_size`` of them (a class-stratified sample, for multi-class requests).

    The sample is drawn from the candidates ordered by sample id, so the same ``remain`` gives the same
    reference set whatever its order (cold and warm requests, twin and original problems agree).
    """
    classes = torch.unique(torch.as_tensor(query_labels).long())
    pos = torch.nonzero(torch.isin(remain.labels, classes)).squeeze(1)
    pos = pos[torch.argsort(remain.ids[pos])]  # type: ignore[index]
    cand = remain.subset(pos, name=f"{remain.name}:nf-reference")
    if max_size is not None and len(cand) > max_size:
        cand = cand.subset(stratified_sample(cand, int(max_size), seed=seed), name=cand.name)
    return cand


def nf_feature(
    model: nn.Module,
    forget: ImageDataset,
    remain: ImageDataset,
    *,
    k: int = 5,
    batch_size: int = 512,
    chunk_size: int = 2048,
    max_reference: int | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """NF of every ``forget`` sample with respect to ``remain``, in ``model``'s penultimate feature space.

    Only the reference samples NF can use (:func:`nf_reference`: same classes as ``forget``, at most
    ``max_reference``) go through the model; with ``max_reference=None`` the result equals the search over all of
    ``remain``.
    """
    ref = nf_reference(forget.labels, remain, max_size=max_reference, seed=seed)
    return nearest_distance(
        predict_features(model, forget, batch_size=batch_size),
        forget.labels,
        predict_features(model, ref, batch_size=batch_size),
        ref.labels,
        k=k,
        chunk_size=chunk_size,
    )


# ---------------------------------------------------------------------------------------------- AF
def pgd_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float = 4 / 255,
    steps: int = 5,
    step_size: float | None = None,
    random_start: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Untargeted L∞ PGD (Madry et al.): maximise the cross-entropy of the true label ``y``.

    Inputs are images in [0, 1] (the model normalises inside), so ``eps`` is in pixel units. Every iterate is
    projected to the ε-ball around ``x`` and clamped to [0, 1]. The model's parameters receive no gradient and its
    train/eval mode is restored (the attack runs in eval mode).

    Args:
        model: the attacked classifier.
        x: ``[B, C, H, W]`` clean images in [0, 1].
        y: ``[B]`` labels.
        eps: L∞ budget (TMU: 4/255).
        steps: PGD iterations (ours: 5).
        step_size: per-step size (default ``eps / 3``).
        random_start: start from a uniform point in the ε-ball. Off by default: the feature is then deterministic,
            and 5 steps of ε/3 from the clean point can still reach every corner of the ball.
        generator: random source for the random start.

    Returns:
        The adversarial images (detached).
    """
    step = eps / 3 if step_size is None else step_size
    x = x.detach()
    if eps <= 0 or steps <= 0:
        return x.clone()
    if random_start:
        noise = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x.device) * eps
        adv = (x + noise).clamp(0.0, 1.0)
    else:
        adv = x.clone()
    with eval_mode(model):
        for _ in range(steps):
            adv.requires_grad_(True)
            loss = F.cross_entropy(model(adv), y)
            (grad,) = torch.autograd.grad(loss, adv)
            adv = adv.detach() + step * grad.sign()
            adv = torch.min(torch.max(adv, x - eps), x + eps).clamp_(0.0, 1.0)
    return adv.detach()


def attack_divergence(logits_adv: torch.Tensor, logits_clean: torch.Tensor, *, form: AFForm = "kl") -> torch.Tensor:
    """Per-sample divergence between the attacked and the clean softmax.

    ``form="ce"`` is the paper's ``H(s(x̃), s(x)) = −Σ s(x̃) log s(x)``; ``form="kl"`` (default) subtracts the
    attacked prediction's own entropy, ``H(s(x̃), s(x)) − H(s(x̃)) = KL(s(x̃) ‖ s(x))``, which is zero when the
    attack changes nothing and so measures only the attack's effect.

    Example:
        >>> z = torch.tensor([[2.0, 0.0]])
        >>> attack_divergence(z, z).tolist()
        [0.0]
    """
    p_adv = logits_adv.float().softmax(1)
    log_p_adv = logits_adv.float().log_softmax(1)
    log_p_clean = logits_clean.float().log_softmax(1)
    ce = -(p_adv * log_p_clean).sum(1)
    if form == "ce":
        return ce
    if form == "kl":
        return (ce + (p_adv * log_p_adv).sum(1)).clamp_min(0.0)
    raise ValueError(f"unknown AF form {form!r}; use 'kl' or 'ce'")


def af_feature(
    model: nn.Module,
    dataset: ImageDataset,
    *,
    eps: float = 4 / 255,
    steps: int = 5,
    step_size: float | None = None,
    random_start: bool = False,
    form: AFForm = "kl",
    batch_size: int = 256,
    seed: int = 0,
) -> torch.Tensor:
    """AF of every sample of ``dataset``: :func:`attack_divergence` after :func:`pgd_attack` (``[N]``, on the CPU)."""
    device = model_device(model)
    gen = torch.Generator().manual_seed(int(seed))
    outs = []
    for batch in TensorLoader(dataset, batch_size=batch_size, device=device):
        adv = pgd_attack(
            model, batch.x, batch.y, eps=eps, steps=steps, step_size=step_size, random_start=random_start, generator=gen
        )
        with torch.no_grad(), eval_mode(model):
            outs.append(attack_divergence(model(adv), model(batch.x), form=form).cpu())
    return torch.cat(outs) if outs else torch.zeros(0)


# ---------------------------------------------------------------------------------------------- CF
def fresh_copy(model: nn.Module, *, seed: int | None = None) -> nn.Module:
    """A randomly re-initialised copy of ``model`` (same architecture; every ``reset_parameters`` is called).

    Buffers without a reset (e.g. the input normalisation statistics) are kept.
    """
    new = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        for module in new.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    return new


def train_curriculum_model(
    model: nn.Module,
    train_set: ImageDataset,
    *,
    epochs: int = 1,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = False,
) -> nn.Module:
    """The CF model ``M_r``: a fresh copy of ``model``'s architecture trained ``epochs`` epochs on ``train_set``."""
    fresh = fresh_copy(model, seed=seed)
    loader = TensorLoader(train_set, batch_size=batch_size, shuffle=True, seed=seed, device=model_device(fresh))
    opt = torch.optim.SGD(fresh.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    fit(fresh, loader, epochs=epochs, optimizer=opt, progress=progress, desc="tmu curriculum")
    return fresh.eval()


def per_sample_loss(model: nn.Module, dataset: ImageDataset, *, batch_size: int = 512) -> torch.Tensor:
    """CF: per-sample cross-entropy of ``model`` on ``dataset`` (eval mode), ``[N]``."""
    logits = predict_logits(model, dataset, batch_size=batch_size)
    return F.cross_entropy(logits, dataset.labels, reduction="none")


# ---------------------------------------------------------------------------------------------- scaling
@dataclass(frozen=True)
class RobustScaler:
    """Per-feature clipping at the Tukey fences and min-max scaling, fitted on the twin set.

    Fitting on ``x`` computes ``lo = max(Q1 − 1.5 IQR, min x)`` and ``hi = min(Q3 + 1.5 IQR, max x)`` per column
    (quartiles by linear interpolation, as ``numpy.quantile``); :meth:`transform` clips to ``[lo, hi]`` and maps
    that interval to [0, 1]. On the fitting data this is exactly "clip at 1.5 IQR, then min-max"; on new data
    (the original problem) values beyond the twin range saturate at 0 or 1. A constant column maps to 0.

    Example:
        >>> s = RobustScaler.fit(torch.tensor([[1.0], [2.0], [3.0], [4.0], [100.0]]))
        >>> [round(v, 4) for v in s.transform(torch.tensor([[1.0], [100.0]])).squeeze(1).tolist()]
        [0.0, 1.0]
    """

    lo: torch.Tensor
    hi: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor, *, whisker: float = 1.5) -> RobustScaler:
        x = torch.as_tensor(x, dtype=torch.float64)
        if x.dim() != 2 or x.shape[0] == 0:
            raise ValueError(f"fit needs a non-empty [N, F] matrix, got shape {tuple(x.shape)}")
        q1, q3 = torch.quantile(x, 0.25, dim=0), torch.quantile(x, 0.75, dim=0)
        iqr = q3 - q1
        lo = torch.maximum(q1 - whisker * iqr, x.min(0).values)
        hi = torch.minimum(q3 + whisker * iqr, x.max(0).values)
        return cls(lo=lo, hi=hi)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float64)
        span = self.hi - self.lo
        clipped = torch.minimum(torch.maximum(x, self.lo), self.hi)
        out = torch.where(span > 0, (clipped - self.lo) / torch.where(span > 0, span, 1.0), torch.zeros_like(x))
        return out.float()
