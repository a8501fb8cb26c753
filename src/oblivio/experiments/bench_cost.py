"""What a benchmark run will cost, said before it starts: cells to run, models to train against models already in the
checkpoint store, and a time estimate.

The estimate is ``models to train × seconds per model + cells to run × seconds per cell``, one at a time (with
``--workers N`` the same work is spread over N processes). Seconds per model come from the training times recorded
by the store's models of the same configuration (any seed, any forget set), else from the preset's reference cost
(:data:`PRESET_COSTS`); seconds per cell from this run's results file when earlier cells finished, else from the
preset's reference. Where neither exists, the estimate says it is unknown rather than guessing.

Example:
    >>> e = CostEstimate(cells=90, finished=0, models_needed=30, models_stored=10, model_seconds=1.0,
    ...                  model_source="preset", cell_seconds=3.5, cell_source="preset")
    >>> e.seconds
    335.0
    >>> print(e.describe().splitlines()[0])
    90 cells to run (0 finished already); 30 models needed: 10 in the store, 20 to train.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..utils import to_jsonable
from .backends import fmt_duration
from .config import ExperimentConfig, get_preset
from .grid import GOLD_METHOD, Cell
from .rows import read_results
from .store import CheckpointStore

PRESET_COSTS: dict[str, dict[str, Any]] = {
    "cpu": {
        "model_seconds": 66.2,
        "cell_seconds": 16.6,
        "source": "median of the 240 rows of docs/results/tmu-table1-full.jsonl (gold training 66.2 s, a cell "
        "16.6 s; 1 thread per worker, 2 shared cores)",
    },
    "tiny": {
        "model_seconds": 1.0,
        "cell_seconds": 3.5,
        "source": "oblivio bench tmu-table1 --preset tiny --classes 0,1 (2026-12-05: 5 models, median 1.0 s; 18 "
        "cells, median 3.5 s; 2 cores under load)",
    },
}
"""Reference costs of the presets on this project's 2-core machines: the fallback when nothing better is known."""


@dataclass
class CostEstimate:
    """Cells, models and the time estimate of a benchmark run (see the module docstring)."""

    cells: int
    finished: int
    models_needed: int
    models_stored: int
    model_seconds: float | None
    model_source: str
    cell_seconds: float | None
    cell_source: str

    @property
    def models_to_train(self) -> int:
        return self.models_needed - self.models_stored

    @property
    def seconds(self) -> float | None:
        """The estimate, one cell at a time (None when a part of it is unknown)."""
        if self.cell_seconds is None or (self.models_to_train and self.model_seconds is None):
            return None
        return self.models_to_train * (self.model_seconds or 0.0) + self.cells * self.cell_seconds

    def describe(self, *, workers: int = 1) -> str:
        """Two or three lines for the terminal."""
        lines = [
            f"{self.cells} cells to run ({self.finished} finished already); {self.models_needed} models needed: "
            f"{self.models_stored} in the store, {self.models_to_train} to train."
        ]
        if self.seconds is None:
            lines.append(
                "estimate: unknown (no stored model or finished cell of this configuration, and not a preset); "
                "the progress lines give an ETA once cells finish."
            )
            return "\n".join(lines)
        parts = []
        if self.models_to_train:
            parts.append(f"{self.models_to_train} models × {fmt_duration(self.model_seconds or 0)}")
        parts.append(f"{self.cells} cells × {fmt_duration(self.cell_seconds or 0)}")
        text = f"estimate: about {fmt_duration(self.seconds)} one at a time ({' + '.join(parts)})"
        if workers > 1:
            text += f", about {fmt_duration(self.seconds / min(workers, max(self.cells, 1)))} over {workers} workers"
        lines.append(text + ".")
        lines.append(f"from: models: {self.model_source}; cells: {self.cell_source}.")
        return "\n".join(lines)


def _preset_name(config: ExperimentConfig) -> str | None:
    for name in PRESET_COSTS:
        preset = get_preset(name)
        if config.replace(seed=preset.seed) == preset:
            return name
    return None


def _same_config(meta_key: Any, base: dict) -> bool:
    if not isinstance(meta_key, dict):
        return False
    return {k: v for k, v in meta_key.items() if k not in ("seed", "forget")} == base


def stored_model_seconds(store: CheckpointStore, config: ExperimentConfig) -> list[float]:
    """Training wall seconds recorded by the store's original and gold models of ``config`` (any seed, any forget
    set)."""
    base = {k: v for k, v in to_jsonable(config.model_key()).items() if k != "seed"}
    out = []
    for kind in ("original", "gold"):
        for meta in (store.root / kind).glob("*/meta.json"):
            try:
                data = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            seconds = data.get("train_seconds") if isinstance(data, dict) else None
            if isinstance(seconds, (int, float)) and seconds > 0 and _same_config(data.get("key"), base):
                out.append(float(seconds))
    return out


def estimate_cost(
    config: ExperimentConfig | str,
    cells: Sequence[Cell],
    *,
    results: str | os.PathLike,
    store: str | os.PathLike | None = None,
    data=None,
) -> CostEstimate:
    """The :class:`CostEstimate` of running ``cells`` (those without a finished row in ``results``)."""
    from .pipeline import Experiment

    config = get_preset(config)
    rows = read_results(Path(results)) if Path(results).is_file() else []
    done = {r["key"] for r in rows}
    by_key = {c.key(config): c for c in cells}
    keys = set(by_key)
    pending = [c for k, c in by_key.items() if k not in done]
    st = CheckpointStore(store)
    exp = Experiment(config, store=st, progress=False)
    if data is not None:
        exp.__dict__["data"] = data  # reuse a loaded dataset (Experiment.data is a cached property)
    base = config.model_key()
    needed: dict[str, dict] = {}
    splits: dict[tuple[str, int], str] = {}
    for c in pending:
        s = c.seeds
        key = {**base, "seed": s.train}
        needed.setdefault(json.dumps(to_jsonable(["original", key]), sort_keys=True), {"kind": "original", "key": key})
        if (c.scenario, s.request) not in splits:
            splits[(c.scenario, s.request)] = exp.forget_split(c.scenario, seed=s.request).key
        seeds = [s.gold] + ([s.unlearn] if c.method.name == GOLD_METHOD else [])
        for seed in seeds:
            key = {**base, "seed": seed, "forget": splits[(c.scenario, s.request)]}
            needed.setdefault(json.dumps(to_jsonable(["gold", key]), sort_keys=True), {"kind": "gold", "key": key})
    stored = sum(1 for m in needed.values() if st.exists(m["kind"], m["key"]))
    preset = _preset_name(config)
    model_s = stored_model_seconds(st, config)
    if model_s:
        model_seconds, model_source = statistics.median(model_s), f"median of {len(model_s)} stored models"
    elif preset:
        model_seconds = PRESET_COSTS[preset]["model_seconds"]
        model_source = f"preset {preset}'s reference (PRESET_COSTS)"
    else:
        model_seconds, model_source = None, "unknown"
    walls = [
        float(r["provenance"]["wall_seconds"])
        for r in rows
        if r.get("key") in keys and isinstance((r.get("provenance") or {}).get("wall_seconds"), (int, float))
    ]
    if walls:
        cell_seconds, cell_source = statistics.median(walls), f"median of {len(walls)} finished cells of this run"
    elif preset:
        cell_seconds, cell_source = PRESET_COSTS[preset]["cell_seconds"], f"preset {preset}'s reference"
    else:
        cell_seconds, cell_source = None, "unknown"
    return CostEstimate(
        cells=len(pending),
        finished=len(keys & done),
        models_needed=len(needed),
        models_stored=stored,
        model_seconds=model_seconds,
        model_source=model_source,
        cell_seconds=cell_seconds,
        cell_source=cell_source,
    )


__all__ = ["PRESET_COSTS", "CostEstimate", "estimate_cost", "stored_model_seconds"]
