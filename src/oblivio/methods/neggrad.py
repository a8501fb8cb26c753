"""Negative gradient (gradient ascent on ``D_f``), SPEC §5."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F
from torch import nn

from ..training.loop import fit
from .base import UnlearningData, UnlearningMethod, register_method
from .common import OptimizerName, OptimizerSettings, check_hparams, make_loader


def ascent_loss(model: nn.Module, batch) -> tuple:
    """Minus the cross-entropy on a forget batch (minimising it climbs the forget loss)."""
    ce = F.cross_entropy(model(batch.x), batch.y)
    return -ce, {"forget_ce": float(ce.detach())}


@register_method("neggrad")
@dataclass(kw_only=True)
class NegGrad(UnlearningMethod, OptimizerSettings):
    """Gradient ascent on the forget set: maximise its cross-entropy, starting from the original model.

    Nothing holds the rest of the model in place, so too many steps destroy retain accuracy too; that is the known
    weakness this baseline illustrates (see ``neggrad+``).

    The defaults are the reference implementation's: the GA baseline of the Sparse-Unlearn repository (Jia et al.
    2023), reused by SalUn (Fan et al. 2024): ``main_forget.py --unlearn GA --unlearn_lr 0.0001 --unlearn_epochs 5``
    (README), SGD with momentum 0.9, weight decay 5e-4, batch 256 (``arg_parser.py``), ``-CE`` on the forget loader
    with no clipping (``unlearn/GA.py``). On a forget set of 100 samples that is one step per epoch at 1e-4: almost
    no change. Our CPU tuning (lr 0.01, batch 32, gradient-norm clip 1) is the named variant ``neggrad.cpu``.

    Hyper-parameters: the optimiser settings of :class:`~oblivio.methods.common.OptimizerSettings` (``epochs`` are
    passes over ``D_f``), and

    Args:
        grad_clip: clip the global gradient norm to this value (``None``: no clipping, the reference). The ascent
            term is unbounded, so at a large learning rate a few steps can blow the weights up.

    Example:
        >>> from oblivio.methods import create_method
        >>> m = create_method("neggrad")
        >>> (m.epochs, m.lr, m.momentum, m.weight_decay, m.batch_size, m.optimizer, m.grad_clip)
        (5, 0.0001, 0.9, 0.0005, 256, 'sgd', None)
    """

    source: ClassVar[str] = (
        "Jia et al. 2023, OPTML-Group/Unlearn-Sparse GA baseline (README.MD: main_forget.py "
        "--unlearn GA --unlearn_lr 0.0001 --unlearn_epochs 5; arg_parser.py: batch 256, SGD "
        "momentum 0.9, weight decay 5e-4; unlearn/GA.py: -CE on the forget loader, no clip); the "
        "same code in OPTML-Group/Unlearn-Saliency (Fan et al. 2024), Classification/"
    )

    epochs: int = 5
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    optimizer: OptimizerName = "sgd"
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        check_hparams(self)

    def _unlearn(self, model: nn.Module, data: UnlearningData, *, seed: int, progress: bool) -> nn.Module:
        loader = make_loader(data.forget, model, batch_size=self.batch_size, seed=seed)
        result = fit(
            model,
            loader,
            epochs=self.epochs,
            optimizer=self.build_optimizer(model.parameters()),
            loss_fn=ascent_loss,
            grad_clip=self.grad_clip,
            progress=progress,
            desc=self.name,
        )
        self.info.update(epochs=result.epochs_run, history=result.history)
        return model
