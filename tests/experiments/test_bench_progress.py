"""`oblivio bench` says what a run will cost before it starts (cells, models to train vs stored, an estimate), its
progress lines carry an ETA, and `bench -h` is plain text (issue 24 item 3)."""

from __future__ import annotations

import json
import logging
import re

import pytest

from oblivio.cli import main
from oblivio.experiments.backends import eta_text, fmt_duration

METHODS = json.dumps([{"name": "finetune", "hparams": {"epochs": 1}}, {"name": "neggrad", "hparams": {"epochs": 1}}])


def _bench(tmp_path, classes: str) -> list[str]:
    argv = ["bench", "tmu-table1", "--preset", "tiny", "--classes", classes, "--methods", METHODS, "--no-plots"]
    argv += ["--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"), "--count", "30"]
    assert main(argv) == 0
    return argv


def test_bench_says_the_cost_first_and_gives_an_eta(tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="oblivio.runner")
    _bench(tmp_path, "0")
    out = capsys.readouterr().out
    first = out.splitlines()[:3]
    # 2 cells (2 methods x class 0); models: the original and class 0's gold model, none stored yet
    assert first[0] == "tmu-table1: 2 cells to run (0 finished already); 2 models needed: 0 in the store, 2 to train."
    assert re.match(r"estimate: about \d+ s one at a time \(2 models × 1 s \+ 2 cells × 4 s\)\.", first[1]), first
    assert first[2] == "from: models: preset tiny's reference (PRESET_COSTS); cells: preset tiny's reference."
    lines = [r.getMessage() for r in caplog.records if r.name == "oblivio.runner" and r.getMessage().startswith("[")]
    assert len(lines) == 2 and "[1/2]" in lines[0] and re.search(r"; ETA \d+ s \(\d+ s per cell so far\)$", lines[0])
    assert "[2/2]" in lines[1] and re.search(r"; done in \d+ s$", lines[1])

    # class 1 too: the original is in the store now, class 1's gold is not; the finished cells time the rest
    _bench(tmp_path, "0,1")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "tmu-table1: 2 cells to run (2 finished already); 2 models needed: 1 in the store, 1 to train."
    assert "median of 2 stored models" in out[2] and "median of 2 finished cells of this run" in out[2]


def test_eta_from_the_finished_cells():
    assert eta_text(60.0, 3, 12) == "ETA 3 min 00 s (20 s per cell so far)"
    assert eta_text(7300.0, 1, 2) == "ETA 2 h 01 min (2 h 01 min per cell so far)"  # minutes cut, not rounded
    assert fmt_duration(59.6) == "1 min 00 s" and fmt_duration(0) == "0 s"


def test_bench_help_is_plain_text(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "-h"])
    text = capsys.readouterr().out
    assert "``" not in text and "::" not in text and ":func:" not in text
    assert "oblivio bench NAME: run (or resume)" in text and "Example:\n" in text
    assert "benchmarks: forget-quality, study-004, tmu-cost" in text
