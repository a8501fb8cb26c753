"""TMU step 3: the generalisation-label predictor (easy = 1, hard = 0), a small MLP trained on the twin set.

Class imbalance: most twin samples are usually easy (a model classifies most unseen images correctly), so an
MLP trained with plain cross-entropy tends to call everything easy. ``balance`` chooses the remedy:

* ``"threshold"`` (default): train unweighted, then pick the decision threshold so that the predicted easy rate on
  the twin set equals the observed easy rate (the threshold is the ``1 − easy_rate`` quantile of the predicted
  easy probabilities). The predicted labels then have the easy rate of the gold labels, which is what alignment
  (``ACC_Df(M_u) ≈ ACC_Df(M_g)``) needs.
* ``"weights"``: inverse-frequency class weights in the loss, threshold 0.5.
* ``"none"``: unweighted loss, threshold 0.5.

When the twin labels are all easy (or all hard), no classifier can be learned: the predictor is the constant
label, and :attr:`GeneralisationPredictor.constant` says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...training.loop import DivergenceError

__all__ = ["Balance", "GeneralisationPredictor", "make_mlp", "train_predictor"]

Balance = Literal["threshold", "weights", "none"]
BALANCES = ("threshold", "weights", "none")


def make_mlp(in_features: int, *, hidden: Sequence[int] = (64, 32)) -> nn.Sequential:
    """``in -> hidden[0] -> ReLU -> hidden[1] -> ReLU -> 1`` (one logit: easy)."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


@dataclass
class GeneralisationPredictor:
    """A trained predictor: ``predict(features) -> {0, 1}`` (1 = easy).

    Attributes:
        mlp: the network (None for a constant predictor).
        threshold: decision threshold on the predicted easy probability.
        constant: the label predicted everywhere when the training labels had a single class, else None.
        train_accuracy: accuracy of :meth:`predict` on the training (twin) set.
        easy_rate: fraction of easy samples in the training labels.
    """

    mlp: nn.Module | None
    threshold: float = 0.5
    constant: int | None = None
    train_accuracy: float = float("nan")
    easy_rate: float = float("nan")
    history: list = field(default_factory=list, repr=False)

    @torch.no_grad()
    def predict_proba(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted probability of "easy", ``[N]``."""
        x = torch.as_tensor(features, dtype=torch.float32)
        if self.mlp is None:
            if self.constant is None:
                raise ValueError("a predictor without a network needs its constant label (a damaged twin cache?)")
            return torch.full((x.shape[0],), float(self.constant))
        self.mlp.eval()
        return torch.sigmoid(self.mlp(x).squeeze(1))

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted generalisation labels, ``[N]`` long (1 = easy, 0 = hard)."""
        if self.mlp is None:
            return torch.full((len(features),), int(self.constant), dtype=torch.long)  # type: ignore[arg-type]
        return (self.predict_proba(features) >= self.threshold).long()


def _rate_matching_threshold(proba: torch.Tensor, easy_rate: float) -> float:
    """The threshold ``t`` such that ``mean(proba >= t)`` is as close as possible to ``easy_rate``."""
    n = proba.numel()
    n_easy = int(round(easy_rate * n))
    if n_easy <= 0:
        return float(proba.max()) + 1e-6
    if n_easy >= n:
        return float(proba.min())
    ordered = proba.sort(descending=True).values
    # midway between the last sample called easy and the first called hard (ties stay together on the easy side)
    return (
        float((ordered[n_easy - 1] + ordered[n_easy]) / 2)
        if ordered[n_easy - 1] > ordered[n_easy]
        else float(ordered[n_easy - 1])
    )


def train_predictor(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    hidden: Sequence[int] = (64, 32),
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    epochs: int = 100,
    batch_size: int | None = 16,
    balance: Balance = "threshold",
    seed: int = 0,
) -> GeneralisationPredictor:
    """Train the generalisation-label MLP on ``(features, labels)``: plain SGD over whole in-memory tensors.

    Defaults are TMU's (hidden 64 and 32, ReLU, SGD lr 0.01, momentum 0.9, weight decay 5e-4, 100 epochs); the
    batch size (16; None = full batch) is ours: the twin set is small, so small batches give enough steps.

    Not :func:`oblivio.training.fit`: for a 3 → 64 → 32 → 1 network every step is microseconds of arithmetic, and
    the generic loop's per-step work (device moves, progress bar, loss syncs, callbacks) and the intra-op thread
    pool dominated (162 of 294 s of a TMU run on a busy 2-core machine, issue 10). The loop below does the same SGD
    steps (same shuffles, same optimizer) on one thread; nothing else is different.

    Args:
        features: ``[N, F]`` scaled features of the twin set.
        labels: ``[N]`` generalisation labels (1 = easy).
        hidden: hidden layer sizes.
        lr: learning rate.
        momentum: SGD momentum.
        weight_decay: weight decay.
        epochs: epochs.
        batch_size: mini-batch size (None = full batch).
        balance: class-imbalance rule (see the module docstring).
        seed: initialisation and shuffling seed.

    Returns:
        A :class:`GeneralisationPredictor`.
    """
    if balance not in BALANCES:
        raise ValueError(f"unknown balance {balance!r}; use one of {', '.join(BALANCES)}")
    x = torch.as_tensor(features, dtype=torch.float32)
    y = torch.as_tensor(labels).long().reshape(-1)
    if x.dim() != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"features must be [N, F] with N = len(labels) > 0; got {tuple(x.shape)} and {tuple(y.shape)}")
    easy_rate = float(y.float().mean())
    if y.min() == y.max():
        return GeneralisationPredictor(mlp=None, constant=int(y[0]), train_accuracy=1.0, easy_rate=easy_rate)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mlp = make_mlp(x.shape[1], hidden=hidden)
    pos_weight = None
    if balance == "weights":
        pos_weight = torch.tensor((1 - easy_rate) / easy_rate)  # easy is the positive class
    n = x.shape[0]
    bs = n if batch_size is None else max(1, min(int(batch_size), n))
    gen = torch.Generator().manual_seed(int(seed))
    yf = y.float()

    opt = torch.optim.SGD(mlp.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    history = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: the thread pool's wake-ups cost more than the arithmetic
    try:
        mlp.train()
        for epoch in range(epochs):
            order = torch.randperm(n, generator=gen)
            xs, ys = x[order], yf[order]
            total = torch.zeros(())
            for i in range(0, n, bs):
                loss = F.binary_cross_entropy_with_logits(
                    mlp(xs[i : i + bs]).squeeze(1), ys[i : i + bs], pos_weight=pos_weight
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach() * min(bs, n - i)
            history.append({"epoch": float(epoch + 1), "loss": float(total) / n})
    finally:
        torch.set_num_threads(threads)
    if not all(torch.isfinite(p).all() for p in mlp.parameters()):
        raise DivergenceError("tmu predictor: non-finite weights; lower predictor_lr")
    predictor = GeneralisationPredictor(mlp=mlp.eval(), easy_rate=easy_rate, history=history)
    if balance == "threshold":
        predictor.threshold = _rate_matching_threshold(predictor.predict_proba(x), easy_rate)
    predictor.train_accuracy = float((predictor.predict(x) == y).float().mean())
    return predictor
