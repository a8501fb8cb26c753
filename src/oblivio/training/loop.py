"""THE training loop. Every recipe and every unlearning method runs through :func:`fit`.

A method contributes a *loss* (``loss_fn(model, batch) -> loss`` or ``(loss, logs)``) and, when it must, *callbacks*
(after-step hooks such as SalUn's mask, per-epoch checks such as "stop once forget accuracy reaches the target",
best-on-validation checkpoints). It never copies the loop.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..utils import CheckpointError, atomic_torch_save, model_device, safe_torch_load, to_device
from .passes import SamplePasses, count_sample_passes  # noqa: F401  (SamplePasses: importable from here)
from .progress import ProgressLog, _progress

log = logging.getLogger("oblivio.training")

LossOutput = "torch.Tensor | tuple[torch.Tensor, dict[str, float]]"
LossFn = Callable[[nn.Module, Any], Any]


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or non-finite weights; the run was aborted."""


def cross_entropy_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """The default loss: cross-entropy of ``model(batch.x)`` against ``batch.y``."""
    return F.cross_entropy(model(batch.x), batch.y)


@dataclass
class TrainState:
    """What callbacks see: the epoch (0-based) and step counters, and the logged history."""

    epoch: int = 0
    step: int = 0
    epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    stop: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class Callback:
    """Hooks into :func:`fit`. Override what you need; set ``state.stop = True`` to end training early."""

    def on_train_start(self, model: nn.Module, state: TrainState) -> None: ...

    def on_batch(self, model: nn.Module, batch: Any, state: TrainState) -> None:
        """Called with each batch (on the model's device) before the loss runs on it; e.g. to know which samples
        the step's forward pass sees (:class:`~oblivio.training.dynamics.TrainingDynamics`)."""

    def after_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: TrainState) -> None: ...

    def on_epoch_end(self, model: nn.Module, state: TrainState, logs: dict[str, float]) -> None: ...

    def on_train_end(self, model: nn.Module, state: TrainState) -> None:
        """Called once when training ends, also when it ends with an error (then the error is re-raised after)."""


class LambdaCallback(Callback):
    """Callbacks from plain functions (``after_step=f`` or ``on_epoch_end=g``)."""

    def __init__(self, *, after_step: Callable | None = None, on_epoch_end: Callable | None = None) -> None:
        self._after_step, self._on_epoch_end = after_step, on_epoch_end

    def after_step(self, model, optimizer, state):  # noqa: D102
        if self._after_step:
            self._after_step(model, optimizer, state)

    def on_epoch_end(self, model, state, logs):  # noqa: D102
        if self._on_epoch_end:
            self._on_epoch_end(model, state, logs)


class BatchSource(Protocol):
    def __iter__(self): ...


@dataclass
class FitResult:
    """What :func:`fit` returns: the epochs run, per-epoch logs and wall time."""

    epochs_run: int
    history: list[dict[str, float]]
    seconds: float
    stopped_early: bool
    resumed_from: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    """Cumulative cost of the whole training, earlier runs of a resumed one included: ``wall_seconds``,
    ``cpu_seconds`` (:func:`time.process_time`, all threads of the process), ``forward_samples``,
    ``backward_samples`` (:class:`SamplePasses`), ``steps``. Kept in the resume checkpoint."""


def fit(
    model: nn.Module,
    batches: BatchSource | Callable[[int], Iterable[Any]],
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None = None,
    loss_fn: LossFn = cross_entropy_loss,
    callbacks: Sequence[Callback] = (),
    steps_per_epoch: int | None = None,
    grad_clip: float | None = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
    desc: str = "train",
) -> FitResult:
    """Train ``model`` in place for up to ``epochs`` epochs.

    Args:
        model: the model; batches are moved to its device.
        batches: an iterable of batches re-iterated each epoch (``set_epoch(e)`` is called when present), or a
            function ``epoch -> iterable``.
        epochs: number of epochs.
        optimizer: optimizer over the parameters to train.
        scheduler: optional LR scheduler, stepped once per epoch.
        loss_fn: ``loss_fn(model, batch)`` returning a scalar loss or ``(loss, logs)``.
        callbacks: :class:`Callback` hooks (after each step, at each epoch end).
        steps_per_epoch: cap on optimizer steps per epoch (None = whole iterable).
        grad_clip: clip the global gradient norm to this value; the epoch logs then hold ``clipped``, the share
            of steps whose norm exceeded it.
        checkpoint: when given, the full training state is written there (atomically) after every epoch and a
            run that finds one resumes after its last finished epoch. The cumulative cost (wall and CPU seconds,
            sample-passes) travels with it, so a resumed run reports the whole training's cost.
        progress: show a progress bar (also off when ``OBLIVIO_PROGRESS=0``).
        desc: progress-bar label.

    Returns:
        A :class:`FitResult`.

    Raises:
        DivergenceError: a loss or weight became NaN/inf (the model is left as it was after the last good step
            only when the caller kept a copy: methods always train a copy).

    However the training ends (finished, stopped early, or an error from a loss, a callback or an interrupt), every
    callback's ``on_train_end`` runs and the model's train/eval mode is restored, in a ``finally``.

    Example:
        >>> import torch
        >>> from oblivio.data import ImageDataset, TensorLoader
        >>> from oblivio.models import create_model
        >>> ds = ImageDataset(torch.rand(32, 1, 8, 8), torch.arange(32) % 2, ("a", "b"))
        >>> m = create_model("small-cnn", num_classes=2, in_channels=1, image_size=(8, 8))
        >>> res = fit(m, TensorLoader(ds, batch_size=8, shuffle=True), epochs=2,
        ...           optimizer=torch.optim.SGD(m.parameters(), lr=0.1), progress=False)
        >>> res.epochs_run
        2
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    device = model_device(model)
    state = TrainState(epochs=epochs)
    start_epoch, resumed_from = 0, None
    prior_cost: dict[str, float] = {}
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if ckpt_path is not None and ckpt_path.exists():
        saved = safe_torch_load(ckpt_path, map_location=device)
        try:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            if scheduler is not None and saved.get("scheduler") is not None:
                scheduler.load_state_dict(saved["scheduler"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"resume checkpoint {ckpt_path} does not match this run: {exc}") from exc
        start_epoch = int(saved["epoch"]) + 1
        state.step = int(saved.get("step", 0))
        state.history = list(saved.get("history", []))
        prior_cost = {k: float(v) for k, v in (saved.get("cost") or {}).items()}
        resumed_from = start_epoch
        if "rng" in saved:
            torch.set_rng_state(saved["rng"].cpu())
        log.info("resuming %s from epoch %d (%s)", desc, start_epoch, ckpt_path)

    t0, c0 = time.perf_counter(), time.process_time()
    with count_sample_passes() as passes:

        def cumulative_cost() -> dict[str, float]:
            now = {
                "wall_seconds": time.perf_counter() - t0,
                "cpu_seconds": time.process_time() - c0,
                "forward_samples": passes.forward,
                "backward_samples": passes.backward,
            }
            out = {k: prior_cost.get(k, 0.0) + v for k, v in now.items()}
            out["steps"] = state.step  # already cumulative (restored from the checkpoint)
            return out

        epochs_run, stopped = _fit_epochs(
            model,
            batches,
            epochs,
            start_epoch,
            optimizer,
            scheduler,
            loss_fn,
            callbacks,
            steps_per_epoch,
            grad_clip,
            ckpt_path,
            progress,
            desc,
            device,
            state,
            cumulative_cost,
        )
        cost = cumulative_cost()
    return FitResult(
        epochs_run=epochs_run,
        history=state.history,
        seconds=time.perf_counter() - t0,
        stopped_early=stopped,
        resumed_from=resumed_from,
        info=state.info,
        cost=cost,
    )


def _fit_epochs(
    model,
    batches,
    epochs,
    start_epoch,
    optimizer,
    scheduler,
    loss_fn,
    callbacks,
    steps_per_epoch,
    grad_clip,
    ckpt_path,
    progress,
    desc,
    device,
    state,
    cumulative_cost,
) -> tuple[int, bool]:
    """The epoch loop of :func:`fit` (split out so the cost counters wrap it in one ``try``)."""
    was_training = model.training
    for cb in callbacks:
        cb.on_train_start(model, state)
    epochs_run = start_epoch
    plog = ProgressLog(desc, epochs=epochs, start_epoch=start_epoch, enabled=progress)
    epoch_logs: dict[str, float] | None = None
    failed = True  # until the loop finishes; from then on an error in on_train_end propagates
    try:
        for epoch in range(start_epoch, epochs):
            state.epoch = epoch
            model.train()
            if callable(batches) and not hasattr(batches, "__iter__"):
                iterable = batches(epoch)
            else:
                if hasattr(batches, "set_epoch"):
                    batches.set_epoch(epoch)
                iterable = batches
            total = steps_per_epoch
            if total is None:
                try:
                    total = len(iterable)
                except TypeError:
                    total = None
            sums: dict[str, float] = {}
            count = 0
            bar = _progress(total or 0, f"{desc} {epoch + 1}/{epochs}", progress)
            plog.active = bool(getattr(bar, "disable", True))
            try:
                for i, batch in enumerate(iterable):
                    if steps_per_epoch is not None and i >= steps_per_epoch:
                        break
                    batch = to_device(batch, device)
                    for cb in callbacks:
                        cb.on_batch(model, batch, state)
                    out = loss_fn(model, batch)
                    loss, logs = out if isinstance(out, tuple) else (out, {})
                    if not torch.isfinite(loss):
                        raise DivergenceError(
                            f"{desc}: non-finite loss ({float(loss.detach())}) at epoch {epoch + 1}, step {i + 1}; "
                            "lower the learning rate. The original model was not modified."
                        )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if grad_clip is not None:
                        norm = nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                        logs = {**logs, "clipped": float(norm > grad_clip)}  # epoch mean = share of steps clipped
                    optimizer.step()
                    state.step += 1
                    for cb in callbacks:
                        cb.after_step(model, optimizer, state)
                    count += 1
                    if state.stop:  # a step-level stop (e.g. StopWhen(..., every_steps=n)) ends the epoch here
                        break
                    sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
                    for k, v in logs.items():
                        sums[k] = sums.get(k, 0.0) + float(v)
                    bar.update(1)
                    plog.step(epoch=epoch, count=count, total=total, loss=sums["loss"] / count)
                    if count % 20 == 0:
                        bar.set_postfix(loss=f"{sums['loss'] / count:.4f}")
            finally:
                bar.close()
            if scheduler is not None:
                scheduler.step()
            epoch_logs = {k: v / max(count, 1) for k, v in sums.items()}
            epoch_logs["epoch"] = float(epoch + 1)
            epoch_logs["lr"] = float(optimizer.param_groups[0]["lr"])
            if count and not all(math.isfinite(float(p.detach().sum())) for p in model.parameters()):
                raise DivergenceError(f"{desc}: weights became non-finite at epoch {epoch + 1}")
            for cb in callbacks:
                cb.on_epoch_end(model, state, epoch_logs)
            state.history.append(epoch_logs)
            epochs_run = epoch + 1
            log.debug("%s epoch %d: %s", desc, epoch + 1, epoch_logs)
            if ckpt_path is not None:
                atomic_torch_save(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler is not None else None,
                        "epoch": epoch,
                        "step": state.step,
                        "history": state.history,
                        "rng": torch.get_rng_state(),
                        "cost": cumulative_cost(),
                    },
                    ckpt_path,
                )
            if state.stop:
                break
        plog.end(epochs_run=epochs_run, logs=epoch_logs)
        failed = False
    finally:  # whatever ended the training (a finish, an error, an interrupt): callbacks close, mode restored
        try:
            _train_end(model, state, callbacks, failed=failed)
        finally:
            model.train(was_training)
    return epochs_run, state.stop


def _train_end(model: nn.Module, state: TrainState, callbacks: Sequence[Callback], *, failed: bool) -> None:
    """Call every callback's ``on_train_end``.

    After a failed training (``failed``), a callback's own error is logged rather than raised, so that the error
    which ended the training is the one the caller sees, and every callback still gets its call.
    """
    for cb in callbacks:
        if not failed:
            cb.on_train_end(model, state)
            continue
        try:
            cb.on_train_end(model, state)
        except Exception:
            log.exception(
                "%s.on_train_end raised after the training had failed; the training's error follows", type(cb).__name__
            )


class EvaluateEach(Callback):
    """Compute ``metric(model) -> float`` at each epoch end and log it under ``name``."""

    def __init__(self, name: str, metric: Callable[[nn.Module], float]) -> None:
        self.name, self.metric = name, metric

    def on_epoch_end(self, model, state, logs):  # noqa: D102
        logs[self.name] = float(self.metric(model))


class StopWhen(Callback):
    """Stop at the end of the first epoch where ``condition(metric(model))`` is true; with ``every_steps=n``
    also after every ``n``-th optimizer step (the epoch ends there). The value of ``metric`` is logged under
    ``name`` at each epoch end; ``state.info['stopped_at_step']`` records a step-level stop."""

    def __init__(
        self,
        name: str,
        metric: Callable[[nn.Module], float],
        condition: Callable[[float], bool],
        *,
        every_steps: int | None = None,
    ) -> None:
        if every_steps is not None and every_steps < 1:
            raise ValueError(f"every_steps must be >= 1 (or None), got {every_steps}")
        self.name, self.metric, self.condition, self.every_steps = name, metric, condition, every_steps

    def after_step(self, model, optimizer, state):  # noqa: D102
        if (
            self.every_steps is not None
            and state.step % self.every_steps == 0
            and self.condition(float(self.metric(model)))
        ):
            state.stop = True
            state.info.setdefault("stopped_at_step", state.step)

    def on_epoch_end(self, model, state, logs):  # noqa: D102
        value = float(self.metric(model))
        logs[self.name] = value
        if self.condition(value):
            state.stop = True
            state.info.setdefault("stopped_at_epoch", state.epoch + 1)


class KeepBest(Callback):
    """Keep the weights of the epoch with the best ``metric(model)`` (higher is better) and restore them at the end.

    This is the two-stage paper's "saving point": ``state.info['best_epoch']`` records which epoch it was.
    """

    def __init__(self, metric: Callable[[nn.Module], float], name: str = "val_acc") -> None:
        self.metric, self.name = metric, name
        self.best_value = -math.inf
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, model, state, logs):  # noqa: D102
        value = float(self.metric(model))
        logs[self.name] = value
        if value > self.best_value:
            self.best_value, self.best_epoch = value, state.epoch + 1
            self.best_state = copy.deepcopy(model.state_dict())

    def on_train_end(self, model, state):  # noqa: D102
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
            state.info["best_epoch"] = self.best_epoch
            state.info[f"best_{self.name}"] = self.best_value
