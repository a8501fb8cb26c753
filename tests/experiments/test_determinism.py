"""Same seeds and same thread count give bit-identical metrics: in-process (twice), in a process pool, on Ray.

Issue 9: two recorded runs of identical TMU cells differed by 1-4 points. The cause found: a run's thread count
(in-process cells ran with the caller's torch threads, pool / Ray workers with ``threads_per_worker``), and a float
reduction split over another number of threads sums in another order. These tests compare rows exactly (``==``, not
approx), on the tiny preset with a small TMU (one twin, few epochs) and a short two-stage run.
"""

from __future__ import annotations

import math

import pytest
import torch

import oblivio.experiments.runner as runner_module
from oblivio.experiments.runner import EvalOptions, Grid, MethodSpec, Runner

TMU_SMALL = MethodSpec("tmu", {"n_twins": 1, "twin_epochs": 3, "predictor_epochs": 10}, label="tmu[small]")
TWO_STAGE_SMALL = MethodSpec("two-stage", {"recipe": "tiny", "retrain_epochs": 2}, label="two-stage[small]")
GRID = Grid(
    scenarios=["class-subset:1:20"],
    methods=[TMU_SMALL, TWO_STAGE_SMALL],
    seeds=[0],
    options=EvalOptions(mia=True, zrf=True),
)


def _fresh_caches() -> None:
    """Forget the in-process caches of experiments and original models (a second run starts like a new process)."""
    runner_module._EXPERIMENTS.clear()
    runner_module._ORIGINALS.clear()


def _comparable(row: dict) -> dict:
    """What must not change between runs: metrics, the method's info (labels, epochs...), hyper-parameters, seeds."""
    return {
        "metrics": row["metrics"],
        "info": _without_timings(row["info"]),
        "hparams": row["hparams"],
        "seeds": row["seeds"],
        "key": row["key"],
    }


def _without_timings(obj):
    """``obj`` without wall-clock / CPU timings (``*seconds`` keys, at any depth): they differ run to run."""
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if not str(k).endswith("seconds")}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


def _assert_identical(a: dict, b: dict) -> None:
    ca, cb = _comparable(a), _comparable(b)
    assert ca["key"] == cb["key"] and ca["seeds"] == cb["seeds"] and ca["hparams"] == cb["hparams"]
    assert set(ca["metrics"]) == set(cb["metrics"])
    different = {
        k: (v, cb["metrics"][k])
        for k, v in ca["metrics"].items()
        if not (v == cb["metrics"][k] or (_nan(v) and _nan(cb["metrics"][k])))
    }
    assert not different, f"{a['method']}: metrics differ between identical runs: {different}"
    assert ca["info"] == cb["info"], f"{a['method']}: info differs"


def _nan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One in-process run at one thread, on a store of its own (its original and gold models are trained here)."""
    root = tmp_path_factory.mktemp("determinism")
    _fresh_caches()
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the caller's setting differs from threads_per_worker: the runner must apply its own
    try:
        rows = Runner("tiny", results=root / "first.jsonl", store=root / "store", threads_per_worker=1).run(GRID)
        assert torch.get_num_threads() == 2  # and give the caller's back
    finally:
        torch.set_num_threads(before)
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    return {"root": root, "rows": rows}


def test_in_process_twice_is_bit_identical_and_records_threads(reference):
    root = reference["root"]
    _fresh_caches()
    again = Runner("tiny", results=root / "second.jsonl", store=root / "store", threads_per_worker=1).run(GRID)
    for a, b in zip(reference["rows"], again, strict=True):
        _assert_identical(a, b)
    for row in reference["rows"] + again:
        prov = row["provenance"]
        assert prov["torch_threads"] == 1
        assert isinstance(prov["torch_interop_threads"], int) and prov["torch_interop_threads"] >= 1
        assert all(n == 1 for n in prov["blas_openmp"].values()), prov["blas_openmp"]
        assert prov["gold_meta"]["torch_threads"] == 1 and prov["original_torch_threads"] == 1  # how they were trained


def test_models_trained_in_another_store_give_the_same_numbers(reference, tmp_path):
    """Original and gold models retrained from scratch (not loaded) give the same rows as the reference."""
    _fresh_caches()
    rows = Runner("tiny", results=tmp_path / "r.jsonl", store=tmp_path / "store", threads_per_worker=1).run(GRID)
    for a, b in zip(reference["rows"], rows, strict=True):
        _assert_identical(a, b)


def test_process_pool_is_bit_identical_to_in_process(reference):
    root = reference["root"]
    runner = Runner("tiny", results=root / "pool.jsonl", store=root / "store", workers=2, threads_per_worker=1)
    rows = runner.run(GRID)
    assert runner.errors == []
    assert {r["provenance"]["backend"] for r in rows} == {"pool"}
    for a, b in zip(reference["rows"], rows, strict=True):
        _assert_identical(a, b)
        assert b["provenance"]["torch_threads"] == 1


@pytest.mark.ray
def test_ray_is_bit_identical_to_in_process(reference):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'oblivio[ray]')")
    root = reference["root"]
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        runner = Runner(
            "tiny", results=root / "ray.jsonl", store=root / "store", ray_address="local", threads_per_worker=1
        )
        rows = runner.run(GRID)
    finally:
        ray.shutdown()
    assert runner.errors == []
    assert {r["provenance"]["backend"] for r in rows} == {"ray"}
    for a, b in zip(reference["rows"], rows, strict=True):
        _assert_identical(a, b)
        assert b["provenance"]["torch_threads"] == 1
