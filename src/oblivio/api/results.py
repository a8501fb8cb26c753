"""What :func:`oblivio.unlearn` and :func:`oblivio.evaluate_unlearning` return: the report objects and their text
tables (accuracies in percent)."""

from __future__ import annotations

import logging
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from torch import nn

log = logging.getLogger("oblivio")


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
        return "  ".join(
            v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(vals, widths, strict=True))
        ).rstrip()

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
        recipes: which recipe trained the original and the gold model (``{"original": {...}, "gold": {...}}``,
            each ``name`` / ``kind`` / ``detail`` as :class:`oblivio.training.RecipeSource`; gold None without one).
        warnings: what the reader must know to trust the numbers (e.g. gold retrained with another recipe than
            the original's); also logged, and printed under the table.
        unchanged: the method returned the model with the same weights (a no-op: nothing was unlearned), as
            ``request apply`` reports a ``no-op`` run; also logged as a warning and shown in the table's title.
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
    recipes: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    unchanged: bool = False
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
        if self.unchanged:
            title += "\nNO CHANGE: the method returned the model with the same weights; nothing was unlearned"
        notes = []
        if self.recipes.get("gold"):  # which recipes trained the two models compared (with a gold model only)
            notes = [
                f"recipe of the {role} model: {r['name']}" + (f" ({r['detail']})" if r.get("detail") else "")
                for role, r in self.recipes.items()
                if r
            ]
        notes += [f"WARNING: {w}" for w in self.warnings]
        notes = [textwrap.fill(n, width=80, subsequent_indent="    ", break_on_hyphens=False) for n in notes]
        return "\n".join([title, _text_table(rows, header, digits=digits), *notes])

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
            "recipes": {k: dict(v) if v else None for k, v in self.recipes.items()},
            "warnings": list(self.warnings),
            "unchanged": self.unchanged,
            "data": dict(self.data),
        }


class UnlearningResult(NamedTuple):
    """``model, report = oblivio.unlearn(...)``."""

    model: nn.Module
    report: UnlearningReport
