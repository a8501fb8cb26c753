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
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from .data.base import DatasetError, ImageDataset
from .data.stream_intake import StreamDecision, _stream_convert, decide_streaming
from .data.torch_data import _convert
from .utils import model_device

log = logging.getLogger("oblivio")

__all__ = [
    "EvaluationResult",
    "UnlearningReport",
    "UnlearningResult",
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


# ---------------------------------------------------------------------------------------------- tables
def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _text_table(rows: list[list[Any]], header: list[str], *, digits: int = 2) -> str:
    cells = [[_fmt(v, digits) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]

    def line(vals):
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(vals, widths))).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in cells])


# Rows of the report: key, label, kind ("pct" = fraction shown in percent, "pp" = percentage points, "num")
_ROWS: tuple[tuple[str, str, str], ...] = (
    ("acc_forget", "accuracy on forget (%)", "pct"),
    ("acc_retain", "accuracy on retain (%)", "pct"),
    ("acc_holdout", "accuracy on holdout (%)", "pct"),
    ("acc_test", "accuracy on test (%)", "pct"),
    ("mia_loss_lr_acc", "MIA loss-LR accuracy (%)", "pct"),
    ("mia_salun_efficacy", "MIA SalUn efficacy (%)", "pct"),
)
_GOLD_ROWS: tuple[tuple[str, str, str], ...] = (
    ("delta_forget", "|forget acc - gold| (pp)", "pp"),
    ("sample_agreement", "agreement with gold on forget (%)", "pct"),
    ("activation_distance_l2", "activation distance L2", "num"),
    ("js_divergence", "JS divergence to gold", "num"),
)


def _show(value: Any, kind: str) -> Any:
    if not isinstance(value, (int, float)) or value is None:
        return value
    return 100.0 * float(value) if kind in ("pct", "pp") else float(value)


class EvaluationResult(dict):
    """The flat metrics dict of :func:`evaluate_unlearning` (accuracies as fractions in [0, 1]); ``str()`` is a
    rounded table in percent; ``groups`` maps each metric group to the keys it added (as
    :class:`oblivio.metrics.report.Evaluation`)."""

    def __init__(self, *args: Any, groups: Mapping[str, Sequence[str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.groups: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in (groups or {}).items()}

    def __str__(self) -> str:
        rows = []
        for key, label, kind in _ROWS:
            if key in self:
                rows.append([label, _show(self[key], kind), _show(self.get("gold_" + key), kind)])
        for key, label, kind in _GOLD_ROWS:
            if key in self:
                rows.append([label, _show(self[key], kind), None])
        header = ["metric", "model"] + (["gold reference"] if any(k.startswith("gold_") for k in self) else [])
        return _text_table([r[: len(header)] for r in rows], header)


@dataclass
class UnlearningReport:
    """What :func:`unlearn` measured: accuracies before and after (fractions), the method's own report, the cost.

    ``str(report)`` is a rounded table (accuracies in percent); :meth:`to_dict` gives everything as plain data.

    Attributes:
        method: registered method name.
        hparams: the method's hyper-parameters, as run.
        seed: the unlearning seed.
        seconds: wall time of the method (not of the evaluation).
        sizes: samples per data role.
        before: metrics of the original model (``acc_forget``, ``acc_retain``, ...; with ``test``, MIA too).
        after: the same metrics of the unlearned model, plus alignment to ``gold`` when one was given.
        info: what the method reports about its run (``method.info``).
        data: how the data was read: ``streamed`` (bool), ``estimated_bytes`` (the torch data as tensors),
            ``memory_budget``, ``requested`` (``stream=``); see :func:`oblivio.data.decide_streaming`.
    """

    method: str
    hparams: dict
    seed: int
    seconds: float
    sizes: dict[str, int]
    before: dict[str, float]
    after: dict[str, float]
    info: dict = field(default_factory=dict, repr=False)
    data: dict = field(default_factory=dict, repr=False)

    def table(self, *, digits: int = 2) -> str:
        """The report as a text table (fits 80 columns)."""
        gold = any(k.startswith("gold_") for k in self.after)
        header = ["metric", "before", "after"] + (["gold reference"] if gold else [])
        rows = []
        for key, label, kind in _ROWS:
            if key in self.after:
                row = [label, _show(self.before.get(key), kind), _show(self.after[key], kind)]
                rows.append(row + ([_show(self.after.get("gold_" + key), kind)] if gold else []))
        for key, label, kind in _GOLD_ROWS:
            if key in self.after:
                rows.append([label, None, _show(self.after[key], kind)] + ([None] if gold else []))
        sizes = ", ".join(f"{k} {v}" for k, v in self.sizes.items())
        title = f"oblivio.unlearn: {self.method} (seed {self.seed}) in {self.seconds:.1f} s; {sizes} samples"
        return title + "\n" + _text_table(rows, header, digits=digits)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready with :func:`oblivio.utils.to_jsonable`)."""
        return {
            "method": self.method,
            "hparams": dict(self.hparams),
            "seed": self.seed,
            "seconds": self.seconds,
            "sizes": dict(self.sizes),
            "before": dict(self.before),
            "after": dict(self.after),
            "info": dict(self.info),
            "data": dict(self.data),
        }


class UnlearningResult(NamedTuple):
    """``model, report = oblivio.unlearn(...)``."""

    model: nn.Module
    report: UnlearningReport


# ---------------------------------------------------------------------------------------------- data intake
def _output_width(model: nn.Module, x: torch.Tensor) -> int | None:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x.to(model_device(model)))
    except Exception:  # noqa: BLE001 - the method's contract check reports it with advice
        return None
    finally:
        model.train(was_training)
    return int(out.shape[-1]) if isinstance(out, torch.Tensor) and out.dim() == 2 else None


def _renamed(ds: Any, *, classes: Sequence[str] | None = None, ids: torch.Tensor | None = None) -> Any:
    """``ds`` (in memory or streamed) with other class names or sample ids."""
    if getattr(ds, "is_streaming", False):
        return ds.replace(classes=classes, ids=ids)
    return ImageDataset(
        ds.images,
        ds.labels,
        ds.classes if classes is None else classes,
        ds.name,
        ds.groups,
        ds.ids if ids is None else ids,
    )


def _intake(
    model: nn.Module,
    data: Mapping[str, Any],
    *,
    classes: Sequence[str] | None,
    ids: Mapping[str, Any],
    stream: bool | str = "auto",
    memory_budget: int | str | None = None,
    num_workers: int | None = None,
) -> tuple[dict[str, Any], StreamDecision]:
    """Every role as an ImageDataset (or, when streamed, a StreamingDataset) with one class list and ids that do not
    collide by accident, and the streaming decision (:func:`oblivio.data.decide_streaming`)."""
    decision = decide_streaming(data, stream=stream, memory_budget=memory_budget)
    converted: dict[str, Any] = {}
    positional: list[str] = []
    for role, value in data.items():
        if value is None:
            continue
        if decision.stream:
            ds, pos = _stream_convert(
                value, classes=classes, ids=ids.get(role), name=role, layout="auto", num_workers=num_workers
            )
        else:
            ds, pos = _convert(value, classes=classes, ids=ids.get(role), name=role, layout="auto")
        converted[role] = ds
        if pos:
            positional.append(role)
    if classes is None:
        first = converted["forget"]
        width = _output_width(model, first.float_images(torch.arange(min(2, len(first)))))
        k = max([len(ds.classes) for ds in converted.values()] + ([width] if width else []))
        named = [
            ds.classes
            for ds in converted.values()
            if len(ds.classes) == k and ds.classes != tuple(str(i) for i in range(k))
        ]
        names = named[0] if named else tuple(str(i) for i in range(k))
        converted = {r: ds if ds.classes == names else _renamed(ds, classes=names) for r, ds in converted.items()}
    if len(positional) > 1 or (positional and len(converted) > 1):
        # Positions 0..N-1 of different datasets are not identities: number those datasets one after another,
        # above every explicit id, so that forget and retain never share an id by accident.
        start = max(
            [
                int(ds.ids.max()) + 1
                for r, ds in converted.items()  # type: ignore[union-attr]
                if r not in positional and len(ds)
            ]
            + [0]
        )
        for role in positional:
            ds = converted[role]
            converted[role] = _renamed(ds, ids=torch.arange(start, start + len(ds)))
            start += len(ds)
        log.info(
            "sample ids of %s are positions (no Subset indices or ids= given): numbered one after another",
            ", ".join(positional),
        )
    (log.info if decision.stream else log.debug)("data: %s", decision.describe())
    return converted, decision


def _scores(model: nn.Module, sets: dict[str, ImageDataset], *, gold: nn.Module | None, seed: int) -> dict:
    from .metrics.report import evaluate_unlearning as _evaluate
    from .training.evaluate import accuracy

    if "test" in sets:
        out = _evaluate(model, forget=sets["forget"], retain=sets["retain"], test=sets["test"], gold=gold, seed=seed)
    else:
        out = {"acc_forget": accuracy(model, sets["forget"]), "acc_retain": accuracy(model, sets["retain"])}
        if gold is not None:
            from .metrics.alignment import delta

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
        gold: optional model retrained without ``forget``: adds alignment to it.
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
            forget set is empty, forget and retain share samples, or holdout data is missing.
        oblivio.data.DatasetError: the data cannot be read as images and labels.
        TypeError / KeyError: unknown hyper-parameter or method name.
    """
    from .methods import UnlearningMethod, create_method

    algo = method if isinstance(method, UnlearningMethod) else create_method(str(method), **hparams)
    if isinstance(method, UnlearningMethod) and hparams:
        raise TypeError("pass hyper-parameters either to the method instance or to unlearn(), not both")
    sets, decision = _intake(
        model,
        {"forget": forget, "retain": retain, "holdout": holdout, "test": test},
        classes=classes,
        ids=ids or {},
        stream=stream,
        memory_budget=memory_budget,
        num_workers=num_workers,
    )
    before = _scores(model, sets, gold=None, seed=seed)
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
    after = _scores(new, sets, gold=gold, seed=seed)
    report = UnlearningReport(
        method=algo.name,
        hparams=algo.hparams(),
        seed=seed,
        seconds=seconds,
        sizes={r: len(ds) for r, ds in sets.items()},
        before=before,
        after=after,
        info=dict(algo.info),
        data=decision.as_dict(),
    )
    log.info(
        "done in %.1f s: forget accuracy %.2f%% -> %.2f%%",
        seconds,
        100 * before["acc_forget"],
        100 * after["acc_forget"],
    )
    return UnlearningResult(new, report)


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
        >>> xy = (torch.rand(20, 1, 4, 4), torch.arange(20) % 2)
        >>> res = evaluate_unlearning(net, forget=xy, retain=xy, test=xy, gold=net, mia=False)
        >>> res["delta_forget"]
        0.0
        >>> print(str(res).splitlines()[0].split())
        ['metric', 'model', 'gold', 'reference']
    """
    from .metrics.report import evaluate_unlearning as _evaluate

    if test is None:
        raise DatasetError(
            "evaluate_unlearning needs test data (unseen images) for the test accuracy and the "
            "membership-inference metrics"
        )
    sets, _ = _intake(
        model,
        {"forget": forget, "retain": retain, "test": test},
        classes=classes,
        ids=ids or {},
        stream=stream,
        memory_budget=memory_budget,
        num_workers=num_workers,
    )
    evaluation = _evaluate(model, forget=sets["forget"], retain=sets["retain"], test=sets["test"], gold=gold, **kwargs)
    return EvaluationResult(evaluation, groups=evaluation.groups)
