"""Forget requests as data: the spec dataclasses, their CLI strings (``class-subset:3:100``...) and the error every
invalid request raises. See :mod:`oblivio.scenarios` for the table of forms."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

from ..utils import indices_hash

ATTRIBUTE_POWER = 4.0
"""Default exponent of the attribute-weighted group request: ``w = (1 - a)^4`` toward the low end."""
ATTRIBUTE_RULE = "power"
"""Name of the rule that turns a group attribute into draw weights (recorded with the request's ids)."""


class ScenarioError(ValueError):
    """A forget request cannot be served as asked."""

    __module__ = "oblivio.scenarios"  # its public home: tracebacks and doctests name oblivio.scenarios.ScenarioError


_ID_TEXT = re.compile(r"[0-9]+")  # re's [0-9] is the ten ASCII digits (unlike \d or str.isdigit, any script's)
_ASCII_SPACE = " \t\r\n\v\f"
ID_RULE = "write it with the ASCII digits 0-9 only (no sign, no '_', no other scripts' digits)"
"""The one rule for ids (and counts, seeds) given as text, everywhere: ``--ids``, id files, ``group:``, request ids."""


def is_id_text(text: str) -> bool:
    """Whether ``text`` is an id written as the rule says: ASCII digits, optionally surrounded by ASCII spaces.

    Example:
        >>> [is_id_text(t) for t in ["12", " 7 ", "１２", "٣٤", "1_0", "+11", "-0", "3.0"]]
        [True, True, False, False, False, False, False, False]
    """
    return bool(_ID_TEXT.fullmatch(text.strip(_ASCII_SPACE)))


def parse_id_text(text: str, *, what: str = "sample id") -> int:
    """An id (or a count) from text: ASCII digits only, optionally surrounded by ASCII spaces.

    Python's ``int()`` also reads full-width digits (``１２``), other scripts' digits (``٣٤``), ``1_0``,
    ``+11`` and ``-0``; a deletion request must not be guessed at, so every id given as text goes through this rule.

    Raises:
        ScenarioError: anything else, naming the text and the rule.

    Example:
        >>> parse_id_text(" 12 ")
        12
        >>> parse_id_text("1_0")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        oblivio.scenarios.ScenarioError: '1_0' is not a sample id: write it with the ASCII digits 0-9 only (...)
    """
    if not isinstance(text, str) or not is_id_text(text):
        shown = text.strip(_ASCII_SPACE)[:40] if isinstance(text, str) else text
        raise ScenarioError(f"{shown!r} is not a {what}: {ID_RULE}")
    return int(text.strip(_ASCII_SPACE))


@dataclass(frozen=True)
class ClassSubset:
    """``count`` random training samples of class ``cls`` (a class index or name). TMU protocol: count = 100."""

    cls: int | str
    count: int = 100
    kind: str = field(default="class-subset", init=False)


@dataclass(frozen=True)
class WholeClass:
    """Every training sample of class ``cls``."""

    cls: int | str
    kind: str = field(default="class", init=False)


@dataclass(frozen=True)
class RandomSamples:
    """A fraction (``0 < amount < 1``) or a count (``amount >= 1``) of training samples, across all classes."""

    amount: float = 0.1
    kind: str = field(default="random", init=False)


@dataclass(frozen=True)
class Groups:
    """All samples of the given ``groups`` ids, or of a random ``fraction`` of the groups.

    ``weights`` (optional, with ``fraction``): one non-negative weight per group, in the order of the sorted group
    ids; groups are drawn with probability proportional to it, which makes the request non-IID (as in the 004
    study's deletion biased toward young identities).

    ``toward`` (optional, with ``fraction``, instead of ``weights``): ``"low"`` or ``"high"``: weights from the
    dataset's group attribute ``a`` in [0, 1] (``info["group_attributes"]``, the 004 study's age), by the rule
    ``"power"``: ``w = (1 - a)^power`` toward the low end, ``w = a^power`` toward the high end. CLI:
    ``group-frac:0.02:low`` or ``group-frac:0.02:low:4``.

    Groups are drawn without replacement by successive weighted draws (each draw proportional to the weights of the
    groups not yet drawn: numpy ``Generator.choice(replace=False, p=...)``); every sample of a drawn group is
    forgotten, so a group is never split between ``D_f`` and ``D_r``.
    """

    groups: tuple[int, ...] = ()
    fraction: float | None = None
    weights: tuple[float, ...] | None = None
    kind: str = field(default="group", init=False)
    toward: str | None = None
    power: float = ATTRIBUTE_POWER


@dataclass(frozen=True)
class IndicesFile:
    """Sample ids from a file: one per line (``.txt``), a JSON list, a ``.npy`` array, or a CSV's first column."""

    path: str
    kind: str = field(default="indices", init=False)


@dataclass(frozen=True)
class Indices:
    """Sample ids given directly (the Python-API form of a deletion request)."""

    ids: tuple[int, ...]
    kind: str = field(default="ids", init=False)


ScenarioSpec = ClassSubset | WholeClass | RandomSamples | Groups | IndicesFile | Indices


def parse_scenario(text: str) -> ScenarioSpec:
    """Parse the CLI form (``class-subset:3:100``, ``class:Shirt``, ``random:0.1``, ``group:1,2``,
    ``group-frac:0.02``, ``indices:path.txt``)."""
    kind, _, rest = text.strip().partition(":")
    kind = kind.lower().replace("_", "-")
    parts = rest.split(":") if rest else []
    try:
        if kind == "class-subset":
            if not 1 <= len(parts) <= 2:
                raise ValueError
            count = parse_id_text(parts[1], what="count") if len(parts) == 2 else 100
            return ClassSubset(_class_token(parts[0]), count)
        if kind == "class":
            if len(parts) != 1:
                raise ValueError
            return WholeClass(_class_token(parts[0]))
        if kind == "random":
            if len(parts) != 1:
                raise ValueError
            amount = _ascii_number(parts[0], what="random forget amount", finite="a finite fraction or count")
            return RandomSamples(amount)
        if kind == "group":
            return Groups(groups=tuple(parse_id_text(g, what="group id") for g in parts[0].split(",") if g.strip()))
        if kind == "group-frac":
            if not 1 <= len(parts) <= 3:
                raise ValueError
            fraction = _ascii_number(parts[0], what="group fraction", finite="a finite number in (0, 1)")
            if len(parts) == 1:
                return Groups(fraction=fraction)
            toward = parts[1].strip().lower()
            if toward not in ("low", "high"):
                raise ScenarioError(
                    f"group-frac weighting must be 'low' or 'high' (toward that end of the group attribute), "
                    f"got {parts[1]!r}; e.g. group-frac:0.02:low"
                )
            power = (
                _ascii_number(parts[2], what="group-frac weighting power", finite="a positive number")
                if len(parts) == 3
                else ATTRIBUTE_POWER
            )
            if not power > 0:
                raise ScenarioError(f"group-frac weighting power must be a positive number, got {parts[2]!r}")
            return Groups(fraction=fraction, toward=toward, power=power)
        if kind == "indices":
            return IndicesFile(rest)
    except ScenarioError:
        raise
    except (ValueError, IndexError):
        raise ScenarioError(f"cannot parse scenario {text!r}; {_FORMS}") from None
    raise ScenarioError(f"unknown scenario kind {kind!r}; {_FORMS}")


_FORMS = (
    "valid forms: class-subset:CLASS[:COUNT], class:CLASS, random:FRACTION_OR_COUNT, group:ID[,ID...], "
    "group-frac:FRACTION[:low|high[:POWER]], indices:FILE"
)


_ASCII_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _ascii_number(text: str, *, what: str, finite: str) -> float:
    """A number written with ASCII digits (``0.1``, ``10``, ``1e-2``); Python's ``float`` also reads ``１０``,
    ``1_0`` and ``٣``, which the id rule refuses, so amounts refuse them too.

    Raises:
        ScenarioError: a number in other digits or with ``_``, or not finite (``inf``, ``nan``, ``1e999``).
        ValueError: not a number at all.
    """
    token = text.strip()
    if not _ASCII_NUMBER.fullmatch(token):
        value = float(token)  # not a number at all: ValueError, reported as a scenario that cannot be parsed
        if not math.isfinite(value):
            raise ScenarioError(f"{what} must be {finite}, got {text!r}")
        raise ScenarioError(
            f"{what} must be a number written with the ASCII digits 0-9 (e.g. 0.1 or 100), got {text!r}; no '_', "
            "no other scripts' digits"
        )
    value = float(token)
    if not math.isfinite(value):
        raise ScenarioError(f"{what} must be {finite}, got {text!r}")
    return value


def _class_token(tok: str) -> int | str:
    """A class index (ASCII digits) or a class name (anything else, e.g. ``Shirt``)."""
    tok = tok.strip()
    return int(tok) if is_id_text(tok) else tok


def spec_to_string(spec: ScenarioSpec) -> str:
    """The CLI form of a spec (inverse of :func:`parse_scenario`)."""
    if isinstance(spec, ClassSubset):
        return f"class-subset:{spec.cls}:{spec.count}"
    if isinstance(spec, WholeClass):
        return f"class:{spec.cls}"
    if isinstance(spec, RandomSamples):
        return f"random:{spec.amount:g}"
    if isinstance(spec, Groups):
        if spec.fraction is None:
            return "group:" + ",".join(map(str, spec.groups))
        if spec.toward is not None:
            return f"group-frac:{spec.fraction:g}:{spec.toward}:{spec.power:g}"
        return f"group-frac:{spec.fraction:g}"
    if isinstance(spec, IndicesFile):
        return f"indices:{spec.path}"
    if isinstance(spec, Indices):
        return f"ids:{len(spec.ids)}:{indices_hash(spec.ids)}"
    raise ScenarioError(f"not a scenario spec: {spec!r}")


def spec_to_dict(spec: ScenarioSpec) -> dict:
    d = asdict(spec)
    d["kind"] = spec.kind
    return d


__all__ = [
    "ID_RULE",
    "ClassSubset",
    "Groups",
    "Indices",
    "IndicesFile",
    "RandomSamples",
    "ScenarioError",
    "ScenarioSpec",
    "WholeClass",
    "is_id_text",
    "parse_id_text",
    "parse_scenario",
    "spec_to_dict",
    "spec_to_string",
]
