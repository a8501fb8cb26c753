"""The one-call entry: your model and data in, the unlearned model and a readable report out.

In the style of opacus' ``PrivacyEngine``: :func:`unlearn` takes the user's own ``nn.Module`` and torch data
(an :class:`~oblivio.data.ImageDataset`, a map-style ``Dataset`` of ``(image, label)``, a ``DataLoader`` over one,
or an ``(images, labels)`` pair of arrays), checks the model on one batch, runs a registered method and scores the
result before and after. :func:`evaluate_unlearning` scores any model the same way; :func:`enable_logging` turns
on the progress lines in one call.

Example:
    >>> import torch, oblivio
    >>> from torch import nn
    >>> from torch.utils.data import TensorDataset
    >>> torch.manual_seed(0) and None
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2))
    >>> data = TensorDataset(torch.rand(40, 1, 8, 8), torch.arange(40) % 2)
    >>> forget = torch.utils.data.Subset(data, range(4)); retain = torch.utils.data.Subset(data, range(4, 40))
    >>> new, report = oblivio.unlearn(net, forget=forget, retain=retain, method="finetune", epochs=1,
    ...                               progress=False)
    >>> type(new) is nn.Sequential, report.method, sorted(report.after)
    (True, 'finetune', ['acc_forget', 'acc_retain'])
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from ..data.base import DatasetError, ImageDataset
from .intake import _intake, check_disjoint
from .results import EvaluationResult, UnlearningReport, UnlearningResult

log = logging.getLogger("oblivio")

__all__ = [
    "EvaluationResult",
    "UnlearningReport",
    "UnlearningResult",
    "check_disjoint",
    "enable_logging",
    "evaluate_unlearning",
    "unlearn",
]

ROLES = ("forget", "retain", "holdout", "test")


# ---------------------------------------------------------------------------------------------- logging
def enable_logging(
    *, level: int | str = "INFO", stream: Any = None, fmt: str = "%(asctime)s %(name)s: %(message)s"
) -> logging.Logger:
    """Show oblivio's progress lines (epochs, loss, ETA, lock waits) on ``stream`` (default stderr).

    Idempotent: a second call changes the level and adds no second handler. Only the ``oblivio`` logger is
    touched; the root logger and other libraries' logging are left as they are.

    Args:
        level: ``"INFO"`` (progress every few seconds), ``"DEBUG"`` (every epoch) or a ``logging`` level.
        stream: where to write (default ``sys.stderr``).
        fmt: ``logging`` format of each line.

    Returns:
        The ``oblivio`` logger.

    Example:
        >>> import io, logging, oblivio
        >>> buf = io.StringIO()
        >>> logger = oblivio.enable_logging(level="INFO", stream=buf, fmt="%(message)s")
        >>> logging.getLogger("oblivio.training").info("epoch 1/3")
        >>> buf.getvalue()
        'epoch 1/3\\n'
        >>> oblivio.enable_logging(level="WARNING") is logger
        True
        >>> for h in list(logger.handlers): logger.removeHandler(h)  # back as it was
        >>> logger.propagate, _ = True, logger.setLevel(logging.NOTSET)
    """
    logger = logging.getLogger("oblivio")
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    handler = next((h for h in logger.handlers if getattr(h, "_oblivio_enable_logging", False)), None)
    if handler is not None and stream is not None and getattr(handler, "stream", None) is not stream:
        logger.removeHandler(handler)
        handler = None
    if handler is None:
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
        handler._oblivio_enable_logging = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    handler.setFormatter(logging.Formatter(fmt))
    logger.propagate = False  # one line per message even when the root logger also has a handler
    return logger


def _scores(model: nn.Module, sets: dict[str, ImageDataset], *, gold: nn.Module | None, seed: int) -> dict:
    from ..metrics.report import evaluate_unlearning as _evaluate
    from ..training.evaluate import accuracy

    out: dict[str, Any]
    if "test" in sets:
        out = _evaluate(model, forget=sets["forget"], retain=sets["retain"], test=sets["test"], gold=gold, seed=seed)
    else:
        out = {"acc_forget": accuracy(model, sets["forget"]), "acc_retain": accuracy(model, sets["retain"])}
        if gold is not None:
            from ..metrics.alignment import delta

            out["gold_acc_forget"] = accuracy(gold, sets["forget"])
            out["gold_acc_retain"] = accuracy(gold, sets["retain"])
            out["delta_forget"] = delta(out["acc_forget"], out["gold_acc_forget"])
    if "holdout" in sets:
        out["acc_holdout"] = accuracy(model, sets["holdout"])
        if gold is not None:
            out["gold_acc_holdout"] = accuracy(gold, sets["holdout"])
    return out


# ---------------------------------------------------------------------------------------------- the facade
def unlearn(
    model: nn.Module,
    *,
    forget: Any,
    retain: Any,
    holdout: Any = None,
    test: Any = None,
    gold: nn.Module | None = None,
    method: Any = "tmu",
    seed: int = 0,
    progress: bool = True,
    classes: Sequence[str] | None = None,
    ids: Mapping[str, Any] | None = None,
    inplace: bool = False,
    train_fn: Any = None,
    init_fn: Callable[[], nn.Module] | None = None,
    original_recipe: Any = None,
    stream: bool | str = "auto",
    memory_budget: int | str | None = None,
    num_workers: int | None = None,
    **hparams: Any,
) -> UnlearningResult:
    """Unlearn ``forget`` from your ``model``; returns ``(new_model, report)``.

    Args:
        model: your classifier, images ``[B, C, H, W]`` in [0, 1] -> logits ``[B, K]``. Methods that need
            penultimate features (TMU) adapt timm-, torchvision- and plain models themselves
            (:func:`oblivio.as_classifier`); the model is checked on one batch before any training.
        forget: ``D_f``, the samples to forget.
        retain: ``D_r``, the training samples to keep.
        holdout: unseen samples of the training distribution (TMU builds its twins from them; required by methods
            with ``needs_holdout``).
        test: optional evaluation data (never shown to the method): adds test accuracy and membership inference.
        gold: optional model retrained without ``forget`` (yours): adds alignment to it.
        train_fn: your training function (``train_fn(model, train_data, *, seed, **options) -> model``, see
            :func:`oblivio.training.register_recipe`) or the name of a registered one: the gold model is then
            retrained from scratch on ``retain`` with it (seeded by ``seed``), so that original and gold are trained
            the same way. ``model`` is taken to be trained by it unless ``original_recipe`` says otherwise.
        init_fn: with ``train_fn``: returns a freshly initialised model of your architecture (e.g. ``MyNet``, or a
            pretrained start). Default: a copy of ``model`` with every layer's ``reset_parameters()`` (refused, naming
            the parameter, when a parameter has none).
        original_recipe: the recipe that trained ``model`` (a name, a training function or an oblivio ``Recipe``);
            the report states it beside gold's and warns when gold was retrained another way. Default: ``train_fn``
            when given, else unknown.
        method: a registered method name (``oblivio.methods.list_methods()``, variants included) or an
            ``UnlearningMethod`` instance.
        seed: the unlearning seed (same seed, same model).
        progress: progress bars on a terminal, log lines every few seconds elsewhere (see :func:`enable_logging`).
        classes: class names (default: the data's ``classes`` attribute, else ``"0"`` .. ``"K-1"`` with ``K`` the
            model's output width).
        ids: optional sample ids per role, e.g. ``{"forget": f_ids, "retain": lambda i: 1000 + i}`` (see
            :func:`oblivio.data.as_image_dataset`). ``Subset`` indices are used as ids by default.
        inplace: modify ``model`` itself instead of a copy.
        stream: read the data lazily, batch by batch (``True``), into memory once (``False``), or ``"auto"``:
            streamed when the torch data, materialised as tensors, would exceed ``memory_budget``. Streamed data
            runs your ``Dataset``'s transform on every read (random augmentations are drawn anew each epoch) in
            ``num_workers`` loader processes; every method and metric works on it (docs/own-model-and-data.md).
        memory_budget: bytes (or ``"4GB"``) for ``"auto"``; default ``$OBLIVIO_MEMORY_BUDGET``, else a quarter of
            the machine's memory.
        num_workers: loader processes for streamed data (default: a ``DataLoader``'s own ``num_workers``, else 0).
            Results do not depend on it.
        **hparams: the method's hyper-parameters (unknown ones fail at once, naming the valid ones).

    ``forget`` / ``retain`` / ``holdout`` / ``test`` each accept an ``ImageDataset``, a map-style torch ``Dataset``
    yielding ``(image, label)``, a ``DataLoader`` over one, or an ``(images, labels)`` pair of arrays.

    Returns:
        :class:`UnlearningResult` ``(model, report)``: the unlearned model (your type, on your device) and an
        :class:`UnlearningReport` whose ``str()`` is a rounded table.

    Raises:
        oblivio.methods.UnlearningError: the model does not fit the method (the message says how to adapt), the
            forget set is empty, forget and retain share samples, holdout data is missing or lacks a class the
            method needs (TMU: every forget class; two-stage: every retain class), or ``train_fn``'s fresh model
            would keep trained weights (pass ``init_fn``).
        oblivio.data.DatasetError: the data cannot be read as images and labels, a dataset's transform is random
            (it would be frozen into memory), or the sets' image sizes differ.
        TypeError / KeyError: unknown hyper-parameter, method or recipe name; ``gold`` and ``train_fn`` both given.
    """
    from ..methods import UnlearningMethod, create_method
    from ..methods.retrain import retrain_gold
    from ..models.adapters import with_logits
    from ..training.functions import recipe_sources, resolve_recipe
    from ..utils import state_dict_hash

    algo = method if isinstance(method, UnlearningMethod) else create_method(str(method), **hparams)
    if isinstance(method, UnlearningMethod) and hparams:
        raise TypeError("pass hyper-parameters either to the method instance or to unlearn(), not both")
    if gold is not None and train_fn is not None:
        raise TypeError("pass either gold= (your gold model) or train_fn= (oblivio retrains gold with it), not both")
    recipe = resolve_recipe(train_fn) if train_fn is not None else None
    sets, positional, decision = _intake(
        model,
        {"forget": forget, "retain": retain, "holdout": holdout, "test": test},
        classes=classes,
        ids=ids or {},
        stream=stream,
        memory_budget=memory_budget,
        num_workers=num_workers,
    )
    check_disjoint(sets, positional=positional)  # forget images inside retain (or test) would be trained on
    algo._validate(model, sets["forget"], sets["retain"], sets.get("holdout"))  # every check before any run
    recipes, warnings = recipe_sources(recipe, original_recipe, gold_given=gold is not None)
    if recipe is not None:
        gold = retrain_gold(model, sets["retain"], recipe, init_fn=init_fn, seed=seed, progress=progress)
    parent_hash = state_dict_hash(model)  # before: inplace=True changes the model itself
    before = _scores(with_logits(model), sets, gold=None, seed=seed)
    t0 = time.perf_counter()
    log.info(
        "unlearning %d samples with %s (retain %d%s)",
        len(sets["forget"]),
        algo.name,
        len(sets["retain"]),
        f", holdout {len(sets['holdout'])}" if "holdout" in sets else "",
    )
    new = algo(
        model,
        forget=sets["forget"],
        retain=sets["retain"],
        holdout=sets.get("holdout"),
        seed=seed,
        progress=progress,
        inplace=inplace,
    )
    seconds = float(algo.info.get("seconds", time.perf_counter() - t0))
    unchanged = state_dict_hash(new) == parent_hash
    if unchanged:
        log.warning(
            "no change: %s returned the model with the same weights as before%s; nothing was unlearned "
            "(the report records unchanged=True)",
            algo.name,
            _why_unchanged(algo.info, len(sets["forget"])),
        )
    after = _scores(with_logits(new), sets, gold=with_logits(gold) if gold is not None else None, seed=seed)
    report = UnlearningReport(
        method=algo.name,
        hparams=algo.hparams(),
        seed=seed,
        seconds=seconds,
        sizes={r: len(ds) for r, ds in sets.items()},
        before=before,
        after=after,
        info=dict(algo.info),
        recipes=recipes,
        warnings=warnings,
        unchanged=unchanged,
        data=decision.as_dict(),
    )
    for w in warnings:
        log.warning("%s", w)
    log.info(
        "done in %.1f s: forget accuracy %.2f%% -> %.2f%%",
        seconds,
        100 * before["acc_forget"],
        100 * after["acc_forget"],
    )
    return UnlearningResult(new, report)


def _why_unchanged(info: Mapping[str, Any], n_forget: int) -> str:
    """`` (N of M forget samples predicted easy)`` when the method says so (TMU), as ``request apply`` prints."""
    return (
        f" ({info['predicted_easy']} of {n_forget} forget samples predicted easy)" if "predicted_easy" in info else ""
    )


def evaluate_unlearning(
    model: nn.Module,
    *,
    forget: Any,
    retain: Any,
    test: Any,
    gold: nn.Module | None = None,
    classes: Sequence[str] | None = None,
    ids: Mapping[str, Any] | None = None,
    stream: bool | str = "auto",
    memory_budget: int | str | None = None,
    num_workers: int | None = None,
    **kwargs: Any,
) -> EvaluationResult:
    """Score a model on forget / retain / test (and against ``gold``), with the same data intake as :func:`unlearn`.

    The keys are those of :func:`oblivio.metrics.report.evaluate_unlearning` (accuracies are fractions in [0, 1]);
    ``str()`` of the result is a rounded table in percent.

    Args:
        model: the (unlearned) model.
        forget: ``D_f``; retain: ``D_r``; test: ``D_test`` (any form :func:`unlearn` accepts).
        gold: optional gold model.
        classes: class names (default as in :func:`unlearn`).
        ids: optional sample ids per role.
        stream, memory_budget, num_workers: how the data is read, as in :func:`unlearn` (every metric streams).
        **kwargs: ``random_model``, ``mia``, ``seed``, ``batch_size`` of the metrics function, and its keyed
            metric groups: ``extras=[...]`` (e.g. ``"original"`` with ``original=``, ``"tta"``, ``"cost"`` with
            ``cost=`` / ``reference_cost=``; see :mod:`oblivio.metrics.extras`), the same single assembly point the
            CLI, the benchmark runner and the ledger use. ``groups`` on the result says which keys each group added.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        >>> x, y = torch.rand(60, 1, 4, 4), torch.arange(60) % 2
        >>> f, r, t = (x[:20], y[:20]), (x[20:40], y[20:40]), (x[40:], y[40:])
        >>> res = evaluate_unlearning(net, forget=f, retain=r, test=t, gold=net, mia=False)
        >>> res["delta_forget"]
        0.0
        >>> print(str(res).splitlines()[0].split())
        ['metric', 'model', 'gold', 'reference']
    """
    from ..metrics.report import evaluate_unlearning as _evaluate

    if test is None:
        raise DatasetError(
            "evaluate_unlearning needs test data (unseen images) for the test accuracy and the "
            "membership-inference metrics"
        )
    from ..models.adapters import with_logits

    sets, positional, _ = _intake(
        model,
        {"forget": forget, "retain": retain, "test": test},
        classes=classes,
        ids=ids or {},
        stream=stream,
        memory_budget=memory_budget,
        num_workers=num_workers,
    )
    check_disjoint(sets, positional=positional)
    evaluation = _evaluate(
        with_logits(model),
        forget=sets["forget"],
        retain=sets["retain"],
        test=sets["test"],
        gold=with_logits(gold) if gold is not None else None,
        **kwargs,
    )
    return EvaluationResult(evaluation, groups=evaluation.groups)
