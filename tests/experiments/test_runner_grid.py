"""The grid runner on the tiny preset (sklearn digits) with a cheap test method: grid, seeds, rows, resume, pool."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import runner_plugin_methods as plugin

from oblivio.experiments.runner import (
    EVAL_SEED_OFFSET,
    UNLEARN_SEED_OFFSET,
    Cell,
    EvalOptions,
    Grid,
    MethodSpec,
    Runner,
    Seeds,
    read_results,
)

SCENARIOS = ["class-subset:1:20", "class-subset:2:20"]


def _calls(path: Path) -> list[tuple[int, int]]:
    if not path.is_file():
        return []
    return [tuple(map(int, line.split())) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One store for the module (originals and golds are trained once) and an in-process run of a small grid."""
    root = tmp_path_factory.mktemp("runner")
    counter = root / "calls.txt"
    grid = Grid(
        scenarios=SCENARIOS,
        methods=[MethodSpec(plugin.NOISE, {"counter": str(counter)}, label="noise"), "gold"],
        seeds=[0],
        options=EvalOptions(mia=True, zrf=True),
    )
    runner = Runner("tiny", results=root / "inproc.jsonl", store=root / "store", tags={"suite": "runner"})
    rows = runner.run(grid)
    return {"root": root, "grid": grid, "rows": rows, "counter": counter, "runner": runner}


def test_grid_expansion_and_seed_separation():
    grid = Grid(
        scenarios=["class:1", "class:2", "random:0.1"],
        methods=["a", {"name": "b", "hparams": {"x": 1}}],
        seeds=[0, 1, 2],
        base_seed=5,
    )
    cells = grid.cells()
    assert len(cells) == 3 * 2 * 3
    assert {c.scenario for c in cells} == {"class:1", "class:2", "random:0.1"}
    s = Seeds.for_replicate(1, base=5)
    assert (s.train, s.gold, s.request) == (6, 6, 6)
    assert (s.unlearn, s.eval) == (UNLEARN_SEED_OFFSET + 6, EVAL_SEED_OFFSET + 6)
    assert len({s.train, s.unlearn, s.eval}) == 3
    # keys are unique per cell and stable
    from oblivio.experiments import get_preset

    cfg = get_preset("tiny")
    keys = [c.key(cfg) for c in cells]
    assert len(set(keys)) == len(keys)
    assert keys == [c.key(cfg) for c in grid.cells()]
    assert cells[0].key(cfg) != cells[0].key(cfg.replace(seed=1))
    fixed = Grid(scenarios=["class:1"], methods=["a"], seeds=[0, 1], request_seed=7).cells()
    assert [c.seeds.request for c in fixed] == [7, 7]


def test_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="unique"):
        Grid(scenarios=["class:1"], methods=["a", "a"]).cells()
    with pytest.raises(ValueError, match="scenario"):
        Grid(scenarios=[], methods=["a"]).cells()
    with pytest.raises(ValueError, match="unknown keys"):
        MethodSpec.parse({"name": "a", "hparam": {}})
    with pytest.raises(ValueError, match="workers"):
        Runner("tiny", results="x.jsonl", workers=0)


def test_rows_have_provenance_metrics_and_cost(shared):
    rows = shared["rows"]
    assert len(rows) == 4
    assert [r["method"] for r in rows] == ["noise", "gold", "noise", "gold"]
    for r in rows:
        assert r["status"] == "ok" and r["key"]
        prov = r["provenance"]
        for k in (
            "config",
            "config_hash",
            "oblivio_version",
            "git_commit",
            "host",
            "started_at",
            "finished_at",
            "wall_seconds",
            "backend",
            "torch",
        ):
            assert k in prov, k
        assert prov["config"]["dataset"] == "digits" and prov["backend"] == "in-process"
        assert r["tags"] == {"suite": "runner"}
        m = r["metrics"]
        for k in (
            "acc_forget",
            "acc_retain",
            "acc_test",
            "gold_acc_forget",
            "gold_acc_test",
            "delta_forget",
            "activation_distance_l2",
            "js_divergence",
            "zrf_score",
            "mia_loss_lr_acc",
            "gold_mia_loss_lr_acc",
            "mia_salun_efficacy",
            "original_acc_forget",
        ):
            assert k in m, k
        assert m["delta_forget"] == pytest.approx(abs(m["acc_forget"] - m["gold_acc_forget"]))
        c = r["cost"]
        assert c["gold_train_seconds"] > 0 and c["method_seconds"] >= 0
        assert c["rte"] == pytest.approx(c["method_seconds"] / c["gold_train_seconds"])
        assert r["n_forget"] == 20 and r["forget_class"] in (1, 2)
    noise = rows[0]
    assert noise["hparams"]["scale"] == 0.05 and noise["info"]["n_forget_seen"] == 20
    # label accuracy vs the gold model's [M_g(x) == y]: predicting "all easy" scores the gold easy rate
    assert noise["metrics"]["label_accuracy"] == pytest.approx(noise["metrics"]["gold_easy_rate"])
    gold = rows[1]
    assert gold["hparams"] == {} and gold["metrics"]["delta_forget"] <= 1.0
    # the file holds one JSON line per cell, with the same keys
    lines = (shared["root"] / "inproc.jsonl").read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == [r["key"] for r in rows]


def test_seeds_are_kept_apart(shared):
    rows = shared["rows"]
    for r in rows:
        assert r["seeds"] == {
            "train": 0,
            "gold": 0,
            "unlearn": UNLEARN_SEED_OFFSET,
            "eval": EVAL_SEED_OFFSET,
            "request": 0,
        }
    # the method received the unlearning seed, not the training seed
    assert [seed for _, seed in _calls(shared["counter"])] == [UNLEARN_SEED_OFFSET, UNLEARN_SEED_OFFSET]
    # the gold pseudo-method's model is a second gold model: not identical to M_g
    gold = rows[1]["metrics"]
    assert gold["activation_distance_l2"] > 0


def test_resume_skips_finished_cells(shared, tmp_path):
    root, grid = shared["root"], shared["grid"]
    before = len(_calls(shared["counter"]))
    runner = Runner("tiny", results=root / "inproc.jsonl", store=root / "store")
    rows = runner.run(grid)
    assert len(_calls(shared["counter"])) == before  # nothing re-ran
    assert runner.new_rows == [] and [r["key"] for r in rows] == [r["key"] for r in shared["rows"]]

    # interruption: the file lost its last two rows and ends with a torn line
    results = tmp_path / "partial.jsonl"
    lines = (root / "inproc.jsonl").read_text().splitlines()
    results.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])
    rows = Runner("tiny", results=results, store=root / "store").run(grid)
    assert len(rows) == 4
    assert len(_calls(shared["counter"])) == before + 1  # only the missing noise cell ran (and the missing gold one)
    assert {r["key"] for r in read_results(results)} == {r["key"] for r in shared["rows"]}
    fresh = {r["key"]: r for r in rows}
    for old in shared["rows"]:
        assert fresh[old["key"]]["metrics"]["acc_forget"] == pytest.approx(old["metrics"]["acc_forget"])


def test_failures_are_recorded_and_retried(shared, tmp_path):
    counter = tmp_path / "fail.txt"
    cells = [Cell(SCENARIOS[0], MethodSpec(plugin.FAIL, {"counter": str(counter)}), Seeds(), EvalOptions(mia=False))]
    results = tmp_path / "r.jsonl"
    runner = Runner("tiny", results=results, store=shared["root"] / "store")
    assert runner.run(cells) == []
    assert len(runner.errors) == 1 and "deliberate failure" in runner.errors[0]["error"]
    assert read_results(results) == [] and len(read_results(results, only_ok=False)) == 1
    Runner("tiny", results=results, store=shared["root"] / "store").run(cells)
    assert len(_calls(counter)) == 2  # an error row does not count as finished
    with pytest.raises(RuntimeError, match="deliberate"):
        Runner("tiny", results=tmp_path / "r2.jsonl", store=shared["root"] / "store", on_error="raise").run(cells)


def test_process_pool_matches_in_process(shared):
    root = shared["root"]
    runner = Runner(
        "tiny",
        results=root / "pool.jsonl",
        store=root / "store",
        workers=2,
        threads_per_worker=1,
        imports=[plugin.__name__],
        tags={"suite": "runner"},
    )
    rows = runner.run(shared["grid"])
    assert runner.errors == []
    _assert_same_rows(rows, shared["rows"])
    assert {r["provenance"]["backend"] for r in rows} == {"pool"}


def _assert_same_rows(rows, reference):
    assert [r["key"] for r in rows] == [r["key"] for r in reference]
    for a, b in zip(rows, reference, strict=True):
        assert a["seeds"] == b["seeds"] and a["hparams"] == b["hparams"]
        assert set(a["metrics"]) == set(b["metrics"])
        for k, v in b["metrics"].items():
            if v is None or (isinstance(v, float) and math.isnan(v)):
                assert a["metrics"][k] is None
            else:
                assert a["metrics"][k] == pytest.approx(v, rel=1e-5, abs=1e-6), k


@pytest.mark.ray
def test_ray_local_matches_in_process(shared, monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'oblivio[ray]')")
    # Ray workers inherit the driver's environment: let them import the test plugin module
    import os

    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        root = shared["root"]
        runner = Runner(
            "tiny",
            results=root / "ray.jsonl",
            store=root / "store",
            ray_address="local",
            threads_per_worker=1,
            imports=[plugin.__name__],
            tags={"suite": "runner"},
        )
        rows = runner.run(shared["grid"])
        assert runner.errors == []
        _assert_same_rows(rows, shared["rows"])
        assert {r["provenance"]["backend"] for r in rows} == {"ray"}
        assert ray.is_initialized()  # a session the caller started is left running
    finally:
        ray.shutdown()


def test_missing_ray_is_a_clear_error(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    runner = Runner("tiny", results=tmp_path / "r.jsonl", ray_address="local")
    cells = Grid(scenarios=SCENARIOS[:1], methods=["gold"]).cells()
    with pytest.raises(ImportError, match=r"oblivio\[ray\]"):
        runner.run(cells)


def test_method_key_carries_resolved_hyper_parameters():
    from oblivio.experiments.grid import MethodSpec
    from oblivio.methods import create_method

    key = MethodSpec("finetune").key()
    # the defaults are in the key: a changed default gives another key, so resume cannot reuse a stale row
    assert key["resolved"] == create_method("finetune").hparams() and key["resolved"]["lr"] == 0.01
    assert MethodSpec("finetune", {"lr": 0.02}).key()["resolved"]["lr"] == 0.02
    assert MethodSpec("finetune.cpu").key()["resolved"] != key["resolved"]
    # invalid hyper-parameters do not stop the grid: the cell fails (and is recorded) when it runs
    bad = MethodSpec("tmu", {"hard_mode": "neggrad"}).key()
    assert "resolved" not in bad and bad["resolved_error"].startswith("ValueError")
    # an unregistered name (a plugin not imported here) has no resolved part, and gold never has one
    assert "resolved" not in MethodSpec("no-such-method").key()
    assert "resolved" not in MethodSpec("gold").key()
