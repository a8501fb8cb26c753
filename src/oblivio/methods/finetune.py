"""Fine-tune: keep training the original model on ``D_r`` only, with a learning rate larger than the one the
original training ended with (SPEC §5), hoping catastrophic forgetting erases ``D_f``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ..data.base import ImageDataset
from ..training.class_weights import weighted_cross_entropy
from ..training.loop import Callback, fit
from .base import UnlearningData, UnlearningMethod, register_method
from .common import ClassWeighted, OptimizerName, OptimizerSettings, check_hparams, make_loader


@register_method("finetune")
@dataclass(kw_only=True)
class Finetune(UnlearningMethod, OptimizerSettings, ClassWeighted):
    """Continue training on the retain set with plain cross-entropy.

    The defaults are the reference implementation's: the FT baseline of the Sparse-Unlearn repository (Jia et al.
    2023), which SalUn (Fan et al. 2024) reuses: ``main_forget.py --unlearn FT --unlearn_lr 0.01 --unlearn_epochs 10``
    (README), SGD with the repository's default momentum 0.9, weight decay 5e-4 and batch 256 (``arg_parser.py``),
    cross-entropy on the retain loader only (``unlearn/FT.py``). The reference's learning-rate milestones (epochs 91 and
    136) are never reached in 10 epochs, so its rate is constant, as here.

    Our CPU tuning is the named variant ``finetune.cpu`` (:mod:`oblivio.methods.variants`).

    Hyper-parameters: the optimiser settings of :class:`~oblivio.methods.common.OptimizerSettings` (``epochs`` are
    passes over ``D_r``) and ``class_weights`` (:class:`~oblivio.methods.common.ClassWeighted`: the cross-entropy's
    class weights, resolved on the set it fine-tunes on; ``"none"`` by default).

    Example:
        >>> from oblivio.methods import create_method
        >>> m = create_method("finetune")
        >>> (m.epochs, m.lr, m.momentum, m.weight_decay, m.batch_size, m.optimizer)
        (10, 0.01, 0.9, 0.0005, 256, 'sgd')
    """

    source: ClassVar[str] = (
        "Jia et al. 2023, OPTML-Group/Unlearn-Sparse FT baseline (README.MD: main_forget.py "
        "--unlearn FT --unlearn_lr 0.01 --unlearn_epochs 10; arg_parser.py: batch 256, SGD "
        "momentum 0.9, weight decay 5e-4; unlearn/FT.py: CE on the retain loader); the same code "
        "in OPTML-Group/Unlearn-Saliency (Fan et al. 2024), Classification/"
    )

    epochs: int = 10
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    optimizer: OptimizerName = "sgd"

    def __post_init__(self) -> None:
        check_hparams(self)
        self._check_class_weights()

    def _unlearn(self, model: nn.Module, data: UnlearningData, *, seed: int, progress: bool) -> nn.Module:
        train_set = self._training_set(data, seed)
        loss_fn = weighted_cross_entropy(self.resolved_class_weights(train_set))
        callbacks = self._prepare(model, data)
        loader = make_loader(train_set, model, batch_size=self.batch_size, seed=seed)
        opt = self.build_optimizer([p for p in model.parameters() if p.requires_grad])
        result = fit(
            model,
            loader,
            epochs=self.epochs,
            optimizer=opt,
            loss_fn=loss_fn,
            callbacks=callbacks,
            progress=progress,
            desc=self.name,
        )
        self.info.update(epochs=result.epochs_run, history=result.history)
        return model

    # Hooks for the methods that are fine-tuning on other data (random-label) or with a constraint (salun).
    def _training_set(self, data: UnlearningData, seed: int) -> ImageDataset:
        """What to fine-tune on: ``D_r``."""
        return data.retain

    def _prepare(self, model: nn.Module, data: UnlearningData) -> list[Callback]:
        """Callbacks for the fine-tuning run (none)."""
        return []
