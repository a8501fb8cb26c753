"""Many-seed forget quality end to end, the benchmark registry and the ``bench`` / ``report`` CLI (tiny preset)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import runner_plugin_methods as plugin

from oblivio.cli import main
from oblivio.experiments.bench import BenchSettings, benchmark_cells, list_benchmarks
from oblivio.experiments.forget_quality_run import (
    forget_quality_benchmark,
    forget_quality_cells,
    forget_quality_from_rows,
)
from oblivio.metrics.forget_quality import final_score, forget_quality, logit_scaled_confidence
from oblivio.training.evaluate import predict_logits

SCENARIO = "class-subset:4:15"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("fq") / "store"


def test_forget_quality_end_to_end(store, tmp_path):
    from oblivio.experiments import Experiment

    n = 3
    results = tmp_path / "fq.jsonl"
    res = forget_quality_benchmark(
        "tiny", [plugin.NOISE, "gold"], scenario=SCENARIO, n_models=n, results=results, store=store
    )
    noise, gold = res
    assert (noise.method, gold.method) == (plugin.NOISE, "gold")
    for r in res:
        assert r.n_models == n and r.epsilons.shape == (15,)
        assert 0.0 <= r.forget_quality <= 1.0 and np.isfinite(r.final_score)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) == 2 * n
    # one original model, N gold training seeds, N unlearning seeds
    assert {r["seeds"]["train"] for r in rows} == {0}
    assert sorted({r["seeds"]["gold"] for r in rows}) == [0, 1, 2]
    assert len({r["seeds"]["unlearn"] for r in rows if r["method"] == plugin.NOISE}) == n

    # recompute the noise method's F from the stored models, independently of the runner
    exp = Experiment("tiny", store=store, progress=False)
    split = exp.forget_split(SCENARIO, seed=0)
    forget = exp.unlearning_splits(split).forget
    r_scores = np.stack(
        [logit_scaled_confidence(predict_logits(exp.gold(split, seed=s), forget), forget.labels) for s in range(n)]
    )
    noise_rows = sorted((r for r in rows if r["method"] == plugin.NOISE), key=lambda r: r["seeds"]["unlearn"])
    u_scores = np.asarray([r["scores"]["forget"] for r in noise_rows])
    np.testing.assert_allclose(np.asarray([r["scores"]["gold_forget"] for r in noise_rows]), r_scores, rtol=1e-6)
    expected = forget_quality(u_scores, r_scores)
    assert noise.forget_quality == pytest.approx(expected.forget_quality)
    ra_u = [r["metrics"]["acc_retain"] for r in noise_rows]
    ta_u = [r["metrics"]["acc_test"] for r in noise_rows]
    ra_r = [r["metrics"]["gold_acc_retain"] for r in noise_rows]
    ta_r = [r["metrics"]["gold_acc_test"] for r in noise_rows]
    assert noise.final_score == pytest.approx(final_score(expected.forget_quality, ra_u, ra_r, ta_u, ta_r))

    # a rerun resumes: nothing recomputed, the same F
    again = forget_quality_benchmark("tiny", plugin.NOISE, scenario=SCENARIO, n_models=n, results=results, store=store)
    assert again.forget_quality == pytest.approx(noise.forget_quality)
    assert len(results.read_text().splitlines()) == 2 * n
    assert {r.method for r in forget_quality_from_rows(rows)} == {plugin.NOISE, "gold"}


def test_forget_quality_cells_validate():
    with pytest.raises(ValueError, match="at least 2"):
        forget_quality_cells(["gold"], scenario=SCENARIO, n_models=1)
    with pytest.raises(ValueError, match="overlap"):
        forget_quality_cells(["gold"], scenario=SCENARIO, n_models=4, gold_seed=0, unlearn_seed=2)
    cells = forget_quality_cells(["a", "b"], scenario=SCENARIO, n_models=4)
    assert len(cells) == 8 and all(c.options.scores and not c.options.mia for c in cells)


def test_benchmark_registry_builds_cells():
    assert {"tmu-table1", "tmu-table4", "tmu-figure3", "two-stage", "forget-quality"} <= set(list_benchmarks())
    cells, notes = benchmark_cells(
        "tmu-table1",
        "tiny",
        settings=BenchSettings(classes=[0, 1], seeds=2, methods=[plugin.NOISE, "gold", "no-such"], count=20),
    )
    assert len(cells) == 2 * 2 * 2
    assert {c.scenario for c in cells} == {"class-subset:0:20", "class-subset:1:20"}
    assert any("no-such" in n for n in notes)
    cells, _ = benchmark_cells("two-stage", "tiny", settings=BenchSettings(methods=["gold"]))
    assert [c.scenario for c in cells] == ["random:0.01", "random:0.02", "random:0.05", "random:0.1"]
    assert all(c.options.tta for c in cells)
    cells, notes = benchmark_cells(
        "forget-quality", "tiny", settings=BenchSettings(methods=["gold"], n_models=3, scenario=SCENARIO)
    )
    assert len(cells) == 3 and any("fewer than the 16" in n for n in notes)
    cells, _ = benchmark_cells("tmu-figure3", "tiny", settings=BenchSettings(classes=[0], methods=["gold"]))
    sizes = [int(c.scenario.rsplit(":", 1)[1]) for c in cells]
    assert sizes == sorted(set(sizes)) and len(sizes) >= 4
    with pytest.raises(ValueError, match="unknown classes"):
        benchmark_cells("tmu-table1", "tiny", settings=BenchSettings(classes=[42], methods=["gold"]))
    with pytest.raises(KeyError, match="unknown benchmark"):
        benchmark_cells("nope", "tiny")


def test_bench_and_report_cli(store, tmp_path, capsys):
    out = tmp_path / "bench"
    argv = [
        "bench",
        "tmu-table1",
        "--preset",
        "tiny",
        "--classes",
        "3",
        "--count",
        "20",
        "--methods",
        f"{plugin.NOISE},gold",
        "--store",
        str(store),
        "--out",
        str(out),
        "--import",
        plugin.__name__,
        "--no-progress",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert (
        "TMU Table 1" in printed
        and "gold reference ACC_Df (%)" in printed
        and "reproduce: oblivio bench tmu-table1" in printed
    )
    assert (out / "results.jsonl").is_file() and (out / "report.md").is_file() and (out / "report.html").is_file()
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["tags"]["benchmark"] == "tmu-table1" for r in rows)
    md = (out / "report.md").read_text()
    assert "TMU Table 1" in md and "TMU Table 3" in md and "Reproduce: oblivio bench tmu-table1" in md

    assert main(["report", str(out / "results.jsonl"), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    assert "Summary over all scenarios and seeds" in capsys.readouterr().out
    assert (tmp_path / "rep" / "report.html").is_file()

    assert main(["bench", "--list"]) == 0
    assert "forget-quality" in capsys.readouterr().out
    assert main(["bench", "no-such-bench", "--preset", "tiny"]) == 2
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 2
