"""Efficient two-stage model retraining (Kim & Woo, CVPR workshops 2022; SPEC §4).

Stage 1, *neutralisation*: find for each forget class the class the original model finds least likely on ``D_f``
(Alg. 1 output accumulation, Alg. 2 contrastive labels) and train on ``D_f`` with those labels until forget
accuracy is at or below chance (Alg. 3).

Stage 2, *retraining*: train the neutralised model on ``D_r`` only with ``1.1 · CE + 0.9 · KD(T)`` (Hinton
distillation from the original model; plain CE after 10 epochs), for half the pre-training epochs, on a random half
of ``D_r`` each epoch, keeping the checkpoint that is best on validation data (the "saving point").

The pure functions :func:`output_accumulation`, :func:`contrastive_labels` and :func:`two_stage_loss` are exposed so
each step can be checked by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypedDict

import numpy as np
import torch
from torch import nn

from ..data.base import ImageDataset
from ..data.loader import stratified_sample
from ..training.class_weights import ce as weighted_ce
from ..training.class_weights import resolve_class_weights
from ..training.evaluate import accuracy, predict_logits
from ..training.loop import KeepBest, fit
from ..training.recipes import Recipe, get_recipe
from .base import UnlearningData, UnlearningError, UnlearningMethod, register_method
from .common import EpochCounter, check_hparams, forget_accuracy_stop, frozen_copy, kd_loss, make_loader, make_optimizer

MislabelMode = Literal["min", "max"]
AccumulateMode = Literal["logits", "softmax"]
RetrainOptimizer = Literal["adam", "sgd", "recipe"]
INF = math.inf


class TwoStageInfo(TypedDict, total=False):
    """What :class:`TwoStage` writes into ``info`` (besides the base ``seconds`` / ``cpu_seconds`` /
    ``forward_samples`` / ``backward_samples``): the declared keys that result rows carry and the report reads."""

    label_map: dict[int, int]
    """Stage 1: ``{forget class: contrastive class}`` (Alg. 2)."""
    matrix: list[list[float]]
    """Stage 1: the ``C × C`` output-accumulation matrix (Alg. 1; ``inf`` = not allowed)."""
    accumulate: AccumulateMode
    """What Alg. 1 averaged: ``"logits"`` or ``"softmax"``."""
    neutralisation_epochs: int
    """Epochs stage 1 ran (0 when ``D_f`` was already at the target); two-stage Table 5."""
    forget_acc_before: float
    """Accuracy on ``D_f`` before neutralisation."""
    forget_acc_neutralised: float
    """Accuracy on ``D_f`` right after neutralisation; two-stage Table 5."""
    neutralised: bool
    """Whether stage 1 reached ``target_forget_acc``."""
    target_forget_acc: float
    """The forget accuracy stage 1 aimed at (chance, ``1/C``, unless set)."""
    saving_point: int
    """Stage 2: 1-based epoch of the best validation accuracy (the kept checkpoint); two-stage Table 3."""
    best_val_acc: float
    """Validation accuracy at the saving point."""
    retrain_epochs: int
    """Epochs stage 2 ran."""
    retrain_optimizer: str
    """Class name of the stage-2 optimiser (``"Adam"``, ``"SGD"``)."""
    retrain_lr: float
    """Initial learning rate of stage 2."""
    clipped_steps: int
    """Stage-2 steps whose gradient norm was clipped."""
    retrain_steps: int
    """Stage-2 optimiser steps in all."""
    validation: str
    """Where the validation data of the saving point came from: ``"holdout"`` or ``"retain-split"``."""
    n_validation: int
    """Validation samples."""
    n_retrain: int
    """Retraining samples (``D_r`` less any validation split)."""
    data_fraction: float
    """Share of the retraining set drawn each epoch."""
    history: list[dict[str, float]]
    """Stage 2's per-epoch logs (loss, ``ce``, ``kd``, ``clipped``, ``val_acc``...)."""


# ---------------------------------------------------------------------------------------------------- Alg. 1
def output_accumulation(
    outputs: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, num_classes: int
) -> torch.Tensor:
    """Alg. 1: the ``C × C`` matrix whose row ``c`` is the mean model output over forget samples of class ``c``.

    The paper averages the model's **logits** (§5.2, "we averaged the logits"); :class:`TwoStage` passes logits by
    default and softmax probabilities with ``accumulate="softmax"``. This function averages whatever it is given.

    Entries that may not be chosen as a (source, target) pair are ``inf``: the diagonal (a class cannot map to
    itself), the rows of classes absent from ``D_f``, and, when ``D_f`` spans more than one class, the columns of
    classes absent from ``D_f`` (targets then stay within the forget classes). With one forget class any other class
    may be its target.

    Args:
        outputs: ``[N, C]`` model outputs (logits, or softmax probabilities) on the forget samples.
        labels: ``[N]`` true labels of the forget samples.
        num_classes: ``C``.

    Returns:
        A float64 ``[C, C]`` tensor.

    Raises:
        ValueError: shapes that do not match, no samples, labels out of range, or non-finite outputs.

    Example:
        >>> p = torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.0, 0.5]])
        >>> output_accumulation(p, torch.tensor([0, 0]), 3)[0].tolist()
        [inf, 0.125, 0.375]
    """
    outputs = torch.as_tensor(outputs, dtype=torch.float64).cpu()
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1).cpu()
    if outputs.dim() != 2 or outputs.shape[1] != num_classes or outputs.shape[0] != labels.shape[0]:
        raise ValueError(
            f"outputs must be [N, {num_classes}] with one label per row; got outputs "
            f"{tuple(outputs.shape)} and {labels.shape[0]} labels"
        )
    if labels.numel() == 0:
        raise ValueError("output accumulation needs at least one forget sample")
    if not torch.isfinite(outputs).all():
        raise ValueError("outputs contain NaN or inf: the model's outputs on D_f are not finite")
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes})")
    sums = torch.zeros(num_classes, num_classes, dtype=torch.float64).index_add_(0, labels, outputs)
    counts = torch.bincount(labels, minlength=num_classes).to(torch.float64)
    present = counts > 0
    matrix = torch.full((num_classes, num_classes), INF, dtype=torch.float64)
    matrix[present] = sums[present] / counts[present].unsqueeze(1)
    matrix.fill_diagonal_(INF)
    if int(present.sum()) > 1:
        matrix[:, ~present] = INF
    return matrix


# ---------------------------------------------------------------------------------------------------- Alg. 2
def contrastive_labels(
    matrix: torch.Tensor | np.ndarray, forget_classes: Sequence[int], *, mode: MislabelMode = "min"
) -> dict[int, int]:
    """Alg. 2: map each forget class to a contrastive (wrong) class from the output-accumulation matrix.

    ``"min"`` (minimum mislabel, the paper's method): repeat once per forget class: take the global minimum of the
    matrix; its row is the source class and its column the target; then set that row and that column to ``inf``.
    Each forget class goes to the class the model finds least likely, with distinct targets while they last.

    ``"max"`` (maximum mislabel, the paper's ablation): the same greedy procedure on the global *maximum* of the
    allowed (finite) entries. The diagonal is excluded, so with one forget class this is the second most likely class
    (the most likely being the true one for a memorised sample).

    Ties: among equal values the lowest index wins in row-major order (lowest source class, then lowest target).
    If the distinct-target greedy leaves a forget class with no allowed target (possible with three or more forget
    classes, e.g. 0→1 and 1→0 leave class 2 only its own column), that class takes the best allowed target of its
    ORIGINAL row, re-using a target (our choice; the paper does not cover this case).

    Args:
        matrix: ``[C, C]`` matrix from :func:`output_accumulation` (``inf`` = not allowed).
        forget_classes: the classes present in ``D_f``.
        mode: ``"min"`` or ``"max"``.

    Returns:
        ``{source class: target class}`` for every forget class, sorted by source.

    Example:
        >>> m = torch.tensor([[INF, 0.3, 0.1], [0.2, INF, 0.5], [0.4, 0.05, INF]])
        >>> contrastive_labels(m, [0, 1, 2])
        {0: 2, 1: 0, 2: 1}
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    original = torch.as_tensor(matrix, dtype=torch.float64).cpu().numpy().copy()
    if original.ndim != 2 or original.shape[0] != original.shape[1]:
        raise ValueError(f"matrix must be square, got shape {original.shape}")
    classes = sorted({int(c) for c in forget_classes})
    if not classes:
        raise ValueError("forget_classes is empty")
    n = original.shape[0]
    if classes[0] < 0 or classes[-1] >= n:
        raise ValueError(f"forget classes must lie in [0, {n})")
    # Work on a cost where smaller is better and forbidden entries are +inf (also drops NaN).
    cost = original.copy() if mode == "min" else -original
    cost[~np.isfinite(original)] = INF
    allowed = cost.copy()
    rows = np.full(n, INF)
    rows[classes] = 0.0
    cost = cost + rows[:, None]  # only the forget classes are sources
    mapping: dict[int, int] = {}
    for _ in range(len(classes)):
        flat = int(np.argmin(cost))  # first occurrence: lowest index wins ties
        source, target = divmod(flat, n)
        if not np.isfinite(cost[source, target]):
            break
        mapping[source] = target
        cost[source, :] = INF
        cost[:, target] = INF
    for c in classes:
        if c not in mapping:
            row = allowed[c]
            if not np.isfinite(row).any():
                raise ValueError(f"class {c} has no allowed target in the matrix (all entries are inf)")
            mapping[c] = int(np.argmin(row))
    return dict(sorted(mapping.items()))


# ---------------------------------------------------------------------------------------------------- stage 2 loss
def two_stage_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    targets: torch.Tensor,
    *,
    epoch: int,
    temperature: float = 4.0,
    ce_weight: float = 1.1,
    kd_weight: float = 0.9,
    kd_epochs: int = 10,
    class_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The retraining loss at 0-based ``epoch``.

    For ``epoch < kd_epochs``: ``ce_weight · CE + kd_weight · T² · KL(softmax(t/T) || softmax(s/T))``.
    From ``kd_epochs`` on: plain ``CE`` (no weight; the paper drops KD "after the 10th epoch").

    Args:
        student_logits: logits of the model being retrained.
        teacher_logits: logits of the original model (may be ``None`` once KD is dropped).
        targets: true labels.
        epoch: 0-based epoch.
        temperature: distillation temperature ``T``.
        ce_weight: weight of CE while KD is on (1.1).
        kd_weight: weight of KD (0.9).
        kd_epochs: number of epochs with KD (10).
        class_weights: class weights of the CE (the pre-training recipe's ``class_weights`` resolved on the
            retraining set; None: unweighted).

    Returns:
        ``(loss, logs)`` with the CE and KD values in ``logs``.
    """
    ce = weighted_ce(student_logits, targets, class_weights)
    if epoch >= kd_epochs:
        return ce, {"ce": float(ce.detach()), "kd": 0.0}
    if teacher_logits is None:
        raise ValueError("teacher_logits are needed while knowledge distillation is on")
    kd = kd_loss(student_logits, teacher_logits, temperature=temperature)
    return ce_weight * ce + kd_weight * kd, {"ce": float(ce.detach()), "kd": float(kd.detach())}


def validation_split(
    retain: ImageDataset, holdout: ImageDataset | None, *, fraction: float, seed: int
) -> tuple[ImageDataset, ImageDataset, str]:
    """The retraining set and the validation set for the saving point.

    ``holdout`` when given (unseen images of the training distribution); otherwise a class-stratified, seeded
    ``fraction`` of ``D_r``, which is then left out of retraining.

    Returns:
        ``(train, validation, source)`` with ``source`` ``"holdout"`` or ``"retain-split"``.
    """
    if holdout is not None and len(holdout) > 0:
        return retain, holdout, "holdout"
    if len(retain) < 2:
        raise UnlearningError("two-stage retraining needs at least 2 retain samples to hold out validation data")
    k = min(len(retain) - 1, max(1, round(fraction * len(retain))))
    val_pos = stratified_sample(retain, k, seed=seed + 104729)
    keep = np.ones(len(retain), dtype=bool)
    keep[val_pos] = False
    return (
        retain.subset(np.flatnonzero(keep), name=f"{retain.name}:train"),
        retain.subset(val_pos, name=f"{retain.name}:validation"),
        "retain-split",
    )


# ---------------------------------------------------------------------------------------------------- the method
@register_method("two-stage")
@dataclass(kw_only=True)
class TwoStage(UnlearningMethod):
    """Neutralise with contrastive labels, then retrain on ``D_r`` with knowledge distillation.

    Args:
        recipe: the pre-training recipe (preset name or :class:`Recipe`); retraining takes its epoch count (scaled by
            ``retrain_scale``), batch size and augmentation from it. Its optimiser is used only with
            ``retrain_optimizer="recipe"``.
        mislabel: ``"min"`` (least likely class, the paper's method) or ``"max"`` (second most likely, ablation).
        accumulate: what Alg. 1 averages over ``D_f``: ``"logits"`` (the paper, §5.2) or ``"softmax"``
            (probabilities; ours, an option).
        target_forget_acc: neutralisation stops once forget accuracy is at or below this (``None`` = chance, 1/C).
        neutralize_max_epochs: epoch cap for neutralisation.
        neutralize_lr: SGD learning rate for neutralisation.
        neutralize_batch_size: neutralisation batch size.
        retrain_scale: fraction of the pre-training epochs used for retraining (0.5).
        retrain_epochs: explicit retraining epochs (overrides ``retrain_scale``).
        retrain_optimizer: optimiser of the retraining stage: ``"adam"`` (the paper pre-trains and retrains with
            Adam at 1e-3, §4), ``"sgd"`` (momentum from the recipe) at ``retrain_lr``, or ``"recipe"``: the
            pre-training recipe's own optimiser, learning rate and schedule (the old behaviour; on the CPU preset
            that restarts a converged model at SGD lr 0.05 and diverged in 5 of 8 runs, docs/benchmarks.md).
        retrain_lr: learning rate of the retraining stage (1e-3, the paper's), constant (the paper names no
            schedule). Ignored with ``"recipe"``.
        retrain_weight_decay: weight decay of the retraining stage (0: the paper names none). Ignored with
            ``"recipe"``.
        data_fraction: random fraction of the retraining set used each epoch (0.5).
        ce_weight: CE weight while KD is on (1.1).
        kd_weight: KD weight (0.9).
        kd_epochs: epochs after which KD is dropped (10).
        temperature: KD temperature ``T``.
        val_fraction: share of ``D_r`` held out for validation when no ``holdout`` is passed.
        grad_clip: global gradient-norm clip in the retraining stage (``None``: off, as in the paper). On by
            default (5.0, ours) as a safety net against a diverging restart; the share of retraining steps it
            actually clipped is reported per epoch (``info["history"][e]["clipped"]``) and summed in
            ``info["clipped_steps"]``. Measured on the CPU preset (5,000 images, 3 seeds × 4 forget ratios,
            docs/benchmarks.md): it acts on 20-99% of the steps (KD is scaled by T²), yet with Adam 1e-3 runs
            without it converge too and reach the same test accuracy within 1.1 points.

    After a call, ``info`` holds the keys declared by :class:`TwoStageInfo`: ``label_map``, ``accumulate``,
    ``neutralisation_epochs``, ``forget_acc_before`` / ``forget_acc_neutralised``, ``neutralised`` (target reached),
    ``saving_point`` (1-based best epoch), ``best_val_acc``, ``retrain_epochs``, ``retrain_optimizer``,
    ``clipped_steps`` / ``retrain_steps``, ``validation`` (``"holdout"`` or ``"retain-split"``) and more.

    Example:
        >>> from oblivio.methods import create_method  # doctest: +SKIP
        >>> method = create_method("two-stage", recipe="cpu")  # doctest: +SKIP
        >>> m_u = method(original, forget=f, retain=r, holdout=h)  # doctest: +SKIP
        >>> method.info["label_map"], method.info["saving_point"]  # doctest: +SKIP
    """

    source: ClassVar[str] = (
        "Kim & Woo 2022 (two-stage retraining): logits averaged in Alg. 1 (§5.2), loss 1.1 CE + "
        "0.9 KD, KD dropped after 10 epochs, half the pre-training epochs, half the data per "
        "epoch, best-on-validation saving point, neutralise to chance, Adam lr 1e-3 (§4). Ours "
        "(the paper gives no value): T 4, constant retraining lr, no weight decay, gradient-norm "
        "clip 5 as a safety net, neutralisation SGD lr 0.01 momentum 0.9 batch 64 capped at 50 "
        "epochs, 10% of D_r for validation without holdout"
    )

    recipe: str | Recipe = "cpu"
    mislabel: MislabelMode = "min"
    accumulate: AccumulateMode = "logits"
    target_forget_acc: float | None = None
    neutralize_max_epochs: int = 50
    neutralize_lr: float = 0.01
    neutralize_batch_size: int = 64
    retrain_scale: float = 0.5
    retrain_epochs: int | None = None
    retrain_optimizer: RetrainOptimizer = "adam"
    retrain_lr: float = 1e-3
    retrain_weight_decay: float = 0.0
    data_fraction: float = 0.5
    ce_weight: float = 1.1
    kd_weight: float = 0.9
    kd_epochs: int = 10
    temperature: float = 4.0
    val_fraction: float = 0.1
    grad_clip: float | None = 5.0

    def __post_init__(self) -> None:
        get_recipe(self.recipe)
        integer = (lambda v: int(v) == v and v >= 0, "an integer >= 0")
        unit = (lambda v: 0 < v <= 1, "in (0, 1]")
        check_hparams(
            self,
            mislabel=(lambda v: v in ("min", "max"), "'min' or 'max'"),
            accumulate=(lambda v: v in ("logits", "softmax"), "'logits' or 'softmax'"),
            retrain_optimizer=(lambda v: v in ("adam", "sgd", "recipe"), "'adam', 'sgd' or 'recipe'"),
            retrain_lr=(lambda v: math.isfinite(v) and v > 0, "a positive number"),
            retrain_weight_decay=(lambda v: math.isfinite(v) and v >= 0, "a number >= 0"),
            target_forget_acc=(lambda v: v is None or 0 <= v <= 1, "None or in [0, 1]"),
            neutralize_max_epochs=integer,
            neutralize_lr=(lambda v: v > 0, "a positive number"),
            neutralize_batch_size=(lambda v: int(v) == v and v >= 1, "an integer >= 1"),
            retrain_scale=(lambda v: v > 0, "a positive number"),
            retrain_epochs=(lambda v: v is None or (int(v) == v and v >= 1), "None or an integer >= 1"),
            data_fraction=unit,
            ce_weight=(lambda v: v >= 0, ">= 0"),
            kd_weight=(lambda v: v >= 0, ">= 0"),
            kd_epochs=integer,
            val_fraction=(lambda v: 0 < v < 1, "in (0, 1)"),
        )

    def retraining_recipe(self) -> Recipe:
        """The pre-training recipe scaled to the retraining length."""
        recipe = get_recipe(self.recipe).scaled(self.retrain_scale)
        if self.retrain_epochs is not None:
            base = get_recipe(self.recipe)
            recipe = base.scaled(self.retrain_epochs / max(base.epochs, 1)).replace(epochs=self.retrain_epochs)
        return recipe

    def retraining_optimizer(self, model: nn.Module, recipe: Recipe) -> tuple[torch.optim.Optimizer, Any]:
        """The retraining stage's optimiser and scheduler (``None`` for the constant-rate Adam / SGD settings)."""
        if self.retrain_optimizer == "recipe":
            opt = recipe.make_optimizer(model.parameters())
            return opt, recipe.make_scheduler(opt)
        return make_optimizer(
            model.parameters(),
            optimizer=self.retrain_optimizer,
            lr=self.retrain_lr,
            momentum=recipe.momentum,
            weight_decay=self.retrain_weight_decay,
        ), None

    # -------------------------------------------------------------------------------- stage 1
    def neutralise(self, model: nn.Module, forget: ImageDataset, *, seed: int, progress: bool) -> TwoStageInfo:
        """Alg. 1-3 in place on ``model``; returns what happened (label map, epochs, forget accuracies)."""
        num_classes = forget.num_classes
        outputs = predict_logits(model, forget)
        if self.accumulate == "softmax":
            outputs = outputs.softmax(dim=1)
        matrix = output_accumulation(outputs, forget.labels, num_classes)
        forget_classes = sorted(int(c) for c in torch.unique(forget.labels))
        label_map = contrastive_labels(matrix, forget_classes, mode=self.mislabel)
        contrast = torch.tensor([label_map[int(y)] for y in forget.labels], dtype=torch.long)
        target = 1.0 / num_classes if self.target_forget_acc is None else float(self.target_forget_acc)
        before = accuracy(model, forget)
        epochs = 0
        if before > target and self.neutralize_max_epochs > 0:
            loader = make_loader(forget, model, batch_size=self.neutralize_batch_size, seed=seed, labels=contrast)
            opt = make_optimizer(model.parameters(), lr=self.neutralize_lr, momentum=0.9, weight_decay=0.0)
            result = fit(
                model,
                loader,
                epochs=self.neutralize_max_epochs,
                optimizer=opt,
                callbacks=[forget_accuracy_stop(forget, target)],
                progress=progress,
                desc="neutralise",
            )
            epochs = result.epochs_run
        after = accuracy(model, forget)
        return TwoStageInfo(
            label_map=label_map,
            matrix=matrix.tolist(),
            accumulate=self.accumulate,
            neutralisation_epochs=epochs,
            forget_acc_before=before,
            forget_acc_neutralised=after,
            neutralised=after <= target,
            target_forget_acc=target,
        )

    # -------------------------------------------------------------------------------- stage 2
    def _unlearn(self, model: nn.Module, data: UnlearningData, *, seed: int, progress: bool) -> nn.Module:
        teacher = frozen_copy(model)  # the original model M_o
        self.info.update(self.neutralise(model, data.forget, seed=seed, progress=progress))
        train_set, val_set, val_source = validation_split(
            data.retain, data.holdout, fraction=self.val_fraction, seed=seed
        )
        recipe = self.retraining_recipe()
        weights = resolve_class_weights(recipe.class_weights, train_set.labels, train_set.num_classes)
        counter = EpochCounter(
            make_loader(
                train_set,
                model,
                batch_size=recipe.batch_size,
                seed=seed,
                fraction=self.data_fraction,
                augment=recipe.augment,
            )
        )

        def loss_fn(student: nn.Module, batch) -> tuple:
            use_kd = counter.epoch < self.kd_epochs
            logits = student(batch.x)
            with torch.no_grad():
                t_logits = teacher(batch.x) if use_kd else None
            return two_stage_loss(
                logits,
                t_logits,
                batch.y,
                epoch=counter.epoch,
                temperature=self.temperature,
                ce_weight=self.ce_weight,
                kd_weight=self.kd_weight,
                kd_epochs=self.kd_epochs,
                class_weights=weights,
            )

        keep = KeepBest(lambda m: accuracy(m, val_set), name="val_acc")
        opt, scheduler = self.retraining_optimizer(model, recipe)
        result = fit(
            model,
            counter,
            epochs=recipe.epochs,
            optimizer=opt,
            scheduler=scheduler,
            loss_fn=loss_fn,
            callbacks=[keep],
            grad_clip=self.grad_clip,
            progress=progress,
            desc="two-stage retrain",
        )
        steps = [len(counter)] * result.epochs_run
        clipped = sum(round(h.get("clipped", 0.0) * n) for h, n in zip(result.history, steps))
        self.info.update(
            TwoStageInfo(
                saving_point=keep.best_epoch,
                best_val_acc=keep.best_value,
                retrain_epochs=result.epochs_run,
                retrain_optimizer=type(opt).__name__,
                retrain_lr=float(opt.param_groups[0].get("initial_lr", opt.param_groups[0]["lr"])),
                clipped_steps=int(clipped),
                retrain_steps=int(sum(steps)),
                validation=val_source,
                n_validation=len(val_set),
                n_retrain=len(train_set),
                data_fraction=self.data_fraction,
                history=result.history,
            )
        )
        return model


__all__ = [
    "TwoStage",
    "TwoStageInfo",
    "contrastive_labels",
    "output_accumulation",
    "two_stage_loss",
    "validation_split",
]
