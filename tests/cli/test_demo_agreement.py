"""The demo table shows sample agreement beside δ (issue 11), computed per sample against the gold model."""

from __future__ import annotations

import pytest
import torch


def test_demo_rows_show_sample_agreement(tmp_path):
    from oblivio.cli.demo import demo_rows
    from oblivio.experiments import Experiment
    from oblivio.training.evaluate import predict_logits

    exp = Experiment("tiny", store=tmp_path, device="cpu", progress=False)
    rows = demo_rows(exp, spec="class-subset:9:20", methods=["finetune"], progress=False)
    assert [r["model"] for r in rows] == ["gold reference (retrain)", "original (no unlearning)", "finetune"]
    assert rows[0]["agree"] == 100.0
    splits = exp.unlearning_splits("class-subset:9:20", seed=0)
    y = splits.forget.labels
    right_o = predict_logits(exp.original(), splits.forget).argmax(1) == y
    right_g = predict_logits(exp.gold(splits.split), splits.forget).argmax(1) == y
    assert rows[1]["agree"] == pytest.approx(100 * float((right_o == right_g).float().mean()))
    assert 0.0 <= rows[2]["agree"] <= 100.0 and isinstance(rows[2]["agree"], float)
    assert torch.is_tensor(y)
