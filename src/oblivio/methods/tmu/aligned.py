"""TMU steps 4-5: choose which forget samples to unlearn, then the aligned fine-tuning.

The paper's rule (``hard_score="predictor"``, ``hard_count="rate"``, ``hard_targets="random-label"``) calls a
forget sample *hard* when the generalisation predictor says so at a threshold that matches the twin set's easy
rate, and drives every hard sample to a random wrong label. Issue 15 measured that this wins the *count* (δ) and
loses the *samples*: a false "hard" turns a sample gold gets right into a confident wrong answer. The other
choices here are per-sample alternatives, each measured with the Table 1 protocol (docs/tmu.md):

* ``hard_score="margin"``: rank forget samples by ``M_o``'s own true-class margin ``z_y - max_{j≠y} z_j`` (a
  sample the model separates badly even after memorising it is the one a model that never saw it gets wrong);
  the twin problem supplies the same score for its memorised twin model ``M_t`` on ``D_tw``.
* ``hard_count="agreement"``: on the twin problem, whose gold labels are known, flip the fraction of
  lowest-scored samples that maximises agreement with gold (both right or both wrong) rather than the fraction
  that matches gold's error rate; a weak ranking then flips few samples, a sharp one flips gold's count.
* ``hard_targets="runner-up"``: instead of a random wrong label, train a hard sample toward ``M_o``'s own
  distribution over the *other* classes (its softmax with the true class removed and renormalised): where a model
  that did not memorise the sample is most likely to put it.
* ``hard_count="threshold"`` (exploratory, variant ``tmu.threshold``): transfer the agreement-maximising *score
  threshold* of the twin set instead of its share, so a request easier or harder than the twin set flips fewer or
  more samples (it assumes the twin model's margins and ``M_o``'s are on one scale).
* ``retain_kd``: a distillation term to ``M_o``'s outputs on the ``D_r`` batches, which keeps retain accuracy.
"""

from __future__ import annotations

import copy
import math
from fractions import Fraction
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...data.base import ImageDataset
from ...data.loader import TensorLoader, ZipLoader
from ...training.class_weights import ce as weighted_ce
from ...training.evaluate import accuracy, predict_logits
from ...training.loop import StopWhen, fit
from ...utils import eval_mode, model_device
from ..common import random_wrong_labels

__all__ = [
    "HARD_COUNTS",
    "HARD_SCORES",
    "HARD_TARGETS",
    "agreement_fraction",
    "choose_hard",
    "decide_from_evidence",
    "decide_hard",
    "hard_count_for",
    "score_threshold",
    "noise_soft_targets",
    "run_aligned_step",
    "runner_up_targets",
    "true_class_margin",
]

HardScore = Literal["predictor", "margin", "kfold", "aum", "learned", "forgetting", "kfold+aum"]
HARD_SCORES = ("predictor", "margin", "kfold", "aum", "learned", "forgetting", "kfold+aum")
HardCount = Literal["rate", "agreement", "threshold", "evidence"]
HARD_COUNTS = ("rate", "agreement", "threshold", "evidence")
HardTargets = Literal["random-label", "runner-up", "kfold-soft"]
HARD_TARGETS = ("random-label", "runner-up", "kfold-soft")
EasyTargets = Literal["label", "kfold-soft"]
EASY_TARGETS = ("label", "kfold-soft")


def true_class_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``z_y − max_{j≠y} z_j`` per row of ``logits`` ``[N, C]`` (negative: the sample is misclassified)."""
    logits = torch.as_tensor(logits, dtype=torch.float64)
    labels = torch.as_tensor(labels).long().reshape(-1)
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return true - others.max(1).values


def agreement_fraction(scores: torch.Tensor, gold_easy: torch.Tensor) -> tuple[float, float]:
    """The fraction ``k / n`` of lowest-scored samples to call hard that maximises agreement with ``gold_easy``.

    Calling the ``k`` lowest-scored samples hard and the rest easy agrees with the gold labels on
    ``#hard-among-k + #easy-among-rest`` samples; the smallest maximising ``k`` wins (ties: fewer flips). Returns
    ``(k / n, best agreement)``. Scores are ranked with a stable sort (ties keep their order).

    Example:
        >>> agreement_fraction(torch.tensor([0.1, 0.2, 0.9, 0.8]), torch.tensor([0, 0, 1, 1]))
        (0.5, 1.0)
        >>> agreement_fraction(torch.tensor([0.1, 0.2, 0.9, 0.8]), torch.tensor([1, 1, 1, 0]))
        (0.0, 0.75)
    """
    s = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    g = torch.as_tensor(gold_easy).long().reshape(-1)
    if s.numel() != g.numel() or s.numel() == 0:
        raise ValueError(f"scores and gold labels must be non-empty and of one length, got {s.numel()} and {g.numel()}")
    order = torch.sort(s, stable=True).indices
    easy_sorted = g[order].double()
    # agreement(k) = (#hard among the first k) + (#easy among the rest), k = 0..n
    hard_prefix = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(1 - easy_sorted, 0)])
    easy_suffix = easy_sorted.sum() - torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(easy_sorted, 0)])
    agree = hard_prefix + easy_suffix
    k = int(torch.argmax(agree))  # first maximum: the fewest flips
    return k / s.numel(), float(agree[k]) / s.numel()


def decide_hard(
    info: dict,
    *,
    hard_score: str,
    hard_count: str,
    predictor: Any,
    x_tw: torch.Tensor | None,
    x_f: torch.Tensor | None,
    labels_tw: torch.Tensor,
    twin_margins: torch.Tensor,
    model: nn.Module,
    forget: ImageDataset,
    count_z: float = 0.0,
) -> torch.Tensor:
    """Easy (1) / hard (0) per forget sample under ``hard_score`` and ``hard_count``.

    With ``count_z > 0`` (issue 23) the hard share ``f`` of the rate or agreement count is lowered to
    ``max(0, f − count_z · sqrt(f (1 − f) / |D_tw|))`` (``hard_fraction_se`` and ``hard_fraction_raw`` in ``info``):
    fewer flips when a share estimated from few twin images is unsure.

    The paper's rule (predictor, rate) is ``predictor.predict`` at its rate-matching threshold. Any other rule
    writes ``hard_fraction`` (and, for the agreement count, ``twin_rule_agreement``: the rule's agreement with gold
    on the twin set) to ``info``, and ``paper_rule_labels`` (what the paper's rule would have decided, for
    comparison) when a ``predictor`` is given. The margin score needs no predictor (``predictor=None``, ``x_tw`` and
    ``x_f`` unused)."""
    if predictor is None and hard_score == "predictor":
        raise ValueError("hard_score='predictor' needs the trained predictor and the scaled features")
    if hard_score == "predictor" and hard_count == "rate":
        return predictor.predict(x_f)
    if predictor is not None:
        info["paper_rule_labels"] = predictor.predict(x_f).tolist()
    if hard_score == "predictor":
        score_tw, score_f = predictor.predict_proba(x_tw), predictor.predict_proba(x_f)
    else:
        score_tw, score_f = twin_margins, true_class_margin(predict_logits(model, forget), forget.labels)
    if hard_count == "rate":  # as many hard as the twin problem's gold error rate
        fraction = 1.0 - float(torch.as_tensor(labels_tw).double().mean())
    else:
        fraction, info["twin_rule_agreement"] = agreement_fraction(score_tw, labels_tw)
    if count_z > 0 and hard_count != "threshold":
        n_tw = int(torch.as_tensor(labels_tw).numel())
        se = math.sqrt(max(fraction * (1 - fraction), 0.0) / max(1, n_tw))
        info.update(hard_fraction_raw=fraction, hard_fraction_se=se)
        fraction = max(0.0, fraction - count_z * se)
    if hard_count == "threshold":  # the twin set's cut in score units, not its share
        cut = score_threshold(score_tw, fraction)
        labels = (torch.as_tensor(score_f, dtype=torch.float64).reshape(-1) >= cut).long()
        info.update(hard_fraction=float((labels == 0).double().mean()), hard_threshold=cut)
        return labels
    info["hard_fraction"] = fraction
    return choose_hard(score_f, fraction)


def decide_from_evidence(
    info: dict,
    *,
    hard_score: str,
    hard_count: str,
    evidence: Any,
    labels_tw: torch.Tensor | None,
    forget: ImageDataset,
) -> torch.Tensor:
    """Easy (1) / hard (0) per forget sample from held-out evidence (issue 23; :mod:`.evidence`).

    The score ranks ``D_f`` (:func:`~.evidence.evidence_scores`: K-fold held-out margin, area under the margin,
    learned epoch, forgetting events, or a rank mix); the count is either the number of forget images the K-fold
    held-out models misclassify (``hard_count="evidence"``: no twin problem at all) or the twin problem's gold error
    rate (``"rate"``). Writes ``hard_fraction`` and, when the K-fold outputs exist, ``evidence_wrong`` (their count of
    misclassified forget images) to ``info``.
    """
    from .evidence import evidence_scores

    ids, y = forget.ids, forget.labels
    scores = evidence_scores(evidence, hard_score, ids=ids, labels=y)  # type: ignore[arg-type]
    if hard_count == "evidence":
        wrong = evidence_scores(evidence, "kfold", ids=ids, labels=y) < 0  # type: ignore[arg-type]
        k = int(wrong.sum())
        info["evidence_wrong"] = k
    elif hard_count == "rate":
        if labels_tw is None:
            raise ValueError("hard_count='rate' needs the twin problem's labels")
        k = hard_count_for(1.0 - float(torch.as_tensor(labels_tw).double().mean()), len(forget))
    else:
        raise ValueError(f"an evidence score takes hard_count 'evidence' or 'rate', got {hard_count!r}")
    labels = torch.ones(len(forget), dtype=torch.long)
    labels[torch.sort(scores.double(), stable=True).indices[:k]] = 0
    info["hard_fraction"] = k / max(1, len(forget))
    return labels


def score_threshold(scores: torch.Tensor, fraction: float) -> float:
    """The score cut that calls the ``round(fraction · n)`` lowest of ``scores`` hard: the midpoint between the last
    score called hard and the next one (``-inf`` when none is hard, ``+inf`` when all are). A sample is hard when its
    score is below the cut.

    Example:
        >>> score_threshold(torch.tensor([0.1, 0.9, 0.4, 0.7]), 0.5)
        0.55
        >>> score_threshold(torch.tensor([0.1, 0.9]), 0.0)
        -inf
    """
    s = torch.sort(torch.as_tensor(scores, dtype=torch.float64).reshape(-1)).values
    k = hard_count_for(fraction, s.numel())
    if k == 0:
        return float("-inf")
    if k >= s.numel():
        return float("inf")
    return float((s[k - 1] + s[k]) / 2)


def hard_count_for(fraction: float, n: int) -> int:
    """``fraction · n`` rounded to the nearest integer, an exact half going to the smaller count (fewer flips, as in
    :func:`agreement_fraction`). The fraction is read as the ratio of integers it came from (denominator at most
    10⁶, e.g. ``k / |D_tw|``), so float noise cannot decide a tie.

    Example:
        >>> [hard_count_for(f, 30) for f in (0.05, 0.15, 1 / 12, 0.0, 1.0)]
        [1, 4, 2, 0, 30]
    """
    x = Fraction(float(fraction)).limit_denominator(10**6) * int(n)
    return int(math.ceil(x - Fraction(1, 2)))


def choose_hard(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """Labels ``[N]`` (1 = easy, 0 = hard) calling the :func:`hard_count_for` ``(fraction, N)`` lowest-scored
    samples hard (ties of scores keep their order)."""
    s = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    k = hard_count_for(fraction, s.numel())
    labels = torch.ones(s.numel(), dtype=torch.long)
    labels[torch.sort(s, stable=True).indices[:k]] = 0
    return labels


@torch.no_grad()
def runner_up_targets(model: nn.Module, dataset: ImageDataset) -> torch.Tensor:
    """``model``'s softmax over the classes other than each sample's label, renormalised, ``[N, C]``.

    The true class gets probability 0; the rest keep their ratios, so the target's argmax is the model's runner-up
    class (for Fashion-MNIST's Shirt: T-shirt, Pullover or Coat, where an unseen shirt is usually misplaced).
    """
    logits = predict_logits(model, dataset).double()
    masked = logits.scatter(1, dataset.labels[:, None].long(), float("-inf"))
    return masked.softmax(1).float()


def heldout_hard_targets(evidence: Any, hard: ImageDataset, *, temperature: float = 1.0) -> torch.Tensor:
    """Targets for images to unlearn from the K-fold held-out outputs (issue 23): the held-out model's softmax where
    it misclassifies the image, else its distribution over the other classes (true class removed, renormalised), so
    that every target's most likely class is a wrong one and the stop rule can be met."""
    from .evidence import kfold_soft_targets

    assert hard.ids is not None  # ImageDataset sets ids in __post_init__
    full = kfold_soft_targets(evidence, hard.ids, temperature=temperature).double()
    y = hard.labels.long()
    others = full.scatter(1, y[:, None], 0.0)
    others = others / others.sum(1, keepdim=True).clamp(min=1e-12)
    right = full.argmax(1) == y
    return torch.where(right[:, None], others, full).float()


@torch.no_grad()
def noise_soft_targets(
    model: nn.Module,
    dataset: ImageDataset,
    *,
    sigma: float,
    copies: int = 8,
    mix: float = 0.5,
    seed: int = 0,
    batch_size: int = 256,
) -> torch.Tensor:
    """Targets ``(1 − mix) · onehot(y) + mix · mean_k softmax(model(clamp(x + N(0, σ²))))``, ``[N, C]``.

    The model's average prediction on ``copies`` Gaussian-perturbed copies of each image (clamped to [0, 1]) is
    what it would say about a nearby unseen image, so a member trained toward it gets a test-like, rather than a
    memorised, loss (TMU's noise-perturbed fine-tuning, our design: see docs/tmu.md).

    Args:
        model: the model whose predictions soften the targets (TMU: ``M_o``), run in eval mode without gradients.
        dataset: the samples (labels give the one-hot part).
        sigma: noise standard deviation in [0, 1] pixel units (0: the plain one-hot labels).
        copies: noisy copies per image (K).
        mix: weight of the noisy average (0: plain labels, 1: the noisy average only).
        seed: noise seed.
        batch_size: inference batch size.
    """
    if not 0 <= mix <= 1:
        raise ValueError(f"mix must be in [0, 1], got {mix}")
    n_cls = dataset.num_classes
    onehot = F.one_hot(dataset.labels, n_cls).float()
    if sigma <= 0 or mix == 0 or len(dataset) == 0:
        return onehot
    device = model_device(model)
    gen = torch.Generator().manual_seed(int(seed))
    avg = []
    with eval_mode(model):
        for batch in TensorLoader(dataset, batch_size=batch_size, device=device):
            acc = torch.zeros(batch.x.shape[0], n_cls, device=device)
            for _ in range(copies):
                noise = torch.randn(batch.x.shape, generator=gen).to(device) * sigma
                acc += model((batch.x + noise).clamp(0.0, 1.0)).float().softmax(1)
            avg.append((acc / copies).cpu())
    return (1 - mix) * onehot + mix * torch.cat(avg)


def run_aligned_step(
    method: Any,
    model: nn.Module,
    *,
    forget: ImageDataset,
    retain: ImageDataset,
    predicted: torch.Tensor,
    seed: int = 0,
    progress: bool = False,
) -> nn.Module:
    """Steps 4-5 in place on ``model`` with ``method``'s settings (a :class:`~oblivio.methods.tmu.TMU`; not imported
    here, which would be a cycle): see :meth:`TMU.aligned_unlearn`."""
    info = method.info
    predicted = torch.as_tensor(predicted).long().reshape(-1)
    if predicted.numel() != len(forget):
        raise ValueError(f"{predicted.numel()} predicted labels for {len(forget)} forget samples")
    easy = forget.subset(torch.nonzero(predicted == 1).squeeze(1), name="forget-easy")
    hard = forget.subset(torch.nonzero(predicted == 0).squeeze(1), name="forget-hard")
    if len(hard) == 0:  # nothing to unlearn (with retain_kd too: distillation alone is not unlearning)
        info.update(
            unlearn_epochs=0,
            acc_forget_hard=float("nan"),
            acc_forget_easy=accuracy(model, easy),
            note="no predicted-hard samples: the model is returned unchanged",
        )
        return model
    start = accuracy(model, hard)
    info["acc_forget_hard_start"] = start
    if start <= method.hard_target:
        info.update(unlearn_epochs=0, acc_forget_hard=start, acc_forget_easy=accuracy(model, easy))
        return model
    device = model_device(model)
    soft = None
    if method.noise_sigma > 0 and len(easy):
        soft = noise_soft_targets(
            model, easy, sigma=method.noise_sigma, copies=method.noise_copies, mix=method.noise_mix, seed=seed
        ).to(device)
    easy_targets = getattr(method, "easy_targets", "label")
    if easy_targets == "kfold-soft" and len(easy):  # issue 23: what a model that never saw each image predicts
        from .evidence import kfold_soft_targets

        assert easy.ids is not None  # ImageDataset sets ids in __post_init__
        soft = kfold_soft_targets(method.evidence, easy.ids, temperature=method.soft_temperature).to(device)
    hard_soft = None
    if method.hard_targets == "runner-up":
        hard_soft = runner_up_targets(model, hard).to(device)
        hard_labels = hard_soft.argmax(1).cpu()  # loader labels only (the loss uses hard_soft; the stop rule and
        # the evaluation compare with the true labels)
    elif method.hard_targets == "kfold-soft":
        hard_soft = heldout_hard_targets(method.evidence, hard, temperature=method.soft_temperature).to(device)
        hard_labels = hard_soft.argmax(1).cpu()
    elif method.hard_mode == "random-label":
        hard_labels = random_wrong_labels(hard.labels, hard.num_classes, generator=torch.Generator().manual_seed(seed))
    else:
        hard_labels = hard.labels
    teacher = None
    if method.retain_kd > 0:
        teacher = copy.deepcopy(model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    # D_r is the primary stream (a random retain_fraction per epoch); D_f^h and D_f^e are cycled beside it, so
    # each step sees both forget parts: the hard part is pushed down while the easy part (same classes) is held
    streams = {
        "retain": TensorLoader(
            retain,
            batch_size=method.batch_size,
            shuffle=True,
            fraction=method.retain_fraction,
            seed=seed,
            device=device,
        ),
        "hard": TensorLoader(
            hard,
            batch_size=min(method.batch_size, len(hard)),
            shuffle=True,
            seed=seed + 1,
            device=device,
            labels=hard_labels,
        ),
    }
    if len(easy):
        streams["easy"] = TensorLoader(
            easy, batch_size=min(method.batch_size, len(easy)), shuffle=True, seed=seed + 2, device=device
        )
    loaders = ZipLoader(streams, primary="retain")
    ascent = method.hard_mode == "neggrad" and hard_soft is None
    sign = -1.0 if ascent else 1.0
    hard_weight = method.hard_weight if method.hard_weight is not None else (5.0 if ascent else 1.0)
    kd = float(method.retain_kd)
    # the recipe's class weights (TMU.class_weights, resolved on D_r) on the cross-entropy of the kept data
    cw = method.resolved_class_weights(retain) if hasattr(method, "resolved_class_weights") else None

    def loss_fn(m: nn.Module, batch):
        rb, hb, eb = batch["retain"], batch["hard"], batch.get("easy")
        parts = [rb.x, hb.x] + ([eb.x] if eb is not None else [])
        logits = m(torch.cat(parts))
        n_r, n_h = rb.x.shape[0], hb.x.shape[0]
        lr_, lh, le = logits[:n_r], logits[n_r : n_r + n_h], logits[n_r + n_h :]
        if teacher is None:
            total = weighted_ce(lr_, rb.y, cw, reduction="sum")
        else:  # (1 − kd)·CE + kd·KL(M_o ‖ M_u) per retain sample: keeps what M_o knows about D_r
            with torch.no_grad():
                t_logp = teacher(rb.x).log_softmax(1)
            kl = F.kl_div(lr_.log_softmax(1), t_logp, log_target=True, reduction="sum")
            total = (1 - kd) * weighted_ce(lr_, rb.y, cw, reduction="sum") + kd * kl
        if eb is not None:
            if soft is None:
                total = total + weighted_ce(le, eb.y, cw, reduction="sum")
            else:  # noise-perturbed variant: softened targets for the kept forget samples
                total = total - (soft[eb.index.to(device)] * le.log_softmax(1)).sum()
        if hard_soft is not None:  # runner-up targets: cross-entropy to M_o's distribution over the other classes
            ce_hard = -(hard_soft[hb.index.to(device)] * lh.log_softmax(1)).sum(1)
        else:
            ce_hard = F.cross_entropy(lh, hb.y, reduction="none")
            if ascent:  # ascend only on hard samples still classified correctly
                ce_hard = ce_hard * (lh.detach().argmax(1) == hb.y).float()
        # one mean over the joint batch: each sample weighs the same, hard ones times hard_weight
        loss = (total + sign * hard_weight * ce_hard.sum()) / logits.shape[0]
        return loss, {"loss_hard": float(ce_hard.detach().mean())}

    # checked every stop_check_steps optimizer steps (|D_f^h| forwards each), not only at epoch ends: the target
    # is usually reached within the first epoch, and the rest of that epoch was paid for nothing
    stop = StopWhen(
        "acc_forget_hard",
        lambda m: accuracy(m, hard),
        lambda v: v <= method.hard_target,
        every_steps=method.stop_check_steps,
    )
    opt = torch.optim.SGD(model.parameters(), lr=method.lr, momentum=0.9, weight_decay=5e-4)
    result = fit(
        model,
        loaders,
        epochs=method.epochs,
        optimizer=opt,
        loss_fn=loss_fn,
        callbacks=[stop],
        grad_clip=method.grad_clip,
        progress=progress,
        desc="tmu unlearn",
    )
    info.update(
        unlearn_epochs=result.epochs_run,
        unlearn_steps=int(result.cost.get("steps", 0)),
        unlearn_stopped_early=result.stopped_early,
        acc_forget_hard=accuracy(model, hard),
        acc_forget_easy=accuracy(model, easy) if len(easy) else float("nan"),
        unlearn_history=result.history,
    )
    return model
