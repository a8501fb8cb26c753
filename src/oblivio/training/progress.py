"""What a person sees while :func:`~oblivio.training.loop.fit` runs: a tqdm bar, or INFO lines with an ETA.

The bar shows on a terminal (or in Jupyter); elsewhere (logs, CI, ``OBLIVIO_PROGRESS=0``) :class:`ProgressLog`
writes a line every few seconds instead.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable

log = logging.getLogger("oblivio.training")


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    # None lets tqdm switch itself off when stderr is not a terminal (logs, CI), so files do not fill with bars;
    # ProgressLog then writes a line every few seconds instead. tqdm.auto picks the notebook widget in Jupyter,
    # where stderr is no terminal either: there the bar is forced on.
    if not enabled or os.environ.get("OBLIVIO_PROGRESS", "1") == "0":
        disable: bool | None = True
    else:
        notebook = any(c.__module__ == "tqdm.notebook" for c in tqdm.__mro__)
        disable = False if notebook else None
    return tqdm(total=total, desc=desc, leave=False, disable=disable, file=sys.stderr, dynamic_ncols=True)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60:02d}:{rest % 60:02d}"


class ProgressLog:
    """INFO log lines for a person when no progress bar shows (stderr is no terminal, or ``OBLIVIO_PROGRESS=0``).

    At most one line every ``every`` seconds (``$OBLIVIO_LOG_EVERY``, default 5): the label, epoch, step, mean loss
    so far, time elapsed and an ETA from the steps' pace (an upper bound when a method stops early). A fit that
    logged anything also logs one line when it ends. Fits run with ``progress=False`` stay quiet (DEBUG lines only).

    Example:
        >>> clock = iter([0.0, 6.0, 7.0, 12.0, 13.0]).__next__
        >>> plog = ProgressLog("train", epochs=2, start_epoch=0, enabled=True, every=5.0, clock=clock)
        >>> plog.active = True  # fit() sets it per epoch: True when the bar is hidden
        >>> plog.step(epoch=0, count=1, total=4, loss=0.5)  # 6 s after the start: a line
        True
        >>> plog.step(epoch=0, count=2, total=4, loss=0.5)  # 1 s later: none
        False
    """

    def __init__(
        self,
        desc: str,
        *,
        epochs: int,
        start_epoch: int,
        enabled: bool,
        every: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.desc, self.epochs, self.start_epoch, self.enabled = desc, epochs, start_epoch, enabled
        self.every = float(os.environ.get("OBLIVIO_LOG_EVERY", "5")) if every is None else float(every)
        self.clock = clock
        self.t0 = self.last = clock()
        self.steps_done = 0
        self.lines = 0
        self.active = False  # set per epoch from the bar: True when the bar is hidden

    def _eta(self, epoch: int, count: int, total: int | None, elapsed: float) -> str:
        if not self.steps_done:
            return "?"
        per_step = elapsed / self.steps_done
        if total:
            left = (total - count) + (self.epochs - epoch - 1) * total
            return _clock(per_step * max(left, 0))
        return "?"  # an iterable without a length: no pace to extrapolate within the epoch

    def step(self, *, epoch: int, count: int, total: int | None, loss: float) -> bool:
        """After each optimizer step; returns whether a line was logged."""
        self.steps_done += 1
        if not (self.enabled and self.active):
            return False
        now = self.clock()
        if now - self.last < self.every:
            return False
        self.last = now
        elapsed = now - self.t0
        steps = f"step {count}/{total}" if total else f"step {count}"
        log.info(
            "%s: epoch %d/%d, %s, loss %.4f, %s elapsed, ETA %s",
            self.desc,
            epoch + 1,
            self.epochs,
            steps,
            loss,
            _clock(elapsed),
            self._eta(epoch, count, total, elapsed),
        )
        self.lines += 1
        return True

    def end(self, *, epochs_run: int, logs: dict[str, float] | None) -> None:
        """Once, when the fit ends: a closing line when any line was logged before."""
        if self.lines and self.enabled:
            loss = (logs or {}).get("loss", float("nan"))
            log.info(
                "%s: done, %d/%d epochs, last epoch loss %.4f, %s",
                self.desc,
                epochs_run,
                self.epochs,
                loss,
                _clock(self.clock() - self.t0),
            )


__all__ = ["ProgressLog"]
