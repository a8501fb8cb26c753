"""Training dynamics recorded while a model trains, at no extra training cost (issue 23).

Which training images would a model that never saw them get wrong? Their *training dynamics* carry evidence:
images a network learns late, forgets again between epochs (Toneva et al. 2019, "forgetting events"), or keeps a low
margin on for the whole training (Pleiss et al. 2020, "area under the margin", AUM) are the atypical ones, and those
are the ones a model trained without them misclassifies. :class:`TrainingDynamics` is a :class:`~.loop.Callback`:
it reads the logits that each training step computes anyway (a forward hook on the model, in train mode) for the
batch's samples, so recording them costs no extra forward or backward pass, draws no random number and does not touch
the weights: a model trained with the callback has exactly the weights of one trained without it (tested).

Per sample and epoch it keeps whether the step's prediction was right and the true-class margin
``z_y − max_{j≠y} z_j`` (of the weights *before* that step's update, on the augmented input the step used).
:meth:`TrainingDynamics.summary` turns them into per-sample statistics (:class:`DynamicsSummary`).

Use it with your own training (any loop built on :func:`~.loop.fit`, e.g. :func:`~.train.train_model`):

    >>> import torch
    >>> from oblivio.data import ImageDataset
    >>> from oblivio.models import create_model
    >>> from oblivio.training import train_model
    >>> ds = ImageDataset(torch.rand(64, 1, 8, 8), torch.arange(64) % 2, ("a", "b"))
    >>> model = create_model("small-cnn", num_classes=2, in_channels=1, image_size=(8, 8), width=4, hidden=8)
    >>> dyn = TrainingDynamics(len(ds), ids=ds.ids)
    >>> _ = train_model(model, ds, recipe="tiny", callbacks=[dyn], progress=False)
    >>> s = dyn.summary()
    >>> s.epochs, s.learned_epoch.shape, bool(s.complete)
    (3, torch.Size([64]), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .loop import Callback, TrainState

__all__ = ["DynamicsSummary", "TrainingDynamics"]


def _margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    z = logits.detach().double()
    y = labels.long().reshape(-1, 1)
    true = z.gather(1, y).squeeze(1)
    return true - z.scatter(1, y, float("-inf")).max(1).values


@dataclass(frozen=True)
class DynamicsSummary:
    """Per-sample statistics of a training run (one entry per sample, in dataset order; ``ids`` names them).

    Attributes:
        ids: the samples' ids.
        epochs: epochs recorded.
        complete: whether every sample was seen in every recorded epoch (False after a resumed training, which
            lost the epochs before the resume, or a loop whose epochs skip samples).
        learned_epoch: the first epoch (1-based) from which the sample was predicted right at every later epoch;
            ``epochs + 1`` if it never was (Toneva et al.'s "learned" event).
        forgetting_events: how often a right prediction was followed by a wrong one at the next epoch.
        aum: area under the margin: the mean over epochs of the true-class margin (Pleiss et al.).
        final_correct: right at the last recorded epoch.
        margins: ``[epochs, n]`` margins (NaN where not seen); correct: ``[epochs, n]`` 0/1 (−1 where not seen).
    """

    ids: torch.Tensor
    epochs: int
    complete: bool
    learned_epoch: torch.Tensor
    forgetting_events: torch.Tensor
    aum: torch.Tensor
    final_correct: torch.Tensor
    margins: torch.Tensor
    correct: torch.Tensor

    def to_state(self) -> dict[str, Any]:
        """A dict of tensors and numbers (for ``torch.save`` and a ``weights_only=True`` load)."""
        return {
            "ids": self.ids,
            "epochs": int(self.epochs),
            "complete": bool(self.complete),
            "margins": self.margins,
            "correct": self.correct,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DynamicsSummary:
        return summarise(state["ids"], state["correct"], state["margins"])

    def select(self, ids: torch.Tensor) -> DynamicsSummary:
        """The statistics of the given sample ids, in that order (KeyError naming an id that was not recorded)."""
        pos = {int(i): p for p, i in enumerate(self.ids.tolist())}
        missing = [int(i) for i in torch.as_tensor(ids).tolist() if int(i) not in pos]
        if missing:
            raise KeyError(f"training dynamics hold no record of sample ids {missing[:5]} (of {len(missing)})")
        idx = torch.tensor([pos[int(i)] for i in torch.as_tensor(ids).tolist()], dtype=torch.long)
        return summarise(self.ids[idx], self.correct[:, idx], self.margins[:, idx])


def summarise(ids: torch.Tensor, correct: torch.Tensor, margins: torch.Tensor) -> DynamicsSummary:
    """:class:`DynamicsSummary` from ``[epochs, n]`` correctness (−1 = not seen) and margins (NaN = not seen)."""
    epochs, n = correct.shape
    seen = correct >= 0
    right = correct == 1
    # learned: the first epoch after which every later (seen) epoch is right
    learned = torch.full((n,), epochs + 1, dtype=torch.long)
    ok_from_here = torch.ones(n, dtype=torch.bool)
    for e in range(epochs - 1, -1, -1):
        ok_from_here &= right[e] | ~seen[e]
        learned = torch.where(ok_from_here & seen[e], torch.full_like(learned, e + 1), learned)
    forgets = torch.zeros(n, dtype=torch.long)
    for e in range(1, epochs):
        forgets += (right[e - 1] & seen[e] & ~right[e] & seen[e - 1]).long()
    m = torch.where(seen, margins.double(), torch.zeros_like(margins, dtype=torch.float64))
    counts = seen.sum(0).clamp(min=1)
    aum = (m.sum(0) / counts).float()
    last = torch.zeros(n, dtype=torch.bool)
    for e in range(epochs):  # the last epoch each sample was seen
        last = torch.where(seen[e], right[e], last)
    return DynamicsSummary(
        ids=torch.as_tensor(ids).long(),
        epochs=int(epochs),
        complete=bool(seen.all()) if epochs else False,
        learned_epoch=learned,
        forgetting_events=forgets,
        aum=aum,
        final_correct=last,
        margins=margins.float(),
        correct=correct.to(torch.int8),
    )


class TrainingDynamics(Callback):
    """Record each training sample's correctness and margin at every epoch from the training step's own logits.

    Needs batches with an ``index`` field (positions in the dataset, as :class:`~oblivio.data.TensorLoader` yields)
    and a loss that runs the model once on the batch (the default cross-entropy of :func:`~.loop.fit` /
    :func:`~.train.train_model`). A forward whose batch size differs from the batch's (a method's extra forwards) is
    not recorded.

    Args:
        n_samples: the dataset size.
        ids: the samples' ids (default ``0..n-1``), kept with the record so that it can be looked up by id.
    """

    def __init__(self, n_samples: int, *, ids: torch.Tensor | None = None) -> None:
        if n_samples <= 0:
            raise ValueError(f"n_samples must be positive, got {n_samples}")
        self.n = int(n_samples)
        self.ids = torch.arange(self.n) if ids is None else torch.as_tensor(ids).long().clone()
        if self.ids.numel() != self.n:
            raise ValueError(f"{self.ids.numel()} ids for {self.n} samples")
        self._correct: list[torch.Tensor] = []
        self._margins: list[torch.Tensor] = []
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None
        self._handle: Any = None
        self._epoch = -1

    # ------------------------------------------------------------------ callback hooks
    def on_train_start(self, model: nn.Module, state: TrainState) -> None:  # noqa: D102
        self._handle = model.register_forward_hook(self._hook)

    def on_batch(self, model: nn.Module, batch: Any, state: TrainState) -> None:  # noqa: D102
        index = getattr(batch, "index", None)
        y = getattr(batch, "y", None)
        if index is None or y is None:
            raise ValueError("TrainingDynamics needs batches with .index and .y (oblivio.data.TensorLoader batches)")
        while self._epoch < state.epoch:  # a new epoch: a fresh row (resumed runs start at a later epoch)
            self._correct.append(torch.full((self.n,), -1, dtype=torch.int8))
            self._margins.append(torch.full((self.n,), float("nan")))
            self._epoch += 1
        self._pending = (index.detach().cpu().long(), y.detach().cpu())

    def on_train_end(self, model: nn.Module, state: TrainState) -> None:  # noqa: D102
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._pending = None

    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if self._pending is None or not module.training or not torch.is_tensor(output):
            return
        index, y = self._pending
        if output.shape[0] != index.numel():
            return
        self._pending = None
        with torch.no_grad():
            logits = output.detach().cpu()
            self._correct[-1][index] = (logits.argmax(1) == y).to(torch.int8)
            self._margins[-1][index] = _margin(logits, y).float()

    # ------------------------------------------------------------------ results
    def summary(self) -> DynamicsSummary:
        """Per-sample statistics of what was recorded (see :class:`DynamicsSummary`)."""
        if not self._correct:
            raise ValueError("no training step was recorded")
        return summarise(self.ids, torch.stack(self._correct), torch.stack(self._margins))
