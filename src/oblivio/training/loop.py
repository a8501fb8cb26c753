"""THE training loop. Every recipe and every unlearning method runs through :func:`fit`.

A method contributes a *loss* (``loss_fn(model, batch) -> loss`` or ``(loss, logs)``) and, when it must, *callbacks*
(after-step hooks such as SalUn's mask, per-epoch checks such as "stop once forget accuracy reaches the target",
best-on-validation checkpoints). It never copies the loop.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..utils import CheckpointError, atomic_torch_save, model_device, safe_torch_load, to_device

log = logging.getLogger("oblivio.training")

LossOutput = "torch.Tensor | tuple[torch.Tensor, dict[str, float]]"
LossFn = Callable[[nn.Module, Any], Any]


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or non-finite weights; the run was aborted."""


# ---------------------------------------------------------------------------------------------- sample-passes
@dataclass
class SamplePasses:
    """Hardware-independent cost: images pushed through a model forward, and forwards made with autograd on.

    A *forward* sample-pass is one image through one classifier (``forward`` or ``features``); a *backward*
    sample-pass is one image whose forward ran with autograd recording (training steps, PGD), whose backward is
    then run once. Counted by :func:`count_sample_passes` with a global forward hook on the input-normalisation
    module every :class:`~oblivio.models.Classifier` calls exactly once per forward.
    """

    forward: int = 0
    backward: int = 0

    def __add__(self, other: "SamplePasses") -> "SamplePasses":
        return SamplePasses(self.forward + other.forward, self.backward + other.backward)

    def as_dict(self) -> dict[str, int]:
        return {"forward_samples": self.forward, "backward_samples": self.backward}


_ACTIVE_COUNTERS: list[SamplePasses] = []
_COUNT_HOOK: Any = None


def _count_hook(module: nn.Module, inputs: tuple, output: Any) -> None:
    from ..models.base import Normalize

    if _ACTIVE_COUNTERS and isinstance(module, Normalize) and inputs and torch.is_tensor(inputs[0]):
        n = int(inputs[0].shape[0]) if inputs[0].dim() else 1
        grad = torch.is_grad_enabled()
        for c in _ACTIVE_COUNTERS:
            c.forward += n
            if grad:
                c.backward += n


@contextlib.contextmanager
def count_sample_passes() -> Iterator[SamplePasses]:
    """Count forward / backward sample-passes of every classifier in this process while the block runs.

    Nested blocks each count everything inside them. The global hook is installed only while a block is active.

    Example:
        >>> import torch
        >>> from oblivio.models import create_model
        >>> m = create_model("small-cnn", num_classes=2, in_channels=1, image_size=(8, 8))
        >>> with count_sample_passes() as passes, torch.no_grad():
        ...     _ = m(torch.rand(5, 1, 8, 8))
        >>> passes
        SamplePasses(forward=5, backward=0)
    """
    global _COUNT_HOOK
    counter = SamplePasses()
    if _COUNT_HOOK is None:
        _COUNT_HOOK = torch.nn.modules.module.register_module_forward_hook(_count_hook)
    _ACTIVE_COUNTERS.append(counter)
    try:
        yield counter
    finally:
        del _ACTIVE_COUNTERS[next(i for i, c in enumerate(_ACTIVE_COUNTERS) if c is counter)]  # by identity
        if not _ACTIVE_COUNTERS and _COUNT_HOOK is not None:
            _COUNT_HOOK.remove()
            _COUNT_HOOK = None


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

    def after_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: TrainState) -> None: ...

    def on_epoch_end(self, model: nn.Module, state: TrainState, logs: dict[str, float]) -> None: ...

    def on_train_end(self, model: nn.Module, state: TrainState) -> None: ...


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


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    # None lets tqdm switch itself off when stderr is not a terminal (logs, CI), so files do not fill with bars;
    # ProgressLog then writes a line every few seconds instead. tqdm.auto picks the notebook widget in Jupyter,
    # where stderr is no terminal either: there the bar is forced on.
    if not enabled or os.environ.get("OBLIVIO_PROGRESS", "1") == "0":
        disable: bool | None = True
    else:
        notebook = any(c.__module__ == "tqdm.notebook" for c in tqdm.__mro__)
        disable = False if notebook else None
    return tqdm(total=total, desc=desc, leave=False, disable=disable, file=sys.stderr, dynamic_ncols=True)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60:02d}:{rest % 60:02d}"


class ProgressLog:
    """INFO log lines for a person when no progress bar shows (stderr is no terminal, or ``OBLIVIO_PROGRESS=0``).

    At most one line every ``every`` seconds (``$OBLIVIO_LOG_EVERY``, default 5): the label, epoch, step, mean loss
    so far, time elapsed and an ETA from the steps' pace (an upper bound when a method stops early). A fit that
    logged anything also logs one line when it ends. Fits run with ``progress=False`` stay quiet (DEBUG lines only).

    Example:
        >>> clock = iter([0.0, 6.0, 7.0, 12.0, 13.0]).__next__
        >>> plog = ProgressLog("train", epochs=2, start_epoch=0, enabled=True, every=5.0, clock=clock)
        >>> plog.active = True  # fit() sets it per epoch: True when the bar is hidden
        >>> plog.step(epoch=0, count=1, total=4, loss=0.5)  # 6 s after the start: a line
        True
        >>> plog.step(epoch=0, count=2, total=4, loss=0.5)  # 1 s later: none
        False
    """

    def __init__(self, desc: str, *, epochs: int, start_epoch: int, enabled: bool, every: float | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.desc, self.epochs, self.start_epoch, self.enabled = desc, epochs, start_epoch, enabled
        self.every = float(os.environ.get("OBLIVIO_LOG_EVERY", "5")) if every is None else float(every)
        self.clock = clock
        self.t0 = self.last = clock()
        self.steps_done = 0
        self.lines = 0
        self.active = False  # set per epoch from the bar: True when the bar is hidden

    def _eta(self, epoch: int, count: int, total: int | None, elapsed: float) -> str:
        if not self.steps_done:
            return "?"
        per_step = elapsed / self.steps_done
        if total:
            left = (total - count) + (self.epochs - epoch - 1) * total
            return _clock(per_step * max(left, 0))
        return "?"  # an iterable without a length: no pace to extrapolate within the epoch

    def step(self, *, epoch: int, count: int, total: int | None, loss: float) -> bool:
        """After each optimizer step; returns whether a line was logged."""
        self.steps_done += 1
        if not (self.enabled and self.active):
            return False
        now = self.clock()
        if now - self.last < self.every:
            return False
        self.last = now
        elapsed = now - self.t0
        steps = f"step {count}/{total}" if total else f"step {count}"
        log.info("%s: epoch %d/%d, %s, loss %.4f, %s elapsed, ETA %s", self.desc, epoch + 1, self.epochs, steps,
                 loss, _clock(elapsed), self._eta(epoch, count, total, elapsed))
        self.lines += 1
        return True

    def end(self, *, epochs_run: int, logs: dict[str, float] | None) -> None:
        """Once, when the fit ends: a closing line when any line was logged before."""
        if self.lines and self.enabled:
            loss = (logs or {}).get("loss", float("nan"))
            log.info("%s: done, %d/%d epochs, last epoch loss %.4f, %s", self.desc, epochs_run, self.epochs, loss,
                     _clock(self.clock() - self.t0))


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
            now = {"wall_seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                   "forward_samples": passes.forward, "backward_samples": passes.backward}
            out = {k: prior_cost.get(k, 0.0) + v for k, v in now.items()}
            out["steps"] = state.step  # already cumulative (restored from the checkpoint)
            return out

        epochs_run, stopped = _fit_epochs(model, batches, epochs, start_epoch, optimizer, scheduler, loss_fn,
                                          callbacks, steps_per_epoch, grad_clip, ckpt_path, progress, desc,
                                          device, state, cumulative_cost)
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


def _fit_epochs(model, batches, epochs, start_epoch, optimizer, scheduler, loss_fn, callbacks, steps_per_epoch,
                grad_clip, ckpt_path, progress, desc, device, state, cumulative_cost) -> tuple[int, bool]:
    """The epoch loop of :func:`fit` (split out so the cost counters wrap it in one ``try``)."""
    was_training = model.training
    for cb in callbacks:
        cb.on_train_start(model, state)
    epochs_run = start_epoch
    plog = ProgressLog(desc, epochs=epochs, start_epoch=start_epoch, enabled=progress)
    epoch_logs: dict[str, float] | None = None
    for epoch in range(start_epoch, epochs):
        state.epoch = epoch
        model.train()
        if callable(batches) and not hasattr(batches, "__iter__"):
            iterable = batches(epoch)
        else:
            if hasattr(batches, "set_epoch"):
                batches.set_epoch(epoch)  # type: ignore[union-attr]
            iterable = batches
        total = steps_per_epoch
        if total is None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
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
                out = loss_fn(model, batch)
                loss, logs = (out if isinstance(out, tuple) else (out, {}))
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
    for cb in callbacks:
        cb.on_train_end(model, state)
    model.train(was_training)
    return epochs_run, state.stop


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

    def __init__(self, name: str, metric: Callable[[nn.Module], float], condition: Callable[[float], bool], *,
                 every_steps: int | None = None) -> None:
        if every_steps is not None and every_steps < 1:
            raise ValueError(f"every_steps must be >= 1 (or None), got {every_steps}")
        self.name, self.metric, self.condition, self.every_steps = name, metric, condition, every_steps

    def after_step(self, model, optimizer, state):  # noqa: D102
        if self.every_steps is not None and state.step % self.every_steps == 0:
            if self.condition(float(self.metric(model))):
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
