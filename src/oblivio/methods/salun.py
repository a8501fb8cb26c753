"""SalUn (Fan et al. 2024, "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency").

1. Saliency: the magnitude of the gradient of the forget loss (cross-entropy on ``D_f`` at ``M_o``) for every weight;
   the top ``sparsity`` fraction of all weights (one global ranking) are *salient* and stay trainable.
2. Random-label unlearning (as ``random-label``) restricted to the salient weights: after EVERY optimiser step the
   other weights are restored to their original values, so weight decay and momentum cannot move them either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import ImageDataset
from ..training.loop import Callback
from ..utils import eval_mode
from .base import UnlearningData, register_method
from .common import OptimizerName, RestoreOutsideMask, check_hparams, make_loader
from .random_label import RandomLabel


def saliency_masks(
    model: nn.Module, forget: ImageDataset, *, sparsity: float, batch_size: int = 256
) -> dict[str, torch.Tensor]:
    """Boolean masks (``True`` = salient, trainable) over every parameter of ``model``.

    The saliency of a weight is ``|∂ L_f / ∂ w|`` with ``L_f`` the summed cross-entropy over ``D_f`` (eval mode).
    Exactly ``round(sparsity · total)`` weights are kept, ranked globally across layers (``torch.topk``; among equal
    magnitudes the order topk returns decides).

    Args:
        model: the original model (not modified; its gradients are cleared afterwards).
        forget: the forget set.
        sparsity: fraction in [0, 1] of all weights kept trainable.
        batch_size: forward batch size.
    """
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    grads = {n: torch.zeros_like(p) for n, p in params}
    with eval_mode(model):
        for batch in make_loader(forget, model, batch_size=batch_size, seed=0, shuffle=False):
            loss = F.cross_entropy(model(batch.x), batch.y, reduction="sum")
            batch_grads = torch.autograd.grad(loss, [p for _, p in params], allow_unused=True)
            for (n, _), g in zip(params, batch_grads):
                if g is not None:
                    grads[n] += g.detach()
    flat = torch.cat([g.abs().flatten() for g in grads.values()])
    k = int(round(sparsity * flat.numel()))
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if k > 0:
        keep[torch.topk(flat, k, sorted=False).indices] = True
    masks, start = {}, 0
    for n, g in grads.items():
        masks[n] = keep[start : start + g.numel()].view_as(g)
        start += g.numel()
    return masks


@register_method("salun")
@dataclass(kw_only=True)
class SalUn(RandomLabel):
    """Random-label unlearning on the salient weights only.

    The defaults are the reference implementation's (Fan et al. 2024, OPTML-Group/Unlearn-Saliency): saliency
    threshold 0.5 (``mask/with_0.5.pt``), then ``main_random.py --unlearn RL --unlearn_epochs 10 --unlearn_lr 0.013``
    (``Classification/README.md``) with the repository's SGD momentum 0.9, weight decay 5e-4 and batch 256
    (``Classification/arg_parser.py``). Our CPU tuning is the named variant ``salun.cpu``.

    Hyper-parameters: the optimiser settings of :class:`~oblivio.methods.common.OptimizerSettings` (``epochs`` are
    passes over ``D_r ∪ D_f``; weight decay cannot move frozen weights: they are restored after every step), and

    Args:
        sparsity: fraction of all weights kept trainable (the most salient ones); SalUn's "threshold" 0.5.

    Example:
        >>> from oblivio.methods import unlearn  # doctest: +SKIP
        >>> m_u = unlearn("salun", original, forget=f, retain=r, sparsity=0.5)  # doctest: +SKIP
    """

    source: ClassVar[str] = (
        "Fan et al. 2024 (ICLR) and their repository OPTML-Group/Unlearn-Saliency "
        "(Classification/README.md: main_random.py --unlearn RL --unlearn_epochs 10 --unlearn_lr "
        "0.013 --mask_path mask/with_0.5.pt; Classification/arg_parser.py: batch 256, SGD "
        "momentum 0.9, weight decay 5e-4): saliency sparsity 0.5, random-label unlearning with "
        "lr 0.013, 10 epochs. The CPU preset's 5 epochs, batch 128: the variant salun.cpu"
    )

    sparsity: float = 0.5
    epochs: int = 10
    lr: float = 0.013
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    optimizer: OptimizerName = "sgd"
    masks: dict | None = field(default=None, init=False, repr=False, compare=False)  # set by a call

    def __post_init__(self) -> None:
        check_hparams(self, sparsity=(lambda v: 0 <= v <= 1, "in [0, 1]"))
        self._check_class_weights()

    def _prepare(self, model: nn.Module, data: UnlearningData) -> list[Callback]:
        """Compute the saliency mask on ``D_f`` and return the callback that enforces it after every step."""
        masks = saliency_masks(model, data.forget, sparsity=self.sparsity, batch_size=self.batch_size)
        model.zero_grad(set_to_none=True)
        self.masks = masks
        self.info.update(
            n_salient=int(sum(int(m.sum()) for m in masks.values())), n_weights=sum(m.numel() for m in masks.values())
        )
        return [RestoreOutsideMask(masks)]
