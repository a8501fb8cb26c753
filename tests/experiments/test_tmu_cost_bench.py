"""The tmu-cost benchmark end to end on the tiny preset: the JSON keys issue 10 asks for, cold vs warm, consistency."""

from __future__ import annotations

import json

import pytest


def test_tmu_cost_writes_the_requested_keys(tmp_path):
    from oblivio.experiments.bench import BenchSettings, run_benchmark

    out = tmp_path / "out"
    result = run_benchmark(
        "tmu-cost",
        "tiny",
        out=out,
        settings=BenchSettings(classes=[3], count=10),
        store=str(tmp_path / "store"),
        command="oblivio bench tmu-cost --preset tiny",
    )
    data = json.loads((out / "tmu-cost.json").read_text())
    for key in (
        "retrain_cpu_seconds",
        "cold_cpu_seconds",
        "warm_cpu_seconds",
        "cold_rte_cpu",
        "warm_rte_cpu",
        "stages",
        "command",
        "commit",
    ):
        assert key in data, key
    assert data["command"] == "oblivio bench tmu-cost --preset tiny"
    assert data["cold_rte_cpu"] == pytest.approx(data["cold_cpu_seconds"] / data["retrain_cpu_seconds"])
    row = data["per_class"][0]
    assert row["cold"]["hit"] is False and row["warm"]["hit"] is True
    assert "twin_models" in data["stages"] and "twin_models" not in row["warm"]["stages"]
    # the stages account for (nearly) all of a cold request's CPU time, and a warm request is cheaper
    assert sum(data["stages"].values()) <= data["cold_cpu_seconds"] * 1.05
    assert data["warm_cpu_seconds"] < data["cold_cpu_seconds"]
    assert data["retrain_backward_samples"] > 0 and 0 < data["cold_sample_pass_ratio"] < 10
    assert len(data["child_versions"]) == 2 and all(c["reuse_hit"] for c in data["child_versions"])
    assert result.main_table is not None and (out / "report.md").is_file()


def test_bad_before_file_fails_before_the_run(tmp_path):
    from oblivio.experiments.tmu_cost import run_tmu_cost

    bad = tmp_path / "before.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="tmu_cost_before"):
        run_tmu_cost("tiny", out=tmp_path / "out", before=bad, store=str(tmp_path / "store"))
    assert not (tmp_path / "store").exists()  # nothing was trained
