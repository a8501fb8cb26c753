"""Progress a person can see: fit() logs epoch, step, loss and ETA lines when no progress bar shows."""

from __future__ import annotations

import logging
import re

import torch
from torch import nn

from oblivio.data import ImageDataset, TensorLoader
from oblivio.training.loop import ProgressLog, fit


def _fit(progress: bool):
    torch.manual_seed(0)
    ds = ImageDataset(torch.rand(24, 1, 4, 4), torch.arange(24) % 2, ("a", "b"))
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    return fit(
        model,
        TensorLoader(ds, batch_size=8),
        epochs=2,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        progress=progress,
        desc="toy",
    )


def test_lines_when_the_bar_is_off(caplog, monkeypatch):
    monkeypatch.setenv("OBLIVIO_LOG_EVERY", "0")  # a line at every step
    monkeypatch.setenv("OBLIVIO_PROGRESS", "1")
    with caplog.at_level(logging.INFO, logger="oblivio.training"):
        res = _fit(progress=True)  # pytest's stderr is no terminal: tqdm hides the bar
    lines = [r.getMessage() for r in caplog.records if r.name == "oblivio.training" and r.levelno == logging.INFO]
    steps = [m for m in lines if "step" in m]
    assert len(steps) == 6  # 2 epochs x 3 batches
    pat = re.compile(r"^toy: epoch (\d)/2, step (\d)/3, loss (\d+\.\d{4}), \d\d:\d\d elapsed, ETA \d\d:\d\d$")
    parsed = [pat.match(m) for m in steps]
    assert all(parsed), steps
    assert [(int(p[1]), int(p[2])) for p in parsed] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    # the loss in the last line of an epoch is that epoch's mean loss
    assert float(parsed[2][3]) == round(res.history[0]["loss"], 4)
    assert lines[-1].startswith("toy: done, 2/2 epochs")


def test_quiet_when_progress_is_off(caplog, monkeypatch):
    monkeypatch.setenv("OBLIVIO_LOG_EVERY", "0")
    with caplog.at_level(logging.INFO, logger="oblivio.training"):
        _fit(progress=False)
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


def test_throttled_and_eta_from_pace(caplog):
    times = iter([0.0, 2.0, 4.0, 6.0, 6.5, 12.0, 13.0])
    plog = ProgressLog("x", epochs=2, start_epoch=0, enabled=True, every=5.0, clock=lambda: next(times))
    plog.active = True
    with caplog.at_level(logging.INFO, logger="oblivio.training"):
        logged = [plog.step(epoch=0, count=c, total=4, loss=1.0) for c in (1, 2, 3, 4)]
        logged.append(plog.step(epoch=1, count=1, total=4, loss=1.0))
    assert logged == [False, False, True, False, True]
    msgs = [r.getMessage() for r in caplog.records]
    # 3 steps in 6 s = 2 s a step; 1 + 4 steps left -> 10 s
    assert msgs[0].endswith("00:06 elapsed, ETA 00:10")
