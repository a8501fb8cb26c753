"""Pieces the unlearning methods share: optimisers, loaders, frozen teachers, re-initialisation, losses, stops.

Every method trains through :func:`oblivio.training.loop.fit`; this module only holds the small parts several
methods need, so that no method repeats them.
"""

from __future__ import annotations

import copy
import inspect
import math
import numbers
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import ImageDataset
from ..data.loader import Batch, TensorLoader
from ..training.class_weights import ClassWeightsSpec, normalise_class_weights, resolve_class_weights
from ..training.evaluate import accuracy
from ..training.loop import Callback, StopWhen
from ..utils import model_device

OptimizerName = Literal["sgd", "adam"]


_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": (lambda v: int(v) == v and v >= 1, "an integer >= 1"),  # 0 epochs would change nothing
    "lr": (lambda v: math.isfinite(v) and v > 0, "a positive number"),
    "batch_size": (lambda v: int(v) == v and v >= 1, "an integer >= 1"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "weight_decay": (lambda v: math.isfinite(v) and v >= 0, "a number >= 0"),
    "temperature": (lambda v: math.isfinite(v) and v > 0, "a positive number"),
    "optimizer": (lambda v: v in ("sgd", "adam"), "'sgd' or 'adam'"),
    "grad_clip": (lambda v: v is None or (math.isfinite(v) and v > 0), "None or a positive number"),
}


def check_hparams(method: Any, **extra: tuple[Callable[[Any], bool], str]) -> None:
    """Validate a method's hyper-parameters at construction, failing with the name, the value and what is allowed.

    Common names (``epochs``, ``lr``, ``batch_size``, ``momentum``, ``weight_decay``, ``temperature``,
    ``optimizer``, ``grad_clip``) are checked when the method has them; ``extra`` adds
    ``name=(predicate, description)`` rules.

    Raises:
        ValueError: a hyper-parameter is out of range.
    """
    for name, (ok, allowed) in {**_RULES, **extra}.items():
        if not hasattr(method, name):
            continue
        value = getattr(method, name)
        if value is None and name not in _RULES:
            continue
        try:
            good = bool(ok(value))
        except (TypeError, ValueError):
            good = False
        if not good:
            raise ValueError(f"{type(method).__name__}: {name} must be {allowed}, got {value!r}")


def _field_types(cls: type) -> dict[str, Any]:
    """The resolved annotation of each dataclass field of ``cls``: each class of the MRO resolves its own
    annotations in its own module (a variant made by ``register_variant`` re-declares fields with the base's
    annotation strings, which name types of the base's module; those keep the base's resolution)."""
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        namespace = vars(sys.modules[klass.__module__]) if klass.__module__ in sys.modules else {}
        for name, ann in vars(klass).get("__annotations__", {}).items():
            try:
                out[name] = eval(ann, dict(namespace)) if isinstance(ann, str) else ann  # noqa: S307 - our own annotations
            except Exception:  # a name only the base's module knows: keep the base's resolution
                out.setdefault(name, Any)
    return out


def _describe(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        return f"a list of {_describe(args[0])}" if len(args) == 2 and args[1] is Ellipsis else f"a list of {len(args)}"
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string", type(None): "null"}
    return names.get(tp, f"a {getattr(tp, '__name__', tp)}")


def _matches(value: Any, tp: Any) -> bool:
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is Literal:  # 1 == True in Python: the type must match too
        return any(value == a and type(value) is type(a) for a in args)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:  # a bool is not a count; 2.0 or 1e999 (inf) is not an integer either (numpy integers are)
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if tp is type(None):
        return value is None
    if isinstance(origin, type):
        return isinstance(value, origin)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True  # an annotation this check does not know: the method's own checks judge the value


MAX_EPOCHS = 100_000  # a cap far above any recipe (paper scale: 200), so that a typo cannot hold a lease for ever
FLOAT32_MAX = 3.4028234663852886e38


def _is_epochs(name: str) -> bool:
    return name == "epochs" or name.endswith("_epochs")


def _is_count(name: str) -> bool:
    return name == "epochs" or name.endswith(("_epochs", "batch_size")) or name in ("n_twins", "twin_size")


def check_hparam_values(cls: type, hparams: dict[str, Any]) -> None:
    """Check hyper-parameters given by a user against the method's dataclass field types, before the method is
    built: the type (a bool is not an integer, ``1e999`` is not a finite number, a list stands for a tuple) and,
    for the counts (``epochs``, every ``*_epochs``, every ``*batch_size``, ``n_twins``, ``twin_size``), a value
    of at least 1: ``epochs: 0`` would run nothing and let a caller record a change that was not made. A method
    where a count may be 0 (a stage that can be left out) names it in ``zero_allowed``.

    Raises:
        ValueError: one line naming the method, the hyper-parameter, what it must be and the value given.

    Example:
        >>> from oblivio.methods import METHODS
        >>> check_hparam_values(METHODS.get("finetune"), {"epochs": 0})
        Traceback (most recent call last):
        ...
        ValueError: finetune: hyper-parameter epochs must be an integer >= 1, got 0
        >>> check_hparam_values(METHODS.get("finetune"), {"lr": "fast"})
        Traceback (most recent call last):
        ...
        ValueError: finetune: hyper-parameter lr must be a finite number, got 'fast'
    """
    types_ = _field_types(cls)
    zero_allowed = getattr(cls, "zero_allowed", ())
    label = getattr(cls, "name", cls.__name__)
    for key, value in hparams.items():
        tp = types_.get(key, Any)
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        if not _matches(value, tp):
            raise ValueError(f"{label}: hyper-parameter {key} must be {_describe(tp)}, got {shown}")
        low = 0 if key in zero_allowed else 1
        if _is_count(key) and isinstance(value, numbers.Integral) and value < low:
            raise ValueError(f"{label}: hyper-parameter {key} must be an integer >= {low}, got {shown}")
        if _is_epochs(key) and isinstance(value, numbers.Integral) and int(value) > MAX_EPOCHS:
            raise ValueError(
                f"{label}: hyper-parameter {key} must be at most {MAX_EPOCHS:,} (a run that would not end), got {shown}"
            )
        if isinstance(value, float) and not isinstance(value, bool) and abs(value) > FLOAT32_MAX:
            # torch keeps optimiser settings and losses in float32: a larger finite value overflows mid-run
            raise ValueError(
                f"{label}: hyper-parameter {key} must be at most {FLOAT32_MAX:.4g} in size (float32), got {shown}"
            )


def make_optimizer(
    params: Any, *, optimizer: OptimizerName = "sgd", lr: float, momentum: float = 0.9, weight_decay: float = 5e-4
) -> torch.optim.Optimizer:
    """SGD (with momentum) or Adam over ``params``.

    Args:
        params: parameters (or parameter groups) to optimise.
        optimizer: ``"sgd"`` or ``"adam"``.
        lr: learning rate.
        momentum: SGD momentum (ignored by Adam).
        weight_decay: L2 weight decay.

    Raises:
        ValueError: an unknown optimiser name or a non-positive learning rate.
    """
    if lr <= 0 or not math.isfinite(lr):
        raise ValueError(f"lr must be a positive number, got {lr}")
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")


@dataclass(kw_only=True)
class OptimizerSettings:
    """The optimiser settings the gradient-trained baselines share, documented once here.

    A method inherits this keyword-only dataclass beside :class:`~oblivio.methods.base.UnlearningMethod` and
    re-declares every field with ITS default value (a dataclass field override), naming where the values come from in
    its ``source`` string. The fields have no defaults here on purpose: a method that forgets to declare one fails at
    its first instantiation instead of silently inheriting someone else's value. The learning rate is constant (no
    schedule). The fields are ordinary hyper-parameters: they appear in ``hparams()`` under these names and are
    validated by :func:`check_hparams`.

    Attributes:
        epochs: passes over the method's training data (which data, and which loader drives an epoch: see the method).
        lr: learning rate.
        momentum: SGD momentum (ignored by Adam).
        weight_decay: the optimiser's L2 weight decay (toward zero).
        batch_size: mini-batch size of the method's main loader.
        optimizer: ``"sgd"`` or ``"adam"``.

    Example:
        >>> @dataclass(kw_only=True)
        ... class Demo(OptimizerSettings):
        ...     epochs: int = 2
        ...     lr: float = 0.1
        ...     momentum: float = 0.9
        ...     weight_decay: float = 0.0
        ...     batch_size: int = 8
        ...     optimizer: OptimizerName = "sgd"
        >>> type(Demo().build_optimizer(torch.nn.Linear(2, 2).parameters())).__name__
        'SGD'
    """

    epochs: int
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int
    optimizer: OptimizerName

    def build_optimizer(self, params: Any) -> torch.optim.Optimizer:
        """The optimiser these settings describe, over ``params`` (see :func:`make_optimizer`)."""
        return make_optimizer(
            params, optimizer=self.optimizer, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )


@dataclass(kw_only=True)
class ClassWeighted:
    """Mixin of the methods whose cross-entropy on the data they train on takes class weights (SPEC §9).

    ``class_weights`` is a spec (``"none"``, ``"balanced"`` or one weight per class, see
    :mod:`oblivio.training.class_weights`), resolved on the labels of the set the method trains with
    cross-entropy (``D_r`` for fine-tuning), as the recipe resolves it for the gold model. The default ``"none"`` is
    left out of :meth:`~oblivio.methods.base.UnlearningMethod.hparams` (and so of cache keys). The benchmark runner
    sets it to the experiment recipe's ``class_weights`` when that is not ``"none"`` and the method was not given
    its own (``oblivio.experiments.cell``).
    """

    _HPARAMS_OMIT_DEFAULTS: ClassVar[tuple[str, ...]] = ("class_weights",)
    class_weights: ClassWeightsSpec = "none"

    def _check_class_weights(self) -> None:
        object.__setattr__(self, "class_weights", normalise_class_weights(self.class_weights))

    def resolved_class_weights(self, data: ImageDataset) -> torch.Tensor | None:
        """The weight tensor on ``data`` (None for ``"none"``); errors name the wrong length or an empty class."""
        return resolve_class_weights(self.class_weights, data.labels, data.num_classes)


def make_loader(
    dataset: ImageDataset,
    model: nn.Module,
    *,
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    labels: torch.Tensor | None = None,
    fraction: float = 1.0,
    augment: str | None = None,
) -> TensorLoader:
    """A :class:`TensorLoader` whose batches go to the model's device."""
    return TensorLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        device=model_device(model),
        labels=labels,
        fraction=fraction,
        augment=augment,
    )


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode with gradients off (a teacher)."""
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def reinitialise(model: nn.Module) -> nn.Module:
    """Draw fresh weights for ``model`` in place (from the global torch RNG) and return it.

    Every sub-module with ``reset_parameters`` (convolutions, linear layers, normalisation layers, including
    BatchNorm running statistics) is reset; then the model's own ``_init_weights`` scheme, when it has one (the
    oblivio ResNet, All-CNN-C and ViT do), is applied on top, so the weights follow the same distribution as a freshly
    built model. Its required arguments are read from same-named model attributes (``False`` when absent: ResNet's
    ``zero_init_residual``). Buffers that are not statistics (the input normalisation's mean / std) are kept.
    """
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset) and module is not model:
            reset()
    init = getattr(model, "_init_weights", None)
    if callable(init):
        kwargs = {
            name: getattr(model, name, False)
            for name, p in inspect.signature(init).parameters.items()
            if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
        init(**kwargs)
    return model


def random_wrong_labels(labels: torch.Tensor, num_classes: int, *, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random label different from the true one, for every sample.

    Example:
        >>> y = torch.tensor([0, 1, 2, 2])
        >>> z = random_wrong_labels(y, 3, generator=torch.Generator().manual_seed(0))
        >>> bool((z != y).all()), bool(((z >= 0) & (z < 3)).all())
        (True, True)
    """
    if num_classes < 2:
        raise ValueError("random wrong labels need at least two classes")
    shift = torch.randint(1, num_classes, labels.shape, generator=generator)
    return (labels.cpu() + shift) % num_classes


def relabelled_union(
    retain: ImageDataset, forget: ImageDataset, *, seed: int, name: str = "retain+forget(random labels)"
) -> tuple[ImageDataset, torch.Tensor]:
    """``D_r ∪ D_f`` where every forget sample carries a random wrong label (drawn once, seeded).

    Returns:
        The union (retain first, then forget) and the random labels given to the forget samples.
    """
    wrong = random_wrong_labels(forget.labels, forget.num_classes, generator=torch.Generator().manual_seed(seed))
    return retain.concat(forget.with_labels(wrong), name=name), wrong


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float = 1.0, scale: bool = True
) -> torch.Tensor:
    """Hinton distillation loss ``KL(softmax(t/T) || softmax(s/T))``, batch mean, times ``T²`` when ``scale``.

    Example:
        >>> z = torch.randn(4, 3)
        >>> float(kd_loss(z, z, temperature=2.0)) == 0.0
        True
    """
    t = float(temperature)
    if t <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    log_p_student = F.log_softmax(student_logits / t, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits / t, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * (t * t) if scale else kl


def forget_accuracy_stop(forget: ImageDataset, target: float, *, name: str = "forget_acc") -> StopWhen:
    """Stop training at the end of the first epoch where accuracy on ``forget`` is at or below ``target``."""
    return StopWhen(name, lambda m: accuracy(m, forget), lambda value: value <= target)


class Phases:
    """Loaders run one after the other within an epoch, each batch tagged with its phase: ``{tag: Batch}``.

    A phase may be active only in some epochs (SCRUB's max-steps stop after ``msteps`` epochs). ``fit`` calls
    :meth:`set_epoch`, so the length and content follow the epoch.

    Args:
        phases: ``(tag, loader, active)`` triples; ``active(epoch) -> bool`` (``None`` = every epoch).
    """

    def __init__(self, phases: Sequence[tuple[str, TensorLoader, Callable[[int], bool] | None]]) -> None:
        self.phases = list(phases)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for _, loader, _ in self.phases:
            loader.set_epoch(epoch)

    def _active(self) -> list[tuple[str, TensorLoader]]:
        return [(tag, loader) for tag, loader, active in self.phases if active is None or active(self.epoch)]

    def __len__(self) -> int:
        return sum(len(loader) for _, loader in self._active())

    def __iter__(self) -> Iterator[dict[str, Batch]]:
        for tag, loader in self._active():
            for batch in loader:
                yield {tag: batch}


class EpochCounter:
    """Wrap a loader so the current epoch is readable while ``fit`` iterates it (for epoch-dependent losses)."""

    def __init__(self, loader: TensorLoader) -> None:
        self.loader = loader
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        return iter(self.loader)


class RestoreOutsideMask(Callback):
    """After every optimiser step, put every weight outside ``mask`` back to its value at the start of training.

    Masking gradients alone is not enough: weight decay and momentum still move a parameter whose gradient is
    zero. Restoring after each step keeps those weights bit-identical.

    Args:
        masks: ``{parameter name: bool tensor}``; ``True`` = trainable. Parameters without an entry are frozen.
    """

    def __init__(self, masks: dict[str, torch.Tensor]) -> None:
        self.masks = masks
        self.originals: dict[str, torch.Tensor] = {}

    def on_train_start(self, model, state):  # noqa: D102
        self.originals = {name: p.detach().clone() for name, p in model.named_parameters()}

    @torch.no_grad()
    def after_step(self, model, optimizer, state):  # noqa: D102
        for name, p in model.named_parameters():
            mask = self.masks.get(name)
            if mask is None:
                p.copy_(self.originals[name])
            else:
                p.copy_(torch.where(mask, p, self.originals[name]))


__all__ = [
    "ClassWeighted",
    "EpochCounter",
    "OptimizerSettings",
    "Phases",
    "RestoreOutsideMask",
    "check_hparam_values",
    "check_hparams",
    "forget_accuracy_stop",
    "frozen_copy",
    "kd_loss",
    "make_loader",
    "make_optimizer",
    "random_wrong_labels",
    "reinitialise",
    "relabelled_union",
]
