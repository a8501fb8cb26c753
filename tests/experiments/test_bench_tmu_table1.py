"""The Table-1 benchmark wiring on the tiny preset: controls in the grid, per-sample metrics in every row, the
statistics tables in the report, and `oblivio report` rebuilding them from the JSONL rows alone."""

from __future__ import annotations

import pytest

from oblivio.experiments.bench import TMU_TABLE1_METHODS, BenchSettings, benchmark_cells, run_benchmark
from oblivio.experiments.report import write_report
from oblivio.experiments.runner import read_results


def test_table1_grid_has_both_controls_and_varies_every_seed():
    names = [m if isinstance(m, str) else m["name"] for m in TMU_TABLE1_METHODS]
    assert "gold" in names and "tmu.random-control" in names and "tmu" in names
    cells, _ = benchmark_cells("tmu-table1", "tiny", settings=BenchSettings(classes=[1, 2], seeds=3, count=20))
    assert len(cells) == 2 * 3 * len(TMU_TABLE1_METHODS)
    seeds = {c.seeds for c in cells}
    assert len(seeds) == 3
    for field in ("train", "gold", "request", "unlearn", "eval"):
        assert len({getattr(s, field) for s in seeds}) == 3, field


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("t1")
    settings = BenchSettings(classes=[9], seeds=2, count=20, methods=["finetune", "tmu", "tmu.random-control", "gold"])
    res = run_benchmark("tmu-table1", "tiny", out=root / "out", settings=settings, store=root / "store", plots=False)
    return root, res


def test_rows_carry_sample_agreement_and_the_fair_null(bench):
    _, res = bench
    assert not res.errors and len(res.rows) == 2 * 4
    for r in res.rows:
        m = r["metrics"]
        for k in ("sample_agreement", "sample_kappa", "original_sample_agreement", "activation_distance_l2"):
            assert k in m, k
        assert 0.0 <= m["sample_agreement"] <= 1.0
        if r["method"].startswith("tmu"):
            assert 0.0 <= m["label_accuracy_null"] <= 1.0 and "label_kappa" in m
    ctrl = [r for r in res.rows if r["method"] == "tmu.random-control"]
    tmu = [r for r in res.rows if r["method"] == "tmu"]
    for c, t in zip(ctrl, tmu, strict=True):  # same seeds: the control keeps TMU's count of hard samples
        assert c["seeds"] == t["seeds"] and c["info"]["predicted_hard"] == t["info"]["predicted_hard"]


def test_report_has_the_statistics_and_rebuilds_from_jsonl(bench, tmp_path):
    root, res = bench
    md = res.files.markdown.read_text()
    for title in (
        "mean [95% bootstrap CI]",
        "Paired comparisons: tmu vs each method",
        "fair null (random subset of the same size)",
        "original (no unlearning)",
        "Sample agreement",
    ):
        assert title in md, title
    assert "not significant" in md  # two pairs can never reach p < 0.05
    rows = read_results(res.results)
    again = write_report(
        rows, tmp_path, title="rebuilt", tables=["alignment-ci", "paired", "predictor-null"], plots=False
    )
    text = again.markdown.read_text()
    for t in res.tables:
        if t.key in ("alignment-ci", "paired", "predictor-null"):
            assert t.to_markdown() in text
