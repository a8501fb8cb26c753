"""Your training function as a recipe: original and gold models trained *your* way.

oblivio's own recipes (:class:`~oblivio.training.Recipe`: ``cpu``, ``paper``, ``tiny``) train with SGD or Adam
through :func:`~oblivio.training.fit`. A model you trained yourself (your optimiser, schedule, augmentation) must be
compared with a gold model retrained *the same way*, or δ and agreement measure the difference between two
training recipes instead of the unlearning. :func:`register_recipe` makes your function a recipe: ``--recipe NAME``
on the command line (with ``--import MODULE``), ``ExperimentConfig(recipe=NAME)``, ``oblivio.unlearn(...,
train_fn=NAME or function)``.

The contract of a training function::

    train_fn(model, train_data, *, seed, **options) -> nn.Module | None

- ``model``: a freshly initialised model (weights drawn after ``torch.manual_seed(seed)``), on the device it will
  be used on, in train mode. Train it in place and return it (or ``None``), or return a new module of the same
  architecture (its weights are copied into ``model``).
- ``train_data``: a map-style torch ``Dataset`` of ``(image, label)``, images float ``[C, H, W]`` in [0, 1] on the
  CPU (``DataLoader(train_data, batch_size=..., shuffle=True)`` works); ``train_data.dataset`` is the underlying
  :class:`~oblivio.data.ImageDataset` (all images as one tensor) for faster loops, ``train_data.targets`` the labels.
  Augment inside the function (e.g. ``oblivio.data.Augment.parse("crop4+flip")(x)`` on each batch).
- ``seed``: the training seed (original and gold models of one experiment share it); the global torch RNG is seeded
  with it before the model is built and again before the call, and restored afterwards.
- ``options``: your function's keyword parameters with defaults (``epochs=...``, ``lr=...``); ``--epochs N``
  sets ``epochs`` when the function takes it. ``progress`` is passed when the function takes it.

The checkpoint store keys a model trained by a function on the recipe's name, a fingerprint of the function (a
SHA-256 of its source code, its default values and the simple values its closure captures) and a ``version``
string you control. The fingerprint makes an edited function retrain instead of silently reusing models trained by
the old one; ``version`` covers what the fingerprint cannot see (a helper the function calls, a library upgrade):
bump it when such a change alters training. Editing only a comment also retrains (the safe direction).
A function's training cannot resume half-way: an interrupted one starts again.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import DataLoader
    >>> from oblivio.data import ImageDataset
    >>> from oblivio.training import get_recipe, register_recipe, train_model
    >>> @register_recipe("doc-adam", version="1")
    ... def doc_adam(model, train_data, *, seed, epochs=2, lr=1e-2):
    ...     opt = torch.optim.Adam(model.parameters(), lr=lr)
    ...     g = torch.Generator().manual_seed(seed)
    ...     for _ in range(epochs):
    ...         for x, y in DataLoader(train_data, batch_size=8, shuffle=True, generator=g):
    ...             opt.zero_grad()
    ...             nn.functional.cross_entropy(model(x), y).backward()
    ...             opt.step()
    ...     return model
    >>> recipe = get_recipe("doc-adam")
    >>> recipe.name, recipe.version, recipe.epochs
    ('doc-adam', '1', 2)
    >>> data = ImageDataset(torch.rand(16, 1, 4, 4), torch.arange(16) % 2, ("a", "b"))
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    >>> train_model(net, data, recipe=recipe.with_options(epochs=1), seed=0, progress=False).epochs_run
    1
    >>> unregister_recipe("doc-adam")
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import logging
import textwrap
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.base import ImageDataset
from .loop import DivergenceError, FitResult
from .passes import count_sample_passes
from .recipes import RECIPES, Recipe, get_recipe

log = logging.getLogger("oblivio.training")

TrainFn = Callable[..., "nn.Module | None"]

# (normalised name, fingerprint) -> the function; filled by register_recipe and TrainFunction.from_function
_FUNCTIONS: dict[tuple[str, str], TrainFn] = {}

_SIMPLE = (bool, int, float, str, bytes, type(None))


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _value(value: Any) -> str:
    """A value as the fingerprint sees it: numbers, strings and tuples of them by ``repr``; anything else by its type
    (a repr with a memory address would change the key in every process)."""
    simple = isinstance(value, _SIMPLE) or (
        isinstance(value, (tuple, list)) and all(isinstance(v, _SIMPLE) for v in value)
    )
    return repr(value) if simple else f"<{type(value).__qualname__}>"


def function_fingerprint(fn: Callable) -> str:
    """SHA-256 (hex) of what defines a training function: its source code (the byte code when no source is
    available), its default values, the simple values (numbers, strings, tuples of them) its closure captures, and a
    ``functools.partial``'s bound arguments.

    Example:
        >>> def f(model, data, *, seed, lr=0.1): return model
        >>> def g(model, data, *, seed, lr=0.2): return model
        >>> function_fingerprint(f) == function_fingerprint(g), len(function_fingerprint(f))
        (False, 64)
    """
    parts: list[str] = []
    while isinstance(fn, functools.partial):
        parts.append(f"partial{fn.args!r}{sorted(fn.keywords.items())!r}")
        fn = fn.func
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else type(fn)
    try:
        parts.append(textwrap.dedent(inspect.getsource(target)))
    except (OSError, TypeError):  # defined in a REPL or by exec: the byte code and its constants instead
        code = getattr(fn, "__code__", None)
        parts.append(code.co_code.hex() + repr(code.co_consts) + repr(code.co_names) if code else repr(target))
    func = getattr(fn, "__func__", fn)
    parts.append(repr([_value(v) for v in getattr(func, "__defaults__", None) or ()]))
    parts.append(repr(sorted((k, _value(v)) for k, v in (getattr(func, "__kwdefaults__", None) or {}).items())))
    code = getattr(func, "__code__", None)
    for var, cell in zip(getattr(code, "co_freevars", ()), getattr(func, "__closure__", None) or (), strict=True):
        try:
            parts.append(f"{var}={_value(cell.cell_contents)}")
        except ValueError:  # an empty cell
            continue
    if not inspect.isfunction(fn) and not inspect.ismethod(fn):  # a callable object: its simple attributes
        state = {k: v for k, v in sorted(vars(fn).items()) if isinstance(v, _SIMPLE)} if hasattr(fn, "__dict__") else {}
        parts.append(repr(state))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _check_signature(fn: Callable, name: str) -> inspect.Signature:
    if not callable(fn):
        raise TypeError(f"recipe {name!r}: a training function must be callable, got {type(fn).__name__}")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"recipe {name!r}: cannot read the signature of {fn!r}: {exc}") from exc
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var_pos = any(p.kind is p.VAR_POSITIONAL for p in params)
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    if (len(positional) < 2 and not var_pos) or ("seed" not in sig.parameters and not var_kw):
        raise TypeError(
            f"recipe {name!r}: {getattr(fn, '__qualname__', fn)!r}{sig} does not fit the contract "
            "train_fn(model, train_data, *, seed, **options) -> model"
        )
    return sig


def _qualname(fn: Callable) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"


@dataclass(frozen=True)
class TrainFunction:
    """A user training function used as a recipe (see the module docstring for the contract).

    Its fields are what the checkpoint store keys on; the function itself is looked up by ``(name, fingerprint)``
    among the functions registered in this process (a bench worker gets it through ``--import``).

    Attributes:
        name: the recipe name (``register_recipe(name)``, or the function's name for an unregistered one).
        fingerprint: :func:`function_fingerprint` of the function.
        version: your own version string (part of the key: bump it when something the fingerprint cannot see
            changes training).
        options: keyword values passed on every call (``epochs`` from ``--epochs``...).
        kind: always ``"function"`` (tells a stored key from an oblivio :class:`Recipe`'s).
        class_weights: always ``"none"``: your function computes its own loss (weigh the classes inside it); read
            by the code that records an oblivio recipe's class weights (not a field: not part of the key).
    """

    name: str
    fingerprint: str
    version: str = ""
    options: dict = field(default_factory=dict)
    kind: str = "function"
    class_weights: ClassVar[str] = "none"

    @classmethod
    def from_function(
        cls, fn: TrainFn, *, name: str | None = None, version: str = "", options: Mapping[str, Any] | None = None
    ) -> TrainFunction:
        """Wrap a function (registered or not) as a recipe."""
        name = name or getattr(fn, "__name__", None) or type(fn).__name__
        _check_signature(fn, name)
        recipe = cls(name=name, fingerprint=function_fingerprint(fn), version=str(version))
        _FUNCTIONS[(_normalise(name), recipe.fingerprint)] = fn
        return recipe.with_options(**dict(options or {}))

    @property
    def function(self) -> TrainFn:
        """The training function (looked up in this process).

        Raises:
            KeyError: it is not registered here (import the module that registers it), or the registered one has
                changed since this recipe was made.
        """
        fn = _FUNCTIONS.get((_normalise(self.name), self.fingerprint))
        if fn is not None:
            return fn
        if self.name in RECIPES:
            raise KeyError(
                f"recipe {self.name!r} has changed in this process (its source hashes to another fingerprint than "
                f"{self.fingerprint[:12]}); rebuild the configuration after the change"
            )
        raise KeyError(
            f"recipe {self.name!r} is a training function that is not registered in this process; import the "
            "module that calls register_recipe (--import MODULE)"
        )

    @property
    def qualname(self) -> str:
        """``module.function`` of the training function (``"?"`` when it is not loaded)."""
        try:
            return _qualname(self.function)
        except KeyError:
            return "?"

    @property
    def parameters(self) -> Mapping[str, inspect.Parameter]:
        return inspect.signature(self.function).parameters

    @property
    def epochs(self) -> int | None:
        """``options["epochs"]``, else the function's default ``epochs`` (None when it has neither)."""
        if "epochs" in self.options:
            return self.options["epochs"]
        p = self.parameters.get("epochs")
        return p.default if p is not None and p.default is not inspect.Parameter.empty else None

    def with_options(self, **options: Any) -> TrainFunction:
        """The same function with keyword values set for every call (each must be one of its parameters).

        Raises:
            TypeError: the function takes no such keyword.
        """
        params = self.parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for key in options:
            p = params.get(key)
            if key in ("seed", "progress") or (not takes_any and (p is None or p.kind is p.POSITIONAL_ONLY)):
                valid = [
                    n
                    for n, q in params.items()
                    if n not in ("seed", "progress")
                    and (q.kind is q.KEYWORD_ONLY or (q.kind is q.POSITIONAL_OR_KEYWORD and q.default is not q.empty))
                ]
                raise TypeError(
                    f"recipe {self.name!r} ({self.qualname}) takes no option {key!r}; "
                    + (f"its options: {', '.join(valid)}" if valid else "add it as a keyword parameter of the function")
                )
        return dataclasses.replace(self, options={**self.options, **options})

    def replace(self, **changes: Any) -> TrainFunction:
        """``epochs=N`` sets that option (as :meth:`Recipe.replace` sets the field); other changes are fields."""
        epochs = changes.pop("epochs", None)
        out = dataclasses.replace(self, **changes) if changes else self
        return out.with_options(epochs=epochs) if epochs is not None else out

    def scaled(self, factor: float) -> TrainFunction:
        """Not possible: oblivio cannot rescale a function's schedule.

        Raises:
            ValueError: always, naming what to do instead.
        """
        raise ValueError(
            f"recipe {self.name!r} is your training function ({self.qualname}): oblivio cannot scale its schedule "
            f"by {factor:g} (two-stage's retraining and the retrain method's epochs= need an oblivio Recipe); "
            "set the function's own options instead (epochs=...)"
        )

    def detail(self) -> str:
        """``your function module.fn, source a1b2c3d4e5f6[, version v][, options]`` (for reports)."""
        version = f", version {self.version}" if self.version else ""
        options = "".join(f", {k}={v}" for k, v in sorted(self.options.items()))
        return f"your function {self.qualname}, source {self.fingerprint[:12]}{version}{options}"

    def describe(self) -> str:
        """One line for reports: ``name (your function module.fn, source a1b2c3d4e5f6...)``."""
        return f"{self.name} ({self.detail()})"


def resolve_recipe(recipe: Any) -> Recipe | TrainFunction:
    """:func:`~oblivio.training.get_recipe`, and a training function (registered or not) as a :class:`TrainFunction`.

    Example:
        >>> def quick(model, train_data, *, seed): return model
        >>> resolve_recipe(quick).name, resolve_recipe("cpu").name
        ('quick', 'cpu')
    """
    if callable(recipe) and not isinstance(recipe, (Recipe, TrainFunction)):
        return TrainFunction.from_function(recipe)
    return get_recipe(recipe)


class TrainData(Dataset):
    """What a training function receives: a map-style torch ``Dataset`` of ``(float image [C, H, W], label)``.

    Attributes:
        dataset: the underlying :class:`~oblivio.data.ImageDataset` (``images``, ``labels``, ``float_images()``).
        targets: the labels (``[N]`` long tensor), as torchvision datasets name them.
        classes: the class names.
    """

    def __init__(self, dataset: ImageDataset) -> None:
        self.dataset = dataset
        self.targets = dataset.labels
        self.classes = dataset.classes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        i = int(index)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        return self.dataset.float_images(torch.tensor([i]))[0], int(self.dataset.labels[i])


def run_train_function(
    recipe: TrainFunction, model: nn.Module, dataset: ImageDataset, *, seed: int, progress: bool = True
) -> FitResult:
    """Train ``model`` in place with a user training function (the caller seeds the global RNG, as for :func:`fit`).

    Returns:
        A :class:`FitResult` with the cost (wall and CPU seconds, sample-passes of oblivio models) and
        ``epochs_run`` = the function's ``epochs`` option (0 when it has none).

    Raises:
        TypeError: the function returned something other than a module of ``model``'s architecture.
        DivergenceError: the trained weights are not finite.
    """
    fn = recipe.function
    kwargs = dict(recipe.options)
    if "progress" in recipe.parameters:
        kwargs["progress"] = progress
    model.train()
    t0, c0 = time.perf_counter(), time.process_time()
    with count_sample_passes() as passes:
        out = fn(model, TrainData(dataset), seed=seed, **kwargs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if out is None:
        out = model
    if not isinstance(out, nn.Module):
        raise TypeError(
            f"recipe {recipe.name!r} ({recipe.qualname}) returned a {type(out).__name__}; a training function "
            "returns the trained model (or None after training it in place)"
        )
    if out is not model:
        try:
            model.load_state_dict(out.state_dict())
        except (RuntimeError, TypeError, KeyError, ValueError) as exc:
            raise TypeError(
                f"recipe {recipe.name!r} ({recipe.qualname}) returned a model whose weights do not fit the model it "
                f"was given: {str(exc).splitlines()[0]}"
            ) from exc
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise DivergenceError(f"recipe {recipe.name!r} ({recipe.qualname}) left non-finite weights")
    log.debug("recipe %s trained %d samples in %.1f s", recipe.name, len(dataset), wall)
    return FitResult(
        epochs_run=int(recipe.epochs or 0),
        history=[],
        seconds=wall,
        stopped_early=False,
        info={"recipe": recipe.describe()},
        cost={
            "wall_seconds": wall,
            "cpu_seconds": cpu,
            "forward_samples": passes.forward,
            "backward_samples": passes.backward,
        },
    )


def register_recipe(name: str, *, version: str = "", overwrite: bool = False) -> Callable[[TrainFn], TrainFn]:
    """Decorator: your training function ``train_fn(model, train_data, *, seed, **options) -> model`` as a recipe.

    The recipe is then reachable by name everywhere a recipe is: ``--recipe NAME`` (with ``--import MODULE``),
    ``ExperimentConfig(recipe=NAME)``, ``oblivio.unlearn(..., train_fn=NAME)``. Registering a changed function again
    under its name (a notebook cell run twice) replaces it; oblivio's presets are protected unless ``overwrite``.

    Args:
        name: the recipe's name.
        version: your version string, part of the store key with the function's source fingerprint: bump it when
            something outside the function (a helper it calls) changes how it trains.
        overwrite: replace an oblivio preset of the same name.

    Returns:
        The decorator, which returns the function unchanged.

    Raises:
        TypeError: the function does not fit the contract.
        KeyError: ``name`` is an oblivio preset (and not ``overwrite``).
    """

    def decorator(fn: TrainFn) -> TrainFn:
        recipe = TrainFunction.from_function(fn, name=name, version=version)
        existing = RECIPES._entries.get(RECIPES._normalise(name))
        user = existing is not None and isinstance(existing(), TrainFunction)
        if existing is not None and not user and not overwrite:
            raise KeyError(f"recipe {name!r} is one of oblivio's presets; choose another name (or overwrite=True)")
        if user and existing is not None and existing() != recipe:
            log.info("recipe %s re-registered (%s)", name, recipe.describe())
        RECIPES.register(name, overwrite=True)(lambda: recipe)
        return fn

    return decorator


def unregister_recipe(name: str) -> None:
    """Remove a training function registered with :func:`register_recipe` (oblivio's presets stay)."""
    key = RECIPES._normalise(name)
    entry = RECIPES._entries.get(key)
    if entry is None or not isinstance(entry(), TrainFunction):
        raise KeyError(f"{name!r} is not a registered training function")
    del RECIPES._entries[key]
    for k in [k for k in _FUNCTIONS if k[0] == _normalise(name)]:
        del _FUNCTIONS[k]


# ---------------------------------------------------------------------------------------------- provenance
@dataclass(frozen=True)
class RecipeSource:
    """Which recipe trained a model, as reports state it.

    Attributes:
        name: ``"cpu"`` (an oblivio preset), a training function's recipe name, a name you stated,
            ``"user file"`` (a gold model you gave), or ``"unknown"`` (your weights, no recipe stated).
        kind: ``"oblivio"``, ``"function"``, ``"stated"``, ``"file"`` or ``"unknown"``.
        detail: what the recipe is (optimiser and schedule, or the function and its source fingerprint).
        identity: what makes two recipes the same (the full recipe; for a stated name, the name).
    """

    name: str
    kind: str
    detail: str = ""
    identity: str = ""

    @classmethod
    def of(cls, recipe: Any, *, assumed: bool = False) -> RecipeSource:
        """The source of an oblivio :class:`Recipe` or a :class:`TrainFunction` (``assumed``: your weights, taken
        to be trained by this recipe because you registered it as your way of training)."""
        if isinstance(recipe, TrainFunction):
            note = "; assumed: the training function you gave" if assumed else ""
            return cls(
                recipe.name,
                "function",
                recipe.detail() + note,
                f"function:{recipe.fingerprint}:{recipe.version}:{sorted(recipe.options.items())}",
            )
        if isinstance(recipe, Recipe):
            optim = (
                f"Adam lr {recipe.lr:g}"
                if recipe.optimizer == "adam"
                else f"SGD lr {recipe.lr:g}, momentum {recipe.momentum:g}"
            )
            detail = (
                f"oblivio recipe: {optim}, weight decay {recipe.weight_decay:g}, {recipe.epochs} epochs, "
                f"batch {recipe.batch_size}, augment {recipe.augment}"
            )
            return cls(recipe.name, "oblivio", detail, f"oblivio:{sorted(dataclasses.asdict(recipe).items())}")
        raise TypeError(f"not a recipe: {recipe!r}")

    @classmethod
    def stated(cls, name: str | None) -> RecipeSource:
        """Your weights: ``"unknown"`` when no recipe is stated, else the name you gave."""
        if name is None or not str(name).strip() or str(name).strip().lower() == "unknown":
            return cls("unknown", "unknown", "your weights; the recipe that trained them was not stated")
        return cls(str(name).strip(), "stated", "stated by you")

    @classmethod
    def user_file(cls, *, what: str = "user file") -> RecipeSource:
        """A gold model you gave (its recipe is yours to vouch for)."""
        return cls(what, "file", "your gold model; its recipe is not checked")

    def short(self) -> str:
        """``oblivio's recipe 'cpu'``, ``your function 'my-adam'``, ``an unknown recipe (your weights)``..."""
        return {
            "oblivio": f"oblivio's recipe {self.name!r}",
            "function": f"your training function {self.name!r}",
            "stated": f"{self.name!r} (as you stated)",
            "file": f"{self.name} (your gold model)",
        }.get(self.kind, "an unknown recipe (your weights, no recipe stated)")

    def label(self) -> str:
        return f"{self.name} ({self.detail})" if self.detail else self.name

    def same_as(self, other: RecipeSource) -> bool:
        """Known to be the same recipe: equal recipes, or equal names where one side is only a stated name."""
        if "unknown" in (self.kind, other.kind) or "file" in (self.kind, other.kind):
            return False
        if "stated" in (self.kind, other.kind):
            return _normalise(self.name) == _normalise(other.name)
        return self.identity == other.identity

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "detail": self.detail}


def recipe_mismatch(original: RecipeSource, gold: RecipeSource) -> str | None:
    """The warning when the gold model was trained by oblivio with another recipe than the original (None when they
    are the same, or when the gold model is yours: then oblivio cannot and does not check).

    Example:
        >>> from oblivio.training import CPU
        >>> print(recipe_mismatch(RecipeSource.of(CPU), RecipeSource.of(CPU)))
        None
        >>> recipe_mismatch(RecipeSource.stated(None), RecipeSource.of(CPU)).split(":")[0]
        'recipes differ'
    """
    if gold.kind not in ("oblivio", "function") or original.same_as(gold):
        return None
    return (
        f"recipes differ: the original model was trained by {original.short()}, the gold model by {gold.short()}, so "
        "δ, agreement and the other alignment measures compare with a differently trained model, not with yours "
        "retrained. Fix: retrain gold your way (oblivio.training.register_recipe, then --recipe NAME with --import "
        "MODULE, or train_fn= in Python), or give your own gold model (--gold-model-file, gold=); if the original "
        f"was trained with {gold.name}, say so (--model-recipe {gold.name}, original_recipe=)"
    )


def recipe_sources(recipe: Any, original_recipe: Any, *, gold_given: bool) -> tuple[dict, list[str]]:
    """What ``oblivio.unlearn`` reports: ``{"original": {...}, "gold": {...} | None}`` and the recipe warning (if any).

    Args:
        recipe: the recipe gold is retrained with (``train_fn=``), or None.
        original_recipe: what trained the user's model: None (``recipe`` when it is a training function, else
            unknown), a registered recipe's name / a function / a Recipe (its full identity), or any other name.
        gold_given: the user gave their own gold model.
    """
    if original_recipe is None:
        original = (
            RecipeSource.of(recipe, assumed=True) if isinstance(recipe, TrainFunction) else RecipeSource.stated(None)
        )
    elif isinstance(original_recipe, str) and original_recipe.strip().lower() != "unknown":
        try:  # a registered recipe's name: its full identity; any other name: as stated
            original = RecipeSource.of(resolve_recipe(original_recipe))
        except KeyError:
            original = RecipeSource.stated(original_recipe)
    elif isinstance(original_recipe, (Recipe, TrainFunction)) or callable(original_recipe):
        original = RecipeSource.of(resolve_recipe(original_recipe))
    else:
        original = RecipeSource.stated(None)
    if recipe is not None:
        gold = RecipeSource.of(recipe)
    elif gold_given:
        gold = RecipeSource.user_file(what="user model")
    else:
        return {"original": original.to_dict(), "gold": None}, []
    warning = recipe_mismatch(original, gold)
    return {"original": original.to_dict(), "gold": gold.to_dict()}, [warning] if warning else []


__all__ = [
    "RecipeSource",
    "TrainData",
    "TrainFunction",
    "function_fingerprint",
    "recipe_mismatch",
    "recipe_sources",
    "register_recipe",
    "resolve_recipe",
    "run_train_function",
    "unregister_recipe",
]
