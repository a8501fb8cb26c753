"""Cost of unlearning: wall-clock and CPU timing, sample-passes, and the run-time efficiency ratio (RTE).

Wall seconds depend on what else runs on the machine; CPU seconds (:func:`time.process_time`, all threads of the
process) much less; sample-passes (images through a forward, forwards with autograd on) not at all. Report RTE on
CPU seconds and the sample-pass ratio next to the wall-clock RTE.

Example:
    >>> with Timer() as t:
    ...     _ = sum(range(1000))
    >>> t.seconds >= 0.0
    True
    >>> rte(30.0, 600.0)
    0.05
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from ..training.loop import SamplePasses, count_sample_passes


class Timer:
    """Context manager measuring wall-clock seconds with :func:`time.perf_counter`.

    ``seconds`` is the elapsed time so far while running and the final time after the block.

    Example:
        >>> timer = Timer()
        >>> with timer:
        ...     pass
        >>> timer.seconds < 1.0
        True
    """

    def __init__(self) -> None:
        self._start: float | None = None
        self._stop: float | None = None

    def __enter__(self) -> Timer:
        self._start, self._stop = time.perf_counter(), None
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop = time.perf_counter()

    @property
    def seconds(self) -> float:
        if self._start is None:
            return 0.0
        end = self._stop if self._stop is not None else time.perf_counter()
        return end - self._start

    def __repr__(self) -> str:
        return f"Timer(seconds={self.seconds:.3f})"


class CostMeter:
    """Context manager measuring wall seconds, CPU seconds (all threads) and sample-passes of a block.

    Example:
        >>> with CostMeter() as cost:
        ...     _ = sum(range(1000))
        >>> sorted(cost.as_dict())
        ['backward_samples', 'cpu_seconds', 'forward_samples', 'wall_seconds']
    """

    def __init__(self) -> None:
        self._t0 = self._c0 = 0.0
        self.wall_seconds = self.cpu_seconds = 0.0
        self.passes = SamplePasses()
        self._cm: Any = None
        self._running = False

    def __enter__(self) -> CostMeter:
        self._cm = count_sample_passes()
        self.passes = self._cm.__enter__()
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        self._running = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.wall_seconds = time.perf_counter() - self._t0
        self.cpu_seconds = time.process_time() - self._c0
        self._running = False
        self._cm.__exit__(exc_type, exc, tb)

    def as_dict(self) -> dict[str, float]:
        """``wall_seconds``, ``cpu_seconds``, ``forward_samples``, ``backward_samples`` (so far while running)."""
        wall = time.perf_counter() - self._t0 if self._running else self.wall_seconds
        cpu = time.process_time() - self._c0 if self._running else self.cpu_seconds
        return {"wall_seconds": wall, "cpu_seconds": cpu, **self.passes.as_dict()}


def sample_passes_total(cost: dict, *, backward_weight: float = 2.0) -> float:
    """Forward-equivalent sample-passes: ``forward + backward_weight · backward`` (a backward costs about two
    forwards).

    Example:
        >>> sample_passes_total({"forward_samples": 10, "backward_samples": 4})
        18.0
    """
    return float(cost.get("forward_samples", 0)) + backward_weight * float(cost.get("backward_samples", 0))


def rte(method_seconds: float, retrain_seconds: float) -> float:
    """Run-time efficiency: ``method_seconds / retrain_seconds`` (below 1 = cheaper than retraining).

    Example:
        >>> rte(5.0, 50.0)
        0.1
    """
    if retrain_seconds <= 0:
        raise ValueError(f"retrain_seconds must be positive, got {retrain_seconds}")
    if method_seconds < 0:
        raise ValueError(f"method_seconds must be non-negative, got {method_seconds}")
    return float(method_seconds) / float(retrain_seconds)


__all__ = ["CostMeter", "Timer", "rte", "sample_passes_total"]
