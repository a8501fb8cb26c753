"""The interface every unlearning method implements, and the method registry.

A method is a dataclass of its hyper-parameters (keyword-only, with defaults and their source). Calling it with
a model and the data it may use returns a NEW model (the original is never modified, unless ``inplace=True``):

    >>> from oblivio.methods import create_method          # doctest: +SKIP
    >>> method = create_method("finetune", epochs=2)       # doctest: +SKIP
    >>> unlearned = method(original, forget=f, retain=r)   # doctest: +SKIP

A method sees ``forget`` (``D_f``), ``retain`` (``D_r``) and, when it declares ``needs_holdout``, ``holdout``:
unseen images from the training distribution, disjoint from the evaluation test split. It never sees the
evaluation test data or the gold model.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..data.base import ImageDataset
from ..metrics.cost import CostMeter
from ..registry import Registry
from ..utils import eval_mode, forked_rng, model_device

log = logging.getLogger("oblivio.methods")

METHODS: Registry = Registry("method")


class UnlearningError(ValueError):
    """The method cannot run on the given model / data."""


@dataclass
class UnlearningData:
    """The data a method may use."""

    forget: ImageDataset
    retain: ImageDataset
    holdout: ImageDataset | None = None


@dataclass(kw_only=True)
class UnlearningMethod:
    """Base class. Subclasses are ``@dataclass(kw_only=True)`` hyper-parameter sets that implement
    :meth:`_unlearn` and register with :func:`register_method`.

    Class attributes:
        name: registry name.
        source: where the defaults come from (paper, table, or "tuned on ...").
        needs_holdout: the method requires ``holdout`` data.
        needs_features: the method reads penultimate activations, so the model must have ``features(x) -> [B, D]``
            or be adaptable by :func:`oblivio.models.adapters.as_classifier` (checked before any training).

    After a call, ``self.info`` holds what the method reports about its run (counts, epochs, seconds...).
    """

    name: ClassVar[str] = "base"
    source: ClassVar[str] = ""
    needs_holdout: ClassVar[bool] = False
    needs_features: ClassVar[bool] = False  # reads penultimate activations (checked, adapted by as_classifier)
    variant_of: ClassVar[str | None] = None  # set on named variants (register_variant)
    variant_reason: ClassVar[str] = ""
    variant_overrides: ClassVar[dict] = {}
    info: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def hparams(self) -> dict[str, Any]:
        """The hyper-parameters as a plain dict (for provenance).

        A field named in ``_HPARAMS_OMIT_DEFAULTS`` (``class_weights``) is left out while it holds its default, so
        that adding it did not change the cache keys of the runs that do not use it."""
        omit = getattr(self, "_HPARAMS_OMIT_DEFAULTS", ())
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.init and not (f.name in omit and getattr(self, f.name) == f.default)
        }

    def __call__(
        self,
        model: nn.Module,
        *,
        forget: ImageDataset,
        retain: ImageDataset,
        holdout: ImageDataset | None = None,
        seed: int = 0,
        progress: bool = True,
        inplace: bool = False,
    ) -> nn.Module:
        """Unlearn ``forget`` from ``model``; returns the unlearned model (a copy unless ``inplace``)."""
        self._validate(model, forget, retain, holdout)
        work = model if inplace else copy.deepcopy(model)
        was_training = model.training
        self.info = {}
        with CostMeter() as cost, forked_rng(model):
            torch.manual_seed(seed)
            out = self._unlearn(work, UnlearningData(forget, retain, holdout), seed=seed, progress=progress)
        # wall seconds, CPU seconds of all threads (time.process_time: robust to a busy machine) and sample-passes
        self.info.setdefault("seconds", cost.wall_seconds)
        self.info.setdefault("cpu_seconds", cost.cpu_seconds)
        self.info.setdefault("forward_samples", cost.passes.forward)
        self.info.setdefault("backward_samples", cost.passes.backward)
        out.train(was_training) if inplace else out.eval()
        if not all(torch.isfinite(p).all() for p in out.parameters()):
            from ..training.loop import DivergenceError

            raise DivergenceError(f"{self.name}: the unlearned model has non-finite weights; the original is unchanged")
        if not self._finite_outputs(out, forget):
            from ..training.loop import DivergenceError

            # Finite but huge weights (an unclipped step at an absurd learning rate) overflow the logits.
            raise DivergenceError(
                f"{self.name}: the unlearned model's outputs are not finite (its weights overflow); "
                "lower the learning rate"
            )
        return out

    @staticmethod
    @torch.no_grad()
    def _finite_outputs(model: nn.Module, data: ImageDataset) -> bool:
        """Whether ``model`` gives finite logits (eval mode) on the first few samples of ``data``."""
        x = data.float_images(torch.arange(min(4, len(data)))).to(model_device(model))
        with eval_mode(model):
            return bool(torch.isfinite(model(x)).all())

    def _unlearn(self, model: nn.Module, data: UnlearningData, *, seed: int, progress: bool) -> nn.Module:
        raise NotImplementedError

    def _validate(
        self, model: nn.Module, forget: ImageDataset, retain: ImageDataset, holdout: ImageDataset | None
    ) -> None:
        if len(forget) == 0:
            raise UnlearningError("the forget set is empty: nothing to unlearn")
        if len(retain) == 0:
            raise UnlearningError("the retain set is empty: a forget request may not cover the whole training set")
        if self.needs_holdout and (holdout is None or len(holdout) == 0):
            raise UnlearningError(
                f"{self.name} needs holdout data (unseen images of the same distribution); pass holdout=..."
            )
        check = getattr(model, "check_input", None)
        for ds in (forget, retain) + ((holdout,) if holdout is not None else ()):
            if check is not None:
                check(ds.image_shape, ds.num_classes)
        overlap = np.intersect1d(forget.ids.numpy(), retain.ids.numpy())  # type: ignore[union-attr]
        if overlap.size:
            raise UnlearningError(
                f"forget and retain sets share {overlap.size} sample ids (e.g. {overlap[:5].tolist()})"
            )
        # The model contract, on one small batch, before any training (a late AttributeError wastes the twins).
        from ..models.adapters import ContractError, check_classifier

        x = forget.float_images(torch.arange(min(4, len(forget)))).to(model_device(model))
        try:
            check_classifier(
                model, x, num_classes=forget.num_classes, needs_features=self.needs_features, who=self.name
            )
        except ContractError as exc:
            raise UnlearningError(str(exc)) from exc


def register_method(name: str):
    """Class decorator: register an :class:`UnlearningMethod` subclass under ``name`` (sets ``cls.name``)."""

    def decorator(cls):
        cls.name = name
        METHODS.register(name)(cls)
        return cls

    return decorator


def register_variant(name: str, base: str, *, reason: str, **defaults: Any) -> type:
    """Register a named variant of a registered method: the same class with other default hyper-parameters.

    timm-style named configurations: a bench, a config file or a report names ``"neggrad+capped"`` instead of a
    dict of hyper-parameters. The base method keeps its reference defaults; the variant records what it changes
    (``variant_overrides``) and why (``variant_reason``), both shown by :func:`describe_method`. Hyper-parameters
    passed to :func:`create_method` still override the variant's defaults.

    Example:
        >>> cls = register_variant("finetune.doc-example", "finetune", reason="doctest", epochs=1)
        >>> create_method("finetune.doc-example").epochs, cls.variant_of
        (1, 'finetune')
        >>> _ = METHODS._entries.pop("finetune.doc-example")
    """
    base_cls = METHODS.get(base)
    by_name = {f.name: f for f in fields(base_cls) if f.init}
    unknown = sorted(set(defaults) - set(by_name))
    if unknown:
        raise TypeError(f"variant {name!r}: {base} has no hyper-parameter(s) {unknown}; valid: {sorted(by_name)}")
    if not reason.strip():
        raise ValueError(f"variant {name!r} needs a reason (why it exists, measured on what)")
    namespace: dict[str, Any] = {"__annotations__": {k: by_name[k].type for k in defaults}}
    for key, value in defaults.items():
        # Mutable values (lists, dicts) become per-instance copies, as dataclasses require.
        namespace[key] = (
            field(default_factory=lambda v=value: copy.deepcopy(v)) if isinstance(value, (list, dict, set)) else value
        )
    cls_name = (
        "".join(part.capitalize() for part in name.replace("+", " plus ").replace(".", " ").replace("-", " ").split())
        or "Variant"
    )
    cls = dataclass(kw_only=True)(type(cls_name, (base_cls,), namespace))
    cls.__doc__ = f"Variant {name!r} of {base!r}: {reason}"
    cls.variant_of = METHODS.get(base).name
    cls.variant_reason = reason
    cls.variant_overrides = dict(defaults)
    cls.name = name
    METHODS.register(name)(cls)
    return cls


def describe_method(name: str) -> dict[str, Any]:
    """Name, base method (for a variant), reason, source and default hyper-parameters of a registered method."""
    cls = METHODS.get(name)
    return {
        "name": cls.name,
        "variant_of": getattr(cls, "variant_of", None),
        "reason": getattr(cls, "variant_reason", None),
        "overrides": dict(getattr(cls, "variant_overrides", {})),
        "source": cls.source,
        "defaults": cls().hparams(),
    }


def create_method(name: str, /, **hparams: Any) -> UnlearningMethod:
    """Instantiate a registered method with hyper-parameters (unknown ones fail, naming the valid ones)."""
    cls = METHODS.get(name)
    valid = {f.name for f in fields(cls) if f.init}
    unknown = set(hparams) - valid
    if unknown:
        raise TypeError(f"{name} has no hyper-parameter(s) {sorted(unknown)}; valid: {sorted(valid)}")
    return cls(**hparams)


def list_methods(*, variants: bool = True) -> list[str]:
    """Registered method names; ``variants=False`` lists only the base methods (no named variants)."""
    return [n for n in METHODS.names() if variants or getattr(METHODS.get(n), "variant_of", None) is None]


def unlearn(
    method: str,
    model: nn.Module,
    *,
    forget: ImageDataset,
    retain: ImageDataset,
    holdout: ImageDataset | None = None,
    seed: int = 0,
    progress: bool = True,
    **hparams: Any,
) -> nn.Module:
    """One-call form: ``unlearn("finetune", model, forget=f, retain=r, epochs=3)``."""
    return create_method(method, **hparams)(
        model, forget=forget, retain=retain, holdout=holdout, seed=seed, progress=progress
    )
