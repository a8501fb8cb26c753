"""`oblivio forget` shows the original model (before) beside the method (after), units in every header, and its
--json carries the original's metrics (issue 24 item 3). The oracle recomputes the original's accuracies from its
logits with plain torch."""

from __future__ import annotations

import json

import torch

from oblivio.cli import main
from oblivio.experiments import Experiment


def _acc(model, ds) -> float:
    with torch.no_grad():
        return float((model(ds.images).argmax(1) == ds.labels).float().mean())


def test_forget_prints_before_and_after_and_writes_the_original(capsys, tmp_path):
    store, out_json = str(tmp_path / "store"), tmp_path / "m.json"
    argv = ["forget", "--preset", "tiny", "--store", store, "--no-progress", "--method", "finetune"]
    argv += ["--forget", "class-subset:3:10", "--hparams", '{"epochs": 1}', "--gold", "--json", str(out_json)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("model"))
    for unit in ("ACC_test (%)", "ACC_Df (%)", "ACC_Dr (%)", "δ (points)", "time (s)"):
        assert unit in out, unit
    assert "ACC_test " not in header.replace("ACC_test (%)", "")  # no header without its unit
    names = [line.split("  ")[0].strip() for line in lines if line.startswith(("gold", "original", "finetune"))]
    assert names[:3] == ["gold reference (retrain)", "original (before)", "finetune (after)"]

    report = json.loads(out_json.read_text())
    exp = Experiment("tiny", store=store, progress=False)
    splits = exp.unlearning_splits("class-subset:3:10")
    original = exp.original().eval()
    o = report["original"]
    assert o["acc_forget"] == _acc(original, splits.forget)
    assert o["acc_test"] == _acc(original, splits.test) and o["acc_retain"] == _acc(original, splits.retain)
    assert o["delta_forget"] == abs(o["acc_forget"] - report["metrics"]["gold_acc_forget"])
    assert 0 <= o["sample_agreement"] <= 1 and report["metrics"]["original_acc_forget"] == o["acc_forget"]
    row = next(line for line in lines if line.startswith("original (before)"))
    assert f"{100 * o['acc_forget']:.2f}" in row
