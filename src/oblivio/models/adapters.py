"""Adapters: your own PyTorch classifier in, the ``features(x) -> [B, D]`` contract out.

Only methods that read penultimate activations (TMU's nearest-distance feature) need more than ``model(x) ->
logits``. :func:`as_classifier` gives any model a ``features`` method and a ``head`` attribute without touching its
weights, recognising the common layouts:

* **oblivio** :class:`~oblivio.models.Classifier` (``features`` returns ``[B, D]``): returned unchanged.
* **timm-style**: ``forward_features(x)`` then ``forward_head(x, pre_logits=True)`` gives the pooled pre-logits.
* **torchvision-style conv trunk**: ``.features`` returns ``[B, C, H, W]`` (VGG, MobileNet, DenseNet,
  EfficientNet) and ``.classifier`` holds the head: the trunk's output is global-average-pooled to ``[B, C]``.
* **torchvision-style ``fc``** (ResNet) and **plain modules**: the input of the last ``nn.Linear`` that runs in
  ``forward`` (found on the first batch with forward hooks), captured with a forward hook on each call.
* **a ``features`` method of its own** (the oblivio contract, duck-typed): used, its output flattened.
* **explicit**: ``as_classifier(model, features=..., head=...)`` names a sub-module or method, or passes a function
  ``features(model, x)``.

The adapter holds the model as ``adapter.model``; ``adapter(x)`` is the logits of ``model(x)`` (:func:`logits_of`:
a tensor as it is, the ``logits`` of a dict / Hugging Face ``ModelOutput`` / object, the first element of a tuple)
and ``adapter.state_dict()`` keys carry a ``model.`` prefix. :func:`with_logits` is the one adapter every method,
metric and :func:`oblivio.unlearn` use for a model whose forward returns more than a logits tensor. :func:`unwrap`
gives the model back. Hooks are registered for one call and removed at once, so the adapter survives
``copy.deepcopy`` (methods copy models freely).

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> clf = as_classifier(net)
    >>> clf.style, clf.features(torch.rand(2, 1, 4, 4)).shape
    ('last-linear', torch.Size([2, 8]))
    >>> unwrap(clf) is net
    True
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger("oblivio.models")

FeatureSpec = "str | Callable[[nn.Module, torch.Tensor], torch.Tensor] | None"

HOW_TO_ADAPT = (
    "wrap the model with oblivio.as_classifier(model, features=..., head=...): features is the name of a "
    "sub-module or method that maps images to [B, D] penultimate activations, or a function features(model, x); "
    "head names the final linear layer"
)

__all__ = [
    "ClassifierAdapter",
    "ContractError",
    "HOW_TO_ADAPT",
    "OutputCheck",
    "as_classifier",
    "check_classifier",
    "check_materialised",
    "has_features",
    "logits_of",
    "unwrap",
    "with_logits",
]


class ContractError(ValueError):
    """A model does not follow the contract a method needs (logits ``[B, K]``, or ``features -> [B, D]``)."""


def logits_of(output: Any) -> torch.Tensor:
    """The logits in what a model's forward returned.

    Accepted, in this order: a tensor (as it is); a mapping with a ``"logits"`` tensor (a dict, a Hugging Face
    ``ModelOutput``); an object with a ``.logits`` tensor (a named tuple or dataclass of outputs); the first element
    of a tuple or list, when it is a tensor (``(logits, aux)``, ``(logits, features)``).

    Raises:
        ContractError: none of these: the message names what was returned and how to adapt.

    Example:
        >>> t = torch.zeros(2, 3)
        >>> all(logits_of(o) is t for o in (t, {"logits": t, "loss": None}, (t, "aux"), [t]))
        True
    """
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        logits = output.get("logits")
        if isinstance(logits, torch.Tensor):
            return logits
        keys = ", ".join(repr(k) for k in itertools.islice(output, 8))
        raise ContractError(
            f"the model returned a {type(output).__name__} without a 'logits' tensor (keys: {keys}); return the "
            "logits, or a dict with a 'logits' entry"
        )
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise ContractError(
        f"the model returned a {type(output).__name__}, not logits: return a [B, K] tensor, a dict with 'logits', "
        "or a tuple whose first element is the logits"
    )


def with_logits(model: nn.Module) -> nn.Module:
    """``model`` as a module whose forward returns the logits tensor (:func:`logits_of` of its output).

    Returns an oblivio Classifier or an adapter unchanged, else :func:`as_classifier`'s adapter, which also gives
    ``features``. Weights are shared, not copied; :func:`unwrap` gives the model back.
    """
    from .base import Classifier

    if isinstance(model, ClassifierAdapter):
        return model
    adapted = as_classifier(model)
    if adapted is model and isinstance(model, Classifier):  # its own forward may still return a tuple
        return ClassifierAdapter(model, style="module", features="features", head="head")
    return adapted


def check_materialised(model: nn.Module, *, who: str = "oblivio") -> None:
    """Refuse a model whose weights are on the ``meta`` device (shapes only: nothing to compute with).

    Raises:
        ContractError: naming how to materialise the weights.
    """
    meta = next((n for n, t in itertools.chain(model.named_parameters(), model.named_buffers()) if t.is_meta), None)
    if meta is not None:
        raise ContractError(
            f"{who}: the model's weights are on the meta device ({meta} has a shape but no data), so it cannot be "
            "run or trained; materialise it first, e.g. model.to_empty(device='cpu') then "
            "model.load_state_dict(weights)"
        )


def _is_2d_features(model: nn.Module) -> bool:
    from .base import Classifier

    return isinstance(model, (Classifier, ClassifierAdapter))


def has_features(model: nn.Module) -> bool:
    """Whether ``model`` already provides ``features(x) -> [B, D]`` (an oblivio Classifier or an adapter)."""
    return _is_2d_features(model)


class ClassifierAdapter(nn.Module):
    """A wrapper that adds ``features(x) -> [B, D]`` and ``head`` to a classifier (build it with
    :func:`as_classifier`).

    Attributes:
        model: the wrapped model (trained in place when the adapter is trained).
        style: how the features are found: ``"timm"``, ``"torchvision-trunk"``, ``"last-linear"``, ``"module"``
            (a named sub-module or method), ``"function"``.
    """

    def __init__(self, model: nn.Module, *, style: str, features: Any = None, head: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.style = style
        self._features = features  # str (sub-module / method name) or function(model, x); never a bound method
        self._head_name = head  # dotted name of the final linear layer, once known

    # ------------------------------------------------------------------ the contract
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model(x))  # the wrapped model may return a tuple or a dict (Hugging Face style)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations ``[B, D]`` of the wrapped model."""
        m: Any = self.model  # duck-typed: timm's forward_features / forward_head, torchvision's features...
        if self.style == "timm":
            return _flatten(m.forward_head(m.forward_features(x), pre_logits=True))
        if self.style == "torchvision-trunk":
            return _pool(m.features(x))
        if self.style == "function":
            return _flatten(self._features(m, x))
        if self.style == "module":
            target = _resolve(m, self._features)
            return _flatten(target(x))
        # last-linear: the input of the head, captured by a hook for this one call
        if self._head_name is None:
            self._head_name = find_last_linear(m, x)
        return _input_of(m, m.get_submodule(self._head_name), x)

    @property
    def head(self) -> nn.Module | None:
        """The final linear layer (``None`` when it cannot be named, e.g. a function-defined timm head)."""
        if self._head_name is not None:
            return self.model.get_submodule(self._head_name)
        get = getattr(self.model, "get_classifier", None)
        if callable(get):
            return get()
        return None

    def check_input(self, image_shape: Sequence[int], num_classes: int | None = None) -> None:
        """Delegates to the wrapped model's ``check_input`` when it has one."""
        check = getattr(self.model, "check_input", None)
        if callable(check):
            check(image_shape, num_classes)

    def __getattr__(self, name: str) -> Any:
        # Attributes such as num_classes or image_size of the wrapped model stay reachable.
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("model"), name)

    def extra_repr(self) -> str:
        return f"style={self.style!r}, head={self._head_name!r}"


def _flatten(z: torch.Tensor) -> torch.Tensor:
    return z.flatten(1) if z.dim() > 2 else z


def _pool(z: torch.Tensor) -> torch.Tensor:
    if z.dim() == 4:
        return F.adaptive_avg_pool2d(z, 1).flatten(1)
    if z.dim() == 3:  # [B, tokens, D]: mean over tokens
        return z.mean(1)
    return z


def _resolve(model: nn.Module, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    attr: Any = model
    for part in name.split("."):
        attr = getattr(attr, part)
    if not callable(attr):
        raise ContractError(f"{type(model).__name__}.{name} is not callable")
    return attr


def _input_of(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run ``model(x)`` and return the input of ``layer`` (hook registered for this call only)."""
    captured: list[torch.Tensor] = []

    def hook(_module, inputs, _output):
        captured.append(inputs[0])

    handle = layer.register_forward_hook(hook)
    try:
        model(x)
    finally:
        handle.remove()
    if not captured:
        raise ContractError(
            f"the layer {type(layer).__name__} did not run in {type(model).__name__}.forward; " + HOW_TO_ADAPT
        )
    return _flatten(captured[-1])


def find_last_linear(model: nn.Module, x: torch.Tensor) -> str:
    """Dotted name of the last ``nn.Linear`` that runs in ``model(x)`` and whose output is the logits.

    Raises:
        ContractError: no linear layer runs, or the last one's output is not the model's output.
    """
    names = {id(m): n for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    order: list[tuple[str, torch.Tensor]] = []
    handles = [
        m.register_forward_hook(lambda mod, _i, out: order.append((names[id(mod)], out)))
        for m in model.modules()
        if isinstance(m, nn.Linear)
    ]
    try:
        with torch.no_grad():
            logits = logits_of(model(x))
    finally:
        for h in handles:
            h.remove()
    if not order:
        raise ContractError(
            f"{type(model).__name__} has no nn.Linear layer that runs in forward, so its "
            "penultimate activations cannot be found; " + HOW_TO_ADAPT
        )
    name, out = order[-1]
    if not isinstance(logits, torch.Tensor) or out.shape != logits.shape or not torch.equal(out, logits):
        raise ContractError(
            f"the last nn.Linear of {type(model).__name__} ({name!r}) does not produce the "
            "model's output (something runs after it); " + HOW_TO_ADAPT
        )
    return name


def as_classifier(model: nn.Module, *, features: str | Callable | None = None, head: str | None = None) -> nn.Module:
    """Give ``model`` the ``features(x) -> [B, D]`` contract (returns an oblivio Classifier unchanged).

    Args:
        model: your classifier: images ``[B, C, H, W]`` in [0, 1] -> logits ``[B, K]``.
        features: optional explicit penultimate features: the (dotted) name of a sub-module or method mapping
            images to ``[B, D]`` (``[B, C, H, W]`` outputs are flattened), or a function ``features(model, x)``.
            A function receives the model (not a closure over it), so copies of the adapter use their own weights.
        head: optional (dotted) name of the final linear layer; without ``features``, the features are its input.

    Returns:
        The model itself when it already has the contract, else a :class:`ClassifierAdapter`.

    Raises:
        ContractError: a named sub-module or method does not exist.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> class Net(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
        ...         self.fc = nn.Linear(4, 2)
        ...     def forward(self, x):
        ...         return self.fc(self.backbone(x))
        >>> as_classifier(Net(), features="backbone").features(torch.rand(3, 1, 4, 4)).shape
        torch.Size([3, 4])
    """
    if isinstance(model, ClassifierAdapter) and features is None and head is None:
        return model
    if features is not None:
        if isinstance(features, str):
            try:
                _resolve(model, features)
            except AttributeError:
                raise ContractError(f"{type(model).__name__} has no sub-module or method {features!r}") from None
            return ClassifierAdapter(model, style="module", features=features, head=_check_head(model, head))
        if callable(features):
            return ClassifierAdapter(model, style="function", features=features, head=_check_head(model, head))
        raise TypeError(f"features must be a name or a function(model, x), got {type(features).__name__}")
    if head is not None:
        return ClassifierAdapter(model, style="last-linear", head=_check_head(model, head))
    if _is_2d_features(model):
        return model
    if callable(getattr(model, "forward_features", None)) and callable(getattr(model, "forward_head", None)):
        return ClassifierAdapter(model, style="timm")
    trunk = getattr(model, "features", None)
    if callable(trunk) and not isinstance(trunk, nn.Module):  # a features() method of its own: use it
        return ClassifierAdapter(
            model,
            style="module",
            features="features",
            head="head" if isinstance(getattr(model, "head", None), nn.Linear) else None,
        )
    if isinstance(trunk, nn.Module) and isinstance(getattr(model, "classifier", None), nn.Module):
        return ClassifierAdapter(model, style="torchvision-trunk", head=_last_linear_in(model, "classifier"))
    if isinstance(getattr(model, "fc", None), nn.Linear):
        return ClassifierAdapter(model, style="last-linear", head="fc")
    return ClassifierAdapter(model, style="last-linear")


def _check_head(model: nn.Module, head: str | None) -> str | None:
    if head is None:
        return None
    try:
        layer = model.get_submodule(head)
    except AttributeError:
        raise ContractError(f"{type(model).__name__} has no sub-module {head!r} (head=)") from None
    if not isinstance(layer, nn.Module):
        raise ContractError(f"head={head!r} is not a module")
    return head


def _last_linear_in(model: nn.Module, name: str) -> str | None:
    sub = model.get_submodule(name)
    linears = [n for n, m in sub.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        return None
    return f"{name}.{linears[-1]}" if linears[-1] else name


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside an adapter (any other model is returned as is)."""
    while isinstance(model, ClassifierAdapter):
        model = model.model
    return model


class OutputCheck(NamedTuple):
    """What :func:`check_classifier` saw: the logits width, and whether forward returned a plain tensor (False: a
    tuple, a dict or an output object, which :func:`with_logits` adapts)."""

    width: int
    plain: bool


def check_classifier(
    model: nn.Module,
    x: torch.Tensor,
    *,
    num_classes: int | None,
    needs_features: bool = False,
    who: str = "this method",
) -> OutputCheck:
    """Check the contract on one batch ``x`` (eval mode, no gradients, modes restored), before anything else
    touches the model.

    Args:
        model: the model a method is about to train.
        x: a small batch of images ``[B, C, H, W]`` in [0, 1], on the model's device.
        num_classes: classes of the data (the logits must have this many columns); None skips that check.
        needs_features: also check ``as_classifier(model).features(x)`` gives ``[B, D]``.
        who: the method's name, for the message.

    Returns:
        :class:`OutputCheck`: the logits width and whether forward returns a plain tensor.

    Raises:
        ContractError: the weights are on the meta device, the model fails on the batch, returns no logits
            (:func:`logits_of`), non-finite logits or the wrong shape, or has another number of outputs than the
            data has classes; the message says how to adapt.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        >>> check_classifier(net, torch.rand(2, 1, 4, 4), num_classes=3)
        OutputCheck(width=3, plain=True)
        >>> check_classifier(net, torch.rand(2, 1, 4, 4), num_classes=10)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        oblivio.models.adapters.ContractError: this method: the model has 3 outputs but the data has 10 classes...
    """
    check_materialised(model, who=who)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            try:
                raw = model(x)
            except Exception as exc:  # noqa: BLE001 - any failure is reported with the batch shape
                raise ContractError(
                    f"{who}: the model fails on a batch of shape {tuple(x.shape)} (float images in [0, 1]): "
                    f"{type(exc).__name__}: {exc}. oblivio models take [B, C, H, W] images in [0, 1] and normalise "
                    "inside (prepend oblivio.models.Normalize(mean, std) to a model trained on normalised images)"
                ) from exc
            try:
                logits = logits_of(raw)
            except ContractError as exc:
                raise ContractError(f"{who}: {exc}") from None
            if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
                raise ContractError(
                    f"{who}: the model must return logits [B, K], got {tuple(logits.shape)} for a batch of "
                    f"{x.shape[0]}; wrap it so that forward returns one logits tensor"
                )
            if not bool(torch.isfinite(logits).all()):  # finite weights, nonsense outputs (e.g. a mean of 1e38)
                raise ContractError(
                    f"{who}: the model's outputs on a batch of {x.shape[0]} real images are not finite (NaN or inf) "
                    "although the run has not started; check the normalisation mean/std and the layers' scales, and "
                    "give a model whose outputs are finite"
                )
            if num_classes is not None and logits.shape[1] != num_classes:
                fewer = logits.shape[1] < num_classes
                raise ContractError(
                    f"{who}: the model has {logits.shape[1]} outputs but the data has {num_classes} classes; "
                    + (
                        f"give a model with one output per class (a last layer of {num_classes} units)"
                        if fewer
                        else "pass classes= naming all of the model's classes, or a model with one output per class"
                    )
                )
            if needs_features:
                try:
                    z = as_classifier(model).features(x)
                except ContractError as exc:
                    raise ContractError(f"{who} needs penultimate features: {exc}") from exc
                except Exception as exc:  # noqa: BLE001
                    raise ContractError(
                        f"{who} needs penultimate features, and model.features failed on a batch "
                        f"of shape {tuple(x.shape)}: {type(exc).__name__}: {exc}; " + HOW_TO_ADAPT
                    ) from exc
                if z.dim() != 2 or z.shape[0] != x.shape[0]:
                    raise ContractError(
                        f"{who} needs penultimate features [B, D], got {tuple(z.shape)}; " + HOW_TO_ADAPT
                    )
    finally:
        model.train(was_training)
    return OutputCheck(int(logits.shape[1]), isinstance(raw, torch.Tensor))


def load_weights_file(model: nn.Module, path: Path, *, probe: torch.Tensor, label: str, model_desc: str) -> nn.Module:
    """Load the state dict at ``path`` (``weights_only=True``, onto ``probe``'s device) into ``model`` and check it
    before anything uses it: a state dict, of this architecture, finite usable weights
    (:func:`~oblivio.models.base.check_usable_weights`) and finite outputs on ``probe``, a few real images
    (:func:`check_finite_outputs`). Returns ``model`` in eval mode. The one loader of a user's weights file (the
    CLI's ``--model-file`` and the ledger's ``request init --model-file``).

    Args:
        label: how the messages name the file (``"--model-file m.pt"``).
        model_desc: how they name the architecture (``"model 'small-cnn' with options {}"``).

    Raises:
        CheckpointError: unreadable, not a state dict, another architecture, non-finite weights or outputs.
    """
    from ..utils import CheckpointError, safe_torch_load
    from .base import check_usable_weights

    state = safe_torch_load(path, map_location=probe.device)
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{label} holds a {type(state).__name__}, not a state dict; save the model with "
            "torch.save(model.state_dict(), path)"
        )
    try:
        model.load_state_dict(state)
    except (RuntimeError, AttributeError, TypeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{label} does not fit {model_desc}: {str(exc).splitlines()[0]}") from exc
    check_usable_weights(model, source=str(path))  # NaN / inf / zero-std weights: refused before any run or metric
    check_finite_outputs(model, probe, source=str(path))  # finite weights can still give NaN / inf outputs
    return model.eval()


def check_finite_outputs(model: nn.Module, x: torch.Tensor, *, source: str) -> None:
    """Refuse a model whose weights are finite but whose outputs on a batch of real images are not (a
    normalisation mean of ``1e38``, an overflowing layer): it would be registered, scored and unlearned with
    nonsense. Runs one forward pass in eval mode without gradients (the model's mode is restored).

    Args:
        model: the model, its weights loaded and checked (:func:`check_usable_weights`).
        x: a small batch of real images ``[B, C, H, W]`` in [0, 1], on the model's device.
        source: where the weights came from (a file name), for the message.

    Raises:
        CheckpointError: NaN or inf in the outputs.

    Example:
        >>> from oblivio.models import Normalize
        >>> m = nn.Sequential(Normalize([1e38], [1e-38]), nn.Flatten(), nn.Linear(4, 2))
        >>> check_finite_outputs(m, torch.rand(2, 1, 2, 2), source="m.pt")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        oblivio.utils.CheckpointError: m.pt: the model's outputs on 2 real images are not finite...
    """
    from ..utils import CheckpointError

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = logits_of(model(x))
    finally:
        model.train(was_training)
    bad = int((~torch.isfinite(out)).sum())
    if bad:
        raise CheckpointError(
            f"{source}: the model's outputs on {x.shape[0]} real images are not finite ({bad} of {out.numel()} "
            "values NaN or inf) although its weights are: it cannot be served, scored or unlearned. Check the "
            "normalisation mean/std and the layers' scales, and give a model whose outputs are finite"
        )
