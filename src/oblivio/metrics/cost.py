"""Cost of unlearning: wall-clock timing and the run-time efficiency ratio (RTE) against retraining.

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

    def __enter__(self) -> "Timer":
        self._start, self._stop = time.perf_counter(), None
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop = time.perf_counter()

    @property
    def seconds(self) -> float:
        if self._start is None:
            return 0.0
        end = self._stop if self._stop is not None else time.perf_counter()
        return end - self._start

    def __repr__(self) -> str:
        return f"Timer(seconds={self.seconds:.3f})"


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


__all__ = ["Timer", "rte"]
