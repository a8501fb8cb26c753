"""The data intake of :func:`oblivio.unlearn` / :func:`oblivio.evaluate_unlearning`: every role as an in-memory or
streamed dataset with one class list and non-colliding ids, the one-batch model check first, and the refusal of a
sample in two roles."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..data.base import DatasetError, ImageDataset
from ..data.stream_intake import StreamDecision, _stream_convert, decide_streaming
from ..data.torch_data import _convert
from ..utils import model_device

log = logging.getLogger("oblivio")


# ---------------------------------------------------------------------------------------------- data intake
def _probe(model: nn.Module, data: ImageDataset) -> int:
    """The one-batch model check, before anything else touches the model: the logits width.

    Raises:
        UnlearningError: meta-device weights, a forward that fails or returns no logits (see
            :func:`oblivio.models.adapters.logits_of`), a wrong output shape.
    """
    from ..methods.base import UnlearningError
    from ..models.adapters import ContractError, check_classifier, check_materialised

    try:
        check_materialised(model, who="oblivio")
        x = data.float_images(torch.arange(min(2, len(data)))).to(model_device(model))
        return check_classifier(model, x, num_classes=None, who="oblivio").width
    except ContractError as exc:
        raise UnlearningError(str(exc)) from exc


def _renamed(ds: Any, *, classes: Sequence[str] | None = None, ids: torch.Tensor | None = None) -> Any:
    """``ds`` (in memory or streamed) with other class names or sample ids."""
    if getattr(ds, "is_streaming", False):
        return ds.replace(classes=classes, ids=ids)
    return ImageDataset(
        ds.images,
        ds.labels,
        ds.classes if classes is None else tuple(classes),
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
    required: Sequence[str] = ("forget", "retain"),
    stream: bool | str = "auto",
    memory_budget: int | str | None = None,
    num_workers: int | None = None,
) -> tuple[dict[str, Any], set[str], StreamDecision]:
    """Every role as an ImageDataset (or, when streamed, a StreamingDataset) with one class list and ids that do not
    collide by accident; the roles whose ids are mere positions (no ``Subset`` indices or ``ids=``); and the
    streaming decision (:func:`oblivio.data.decide_streaming`). The model is checked on one batch of ``forget``
    before anything else runs it; more classes in the data than the model has outputs is refused."""
    from ..methods.base import UnlearningError

    missing = [r for r in required if data.get(r) is None]
    if missing:
        raise UnlearningError(
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} None: pass the samples "
            "(an ImageDataset, a torch Dataset of (image, label), a DataLoader over one, or (images, labels) arrays)"
        )
    decision = decide_streaming(data, stream=stream, memory_budget=memory_budget)
    converted: dict[str, Any] = {}
    positional: list[str] = []
    for role, value in data.items():
        if value is None:
            continue
        ds: Any
        if decision.stream:
            ds, pos = _stream_convert(
                value, classes=classes, ids=ids.get(role), name=role, layout="auto", num_workers=num_workers
            )
        else:
            ds, pos = _convert(value, classes=classes, ids=ids.get(role), name=role, layout="auto")
        converted[role] = ds
        if pos:
            positional.append(role)
    first = converted["forget"] if len(converted.get("forget", ())) else next(iter(converted.values()))
    width = _probe(model, first)
    k = max(ds.num_classes for ds in converted.values())
    if width < k:
        raise UnlearningError(
            f"oblivio: the model has {width} outputs but the data has {k} classes"
            f"{' (classes=)' if classes is not None else ''}; give a model with one output per class"
        )
    if classes is None:
        k = max(k, width)
        named = [
            ds.classes
            for ds in converted.values()
            if len(ds.classes) == k and ds.classes != tuple(str(i) for i in range(k))
        ]
        names = named[0] if named else tuple(str(i) for i in range(k))
        converted = {r: ds if ds.classes == names else _renamed(ds, classes=names) for r, ds in converted.items()}
    first = converted["forget"]
    for role, ds in converted.items():  # one image size: a 32x32 holdout beside 28x28 training images is refused
        if len(ds) and len(first) and ds.image_shape != first.image_shape:
            size = "x".join(map(str, ds.image_shape))
            want = "x".join(map(str, first.image_shape))
            raise DatasetError(
                f"{role} images are {size} (channels x height x width) but the forget images are {want}: every set "
                f"must hold images of the training size; resize the {role} data to {want} in its transform"
            )
    if len(positional) > 1 or (positional and len(converted) > 1):
        # Positions 0..N-1 of different datasets are not identities: number those datasets one after another,
        # above every explicit id, so that forget and retain never share an id by accident.
        start = max([int(ds.ids.max()) + 1 for r, ds in converted.items() if r not in positional and len(ds)] + [0])
        for role in positional:
            ds = converted[role]
            converted[role] = _renamed(ds, ids=torch.arange(start, start + len(ds)))
            start += len(ds)
        log.info(
            "sample ids of %s are positions (no Subset indices or ids= given): numbered one after another",
            ", ".join(positional),
        )
    (log.info if decision.stream else log.debug)("data: %s", decision.describe())
    return converted, set(positional), decision


# ---------------------------------------------------------------------------------------------- disjoint roles
def check_disjoint(sets: Mapping[str, ImageDataset], *, positional: set[str] | frozenset[str] = frozenset()) -> None:
    """Refuse samples that are in two roles at once, with their count (see :func:`oblivio.data.overlap.shared`):
    by sample id between ``forget`` and ``retain`` where both carry ids, by image content everywhere else.

    Raises:
        UnlearningError: naming the two roles, the count and the fix.
    """
    from ..data.overlap import shared
    from ..methods.base import UnlearningError

    for a, b, n, what in shared(sets, positional=positional):
        fix = (
            "remove them from retain, e.g. retain=Subset(train, [i for i in range(len(train)) if i not in "
            "set(forget_ids)])"
            if b == "retain"
            else f"remove them from {b}"
        )
        raise UnlearningError(
            f"{a} and {b} share {n} {what}: a sample belongs to one role only (forget, retain, holdout or test); {fix}"
        )
