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
import functools
import logging
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..data.base import ImageDataset
from ..metrics.cost import CostMeter
from ..models.adapters import ClassifierAdapter, logits_of, with_logits
from ..registry import Registry
from ..utils import eval_mode, forked_rng, model_device
from .common import check_hparam_values

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
        holdout_covers: which set's classes a given ``holdout`` must all hold (``"forget"``: TMU's twin set is
            drawn from the holdout images of the forget classes; ``"retain"``: two-stage's saving point is chosen
            on the holdout); checked before any training. ``None``: not checked.
        needs_features: the method reads penultimate activations, so the model must have ``features(x) -> [B, D]``
            or be adaptable by :func:`oblivio.models.adapters.as_classifier` (checked before any training).
        zero_allowed: the count hyper-parameters (``*_epochs``...) that may be 0 here; every other count given to
            :func:`create_method` must be at least 1 (:func:`~oblivio.methods.common.check_hparam_values`).

    After a call, ``self.info`` holds what the method reports about its run (counts, epochs, seconds...).
    """

    name: ClassVar[str] = "base"
    source: ClassVar[str] = ""
    needs_holdout: ClassVar[bool] = False
    holdout_covers: ClassVar[str | None] = None
    holdout_use: ClassVar[str] = ""  # what the holdout is for, in the coverage message
    needs_features: ClassVar[bool] = False  # reads penultimate activations (checked, adapted by as_classifier)
    variant_of: ClassVar[str | None] = None  # set on named variants (register_variant)
    variant_reason: ClassVar[str] = ""
    variant_overrides: ClassVar[dict] = {}
    zero_allowed: ClassVar[tuple[str, ...]] = ()  # counts (``*_epochs``...) that may be 0 (check_hparam_values)
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
        """Unlearn ``forget`` from ``model``; returns the unlearned model (a copy unless ``inplace``).

        A model whose forward returns a tuple, a dict or an output object with ``logits`` (Hugging Face style) is
        trained through :func:`oblivio.models.adapters.with_logits` and handed back as itself (same type).
        """
        plain = self._validate(model, forget, retain, holdout)
        work = model if inplace else copy.deepcopy(model)
        was_training = model.training
        self.info = {}
        adapted = work if plain else with_logits(work)  # the one adapter: every loss and metric sees logits
        with CostMeter() as cost, forked_rng(model):
            torch.manual_seed(seed)
            out = self._unlearn(adapted, UnlearningData(forget, retain, holdout), seed=seed, progress=progress)
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
        if not plain and isinstance(out, ClassifierAdapter):
            out = out.model  # the user's own module back, not our adapter (a plain model never gets one)
        return out

    @staticmethod
    @torch.no_grad()
    def _finite_outputs(model: nn.Module, data: ImageDataset) -> bool:
        """Whether ``model`` gives finite logits (eval mode) on the first few samples of ``data``."""
        x = data.float_images(torch.arange(min(4, len(data)))).to(model_device(model))
        with eval_mode(model):
            return bool(torch.isfinite(logits_of(model(x))).all())

    def _unlearn(self, model: nn.Module, data: UnlearningData, *, seed: int, progress: bool) -> nn.Module:
        raise NotImplementedError

    def _validate(
        self, model: nn.Module, forget: ImageDataset, retain: ImageDataset, holdout: ImageDataset | None
    ) -> bool:
        """Check the data and the model (on one batch) before any training; returns whether the model's forward
        returns a plain logits tensor.

        Raises:
            UnlearningError: empty sets, missing holdout, forget and retain sharing ids, or a model that does not
                fit (meta device, no logits, another number of outputs than classes...).
        """
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
        _check_sizes(forget, retain, holdout)
        if holdout is not None and len(holdout) and self.holdout_covers:
            reference = forget if self.holdout_covers == "forget" else retain
            msg = holdout_coverage_error(
                self.name, reference, holdout, role=f"{self.holdout_covers} set", use=self.holdout_use
            )
            if msg:
                raise UnlearningError(msg)
        overlap = np.intersect1d(forget.ids.numpy(), retain.ids.numpy())  # type: ignore[union-attr]
        if overlap.size:
            raise UnlearningError(
                f"forget and retain sets share {overlap.size} sample ids (e.g. {overlap[:5].tolist()})"
            )
        # The model contract, on one small batch, before any training (a late AttributeError wastes the twins).
        from ..models.adapters import ContractError, check_classifier, check_materialised

        try:
            check_materialised(model, who=self.name)  # before moving a batch to its device
            x = forget.float_images(torch.arange(min(4, len(forget)))).to(model_device(model))
            return check_classifier(
                model, x, num_classes=forget.num_classes, needs_features=self.needs_features, who=self.name
            ).plain
        except ContractError as exc:
            raise UnlearningError(str(exc)) from exc


def _check_sizes(forget: ImageDataset, retain: ImageDataset, holdout: ImageDataset | None) -> None:
    """One image size for every set a method sees (a 32x32 holdout beside 28x28 training images is refused)."""
    for role, ds in (("retain", retain), ("holdout", holdout)):
        if ds is not None and len(ds) and ds.image_shape != forget.image_shape:
            c, h, w = ds.image_shape
            fc, fh, fw = forget.image_shape
            raise UnlearningError(
                f"the {role} images are {c}x{h}x{w} (channels x height x width) but the forget images are "
                f"{fc}x{fh}x{fw}: every set must hold images of the training size; resize the {role} data to "
                f"{fh}x{fw} with {fc} channel(s) in its transform (the same one the training data uses)"
            )


HOLDOUT_FIX = (
    "take a class-stratified holdout instead of a slice of a class-sorted dataset, e.g. hold, rest = "
    "sklearn.model_selection.train_test_split(range(len(test)), train_size=250, stratify=[int(y) for _, y in test], "
    "random_state=0); holdout, test = Subset(test, hold), Subset(test, rest)"
)


def holdout_coverage_error(
    method: str, reference: ImageDataset, holdout: ImageDataset, *, role: str, use: str
) -> str | None:
    """The refusal when ``holdout`` holds no image of a class that ``reference`` has (None when it covers them).

    Example:
        >>> import torch
        >>> f = ImageDataset(torch.zeros(3, 1, 4, 4), torch.tensor([0, 2, 2]), ("a", "b", "c"))
        >>> h = ImageDataset(torch.zeros(4, 1, 4, 4), torch.tensor([0, 0, 1, 1]), ("a", "b", "c"))
        >>> holdout_coverage_error("tmu", f, h, role="forget set", use="builds its twin set from").split(";")[0]
        "tmu: the holdout has no image of class 'c', of which the forget set has 2"
    """
    have = holdout.class_counts()
    need = reference.class_counts()
    missing = [c for c in range(len(need)) if need[c] > 0 and (c >= len(have) or have[c] == 0)]
    if not missing:
        return None
    names = ", ".join(repr(reference.classes[c]) for c in missing[:5]) + (" ..." if len(missing) > 5 else "")
    counts = ", ".join(str(int(need[c])) for c in missing[:5])
    return (
        f"{method}: the holdout has no image of class {names}, of which the {role} has {counts}; {method} {use} "
        f"the holdout (a class-sorted slice such as Subset(test, range(250)) does this). Fix: {HOLDOUT_FIX}"
    )


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
            field(default_factory=functools.partial(copy.deepcopy, value))
            if isinstance(value, (list, dict, set))
            else value
        )
    cls_name = (
        "".join(part.capitalize() for part in name.replace("+", " plus ").replace(".", " ").replace("-", " ").split())
        or "Variant"
    )
    cls: type[UnlearningMethod] = dataclass(kw_only=True)(type(cls_name, (base_cls,), namespace))
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
    """Instantiate a registered method with hyper-parameters (unknown ones fail, naming the valid ones; a wrong
    type, a non-finite number or a count below 1 fails too: :func:`~oblivio.methods.common.check_hparam_values`)."""
    cls = METHODS.get(name)
    valid = {f.name for f in fields(cls) if f.init}
    unknown = set(hparams) - valid
    if unknown:
        raise TypeError(f"{name} has no hyper-parameter(s) {sorted(unknown)}; valid: {sorted(valid)}")
    check_hparam_values(cls, hparams)  # types and counts >= 1, one line, before the method is built
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
