"""The driver side of the benchmark runner: :class:`Runner` runs the pending cells of a grid in-process, in a local
process pool or on Ray, and appends their rows to the results file (see :mod:`oblivio.experiments.runner`)."""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Literal

from .cell import _cell_task, _init_worker, _prepare, _ray_entry, _threads_in_process
from .config import ExperimentConfig, get_preset
from .grid import GOLD_METHOD, ORIGINAL_METHOD, Cell, Grid
from .rows import append_row, read_results

log = logging.getLogger("oblivio.runner")

OnError = Literal["record", "raise"]


# ---------------------------------------------------------------------------------------------- backends
def _require_ray():
    try:
        import ray
    except ImportError as exc:
        raise ImportError("running on Ray needs the optional dependency: pip install 'oblivio[ray]'") from exc
    return ray


def _map_in_process(fn: Callable[[dict], dict], payloads: list[dict]) -> Iterator[tuple[int, dict]]:
    for i, p in enumerate(payloads):
        yield i, fn(p)


def _map_pool(
    pool: ProcessPoolExecutor, fn: Callable[[dict], dict], payloads: list[dict]
) -> Iterator[tuple[int, dict]]:
    futures = {pool.submit(fn, p): i for i, p in enumerate(payloads)}
    for fut in as_completed(futures):
        yield futures[fut], fut.result()


def _map_ray(
    fn_name: str, payloads: list[dict], *, threads: int | None, imports: Sequence[str], num_cpus: float, num_gpus: float
) -> Iterator[tuple[int, dict]]:
    ray = _require_ray()
    remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_calls=0)(_ray_entry)
    refs = {remote.remote(fn_name, p, threads, tuple(imports)): i for i, p in enumerate(payloads)}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            yield refs[ref], ray.get(ref)


# ---------------------------------------------------------------------------------------------- runner
class Runner:
    """Runs cells of a :class:`Grid` for one experiment config and appends result rows to a JSONL file.

    Args:
        config: an :class:`ExperimentConfig` or preset name (``"cpu"``, ``"tiny"``...).
        results: the JSONL results file (created or appended to; its finished cells are skipped).
        store: checkpoint store folder for original and gold models (None: the default store).
        workers: cells at a time in a local process pool; 1 runs them in this process.
        threads_per_worker: torch and BLAS threads per pool / Ray worker, and in this process while it runs cells
            in-process (default: CPU cores // workers, at least 1, for a pool or Ray; in-process, the caller's
            settings). Same seeds and same thread count give bit-identical metrics on every backend; the counts
            are recorded in each row's provenance.
        ray_address: run on Ray: ``"local"`` starts a local instance, anything else goes to ``ray.init(address=...)``.
            An already initialised Ray session is reused as is.
        ray_num_cpus: CPUs Ray reserves per cell (default ``threads_per_worker``).
        ray_num_gpus: GPUs Ray reserves per cell (e.g. 1, or 0.5 to share one).
        device: model device in every worker (None: CUDA when present).
        imports: modules every worker imports first (plugins that register methods with ``register_method``).
        tags: JSON-able fields copied into every row (``{"benchmark": ...}``).
        on_error: ``"record"`` writes an ``error`` row (not counted as finished, so a rerun retries it) and goes
            on; ``"raise"`` stops at the first failure.
    """

    def __init__(
        self,
        config: ExperimentConfig | str,
        *,
        results: str | os.PathLike,
        store: str | os.PathLike | None = None,
        workers: int = 1,
        threads_per_worker: int | None = None,
        ray_address: str | None = None,
        ray_num_cpus: float | None = None,
        ray_num_gpus: float = 0,
        device: str | None = None,
        imports: Sequence[str] = (),
        tags: Mapping[str, Any] | None = None,
        on_error: OnError = "record",
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if on_error not in ("record", "raise"):
            raise ValueError(f"on_error must be 'record' or 'raise', got {on_error!r}")
        self.config = get_preset(config)
        self.results = Path(results)
        self.store = str(store) if store is not None else None
        self.workers = workers
        self.threads = threads_per_worker or (
            max(1, (os.cpu_count() or 1) // workers) if (workers > 1 or ray_address) else None
        )
        self.ray_address = ray_address
        self.ray_num_cpus = ray_num_cpus if ray_num_cpus is not None else float(self.threads or 1)
        self.ray_num_gpus = ray_num_gpus
        self.device = device
        self.imports = tuple(imports)
        for name in self.imports:  # here too, before any cell key: a method's resolved hyper-parameters are in it
            importlib.import_module(name)
        self.tags = dict(tags or {})
        self.on_error = on_error
        self.new_rows: list[dict] = []
        self.errors: list[dict] = []

    @property
    def backend(self) -> str:
        return "ray" if self.ray_address else ("pool" if self.workers > 1 else "in-process")

    def finished_keys(self) -> set[str]:
        return {r["key"] for r in read_results(self.results)}

    def pending(self, cells: Iterable[Cell]) -> list[Cell]:
        """The cells without a finished row in the results file."""
        done = self.finished_keys()
        seen: set[str] = set()
        out = []
        for c in cells:
            k = c.key(self.config)
            if k not in done and k not in seen:
                seen.add(k)
                out.append(c)
        return out

    def run(self, grid: Grid | Sequence[Cell]) -> list[dict]:
        """Run the cells that are not finished yet; return the finished rows of ALL the grid's cells.

        Rows come back in grid order. Failed cells are in ``self.errors`` (and in the file, with ``status:
        "error"``), not in the returned list.
        """
        cells = grid.cells() if isinstance(grid, Grid) else list(grid)
        todo = self.pending(cells)
        log.info(
            "%d cells, %d finished already, %d to run (%s)", len(cells), len(cells) - len(todo), len(todo), self.backend
        )
        self.new_rows, self.errors = [], []
        if todo:
            self._execute(todo)
        by_key = {r["key"]: r for r in read_results(self.results)}
        return [by_key[k] for k in dict.fromkeys(c.key(self.config) for c in cells) if k in by_key]

    # -------------------------------------------------------------------------------------- internals
    def _payload(self, **kw: Any) -> dict:
        return {
            "config": self.config,
            "store": self.store,
            "device": self.device,
            "tags": self.tags,
            "on_error": self.on_error,
            **kw,
        }

    def _prepare_payloads(self, cells: Sequence[Cell]) -> list[dict]:
        jobs: dict[tuple, dict] = {}
        for c in cells:
            s = c.seeds
            jobs.setdefault(("original", s.train), self._payload(kind="original", seed=s.train))
            jobs.setdefault(
                ("gold", c.scenario, s.request, s.gold),
                self._payload(kind="gold", scenario=c.scenario, request=s.request, seed=s.gold),
            )
            if c.method.name == GOLD_METHOD:
                jobs.setdefault(
                    ("gold", c.scenario, s.request, s.unlearn),
                    self._payload(kind="gold", scenario=c.scenario, request=s.request, seed=s.unlearn),
                )
            if c.method.name == ORIGINAL_METHOD:
                jobs.setdefault(("original", s.unlearn), self._payload(kind="original", seed=s.unlearn))
        return list(jobs.values())

    @contextlib.contextmanager
    def _backend(self) -> Iterator[Callable[[str, list[dict]], Iterator[tuple[int, dict]]]]:
        """Yields ``map(fn_name, payloads) -> (index, result)`` in completion order, for the chosen backend."""
        fns = {"_cell": _cell_task, "_prepare": _prepare}
        if self.ray_address:
            ray = _require_ray()
            started = False
            if not ray.is_initialized():
                address = None if self.ray_address == "local" else self.ray_address
                ray.init(address=address, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
                started = True
            try:
                yield lambda name, payloads: _map_ray(
                    name,
                    payloads,
                    threads=self.threads,
                    imports=self.imports,
                    num_cpus=self.ray_num_cpus,
                    num_gpus=self.ray_num_gpus,
                )
            finally:
                if started:
                    ray.shutdown()
        elif self.workers > 1:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
            with ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(self.threads, self.imports),
            ) as pool:
                yield lambda name, payloads: _map_pool(pool, fns[name], payloads)
        else:  # the plugins were imported in __init__
            with _threads_in_process(self.threads):  # threads_per_worker holds in-process too (issue 9)
                yield lambda name, payloads: _map_in_process(fns[name], payloads)

    def _execute(self, cells: list[Cell]) -> None:
        with self._backend() as run_map:
            if self.backend != "in-process":
                # Train the shared original / gold models first, in parallel, so that cells do not queue on the
                # store's file locks behind one another.
                prepare = self._prepare_payloads(cells)
                t0 = time.perf_counter()
                for _ in run_map("_prepare", prepare):
                    pass
                log.info("original and gold models ready (%d) in %.1fs", len(prepare), time.perf_counter() - t0)
            payloads = [self._payload(cell=c) for c in cells]
            for n, (i, row) in enumerate(run_map("_cell", payloads), 1):
                row.setdefault("provenance", {})["backend"] = self.backend
                append_row(self.results, row)
                if row.get("status") == "ok":
                    self.new_rows.append(row)
                    m = row.get("metrics", {})
                    log.info(
                        "[%d/%d] %s: acc_forget %.3f (gold %.3f), acc_test %.3f, %.1fs",
                        n,
                        len(cells),
                        cells[i].describe(),
                        _num(m.get("acc_forget")),
                        _num(m.get("gold_acc_forget")),
                        _num(m.get("acc_test")),
                        _num(row["provenance"].get("wall_seconds")),
                    )
                else:
                    self.errors.append(row)
                    log.error("[%d/%d] %s failed: %s", n, len(cells), cells[i].describe(), row.get("error"))


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) else math.nan


def run_grid(
    config: ExperimentConfig | str, grid: Grid | Sequence[Cell], *, results: str | os.PathLike, **runner_kwargs: Any
) -> list[dict]:
    """``Runner(config, results=results, **runner_kwargs).run(grid)``."""
    return Runner(config, results=results, **runner_kwargs).run(grid)


__all__ = ["Runner", "run_grid"]
