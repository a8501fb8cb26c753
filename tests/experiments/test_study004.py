"""The 004 study plug-in (issue 22 items 4 and 6): listed by the bench registry, its requests and cells, bad input
before any training, and a tiny end-to-end run whose F is recomputed from the rows by the SPEC §8 oracle."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from oblivio.experiments.bench import BenchSettings, get_benchmark, list_benchmarks, run_benchmark
from oblivio.experiments.config import ExperimentConfig, get_preset
from oblivio.training import Recipe

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "metrics"))
from forget_quality_oracle import oracle_epsilon  # noqa: E402  (SPEC §8 oracle, no code shared with oblivio)

SMALL = ExperimentConfig(
    dataset="fmnist-identities",
    dataset_options={"train_identities": 50, "test_identities": 30, "views": 3, "image_size": 14, "imbalance": 2.0},
    model="mlp",
    model_options={"hidden": 16},
    recipe=Recipe(name="t", epochs=2, lr=0.1, milestones=(), batch_size=64, class_weights="balanced"),
)


def test_listed_and_presets_registered():
    assert "study-004" in list_benchmarks()
    assert get_benchmark("study-004").run is not None
    tiny = get_preset("tiny-004")
    assert tiny.recipe.class_weights == "balanced" and tiny.dataset == "fmnist-identities"


def test_cli_list_shows_the_study(capsys):
    from oblivio.cli import main

    assert main(["bench", "--list"]) == 0
    assert "study-004" in capsys.readouterr().out


def test_requests_and_cells():
    from oblivio.data import load_dataset
    from oblivio.experiments.studies.study004 import study_cells, study_requests

    data = load_dataset("fmnist-identities", **SMALL.dataset_options)
    req = study_requests(data.train)
    assert req == {"non-iid": "group-frac:0.02:low:4", "iid-identities": "group-frac:0.02", "iid-images": "random:3"}
    cells = study_cells(req, ["finetune", "gold"], n_models=4, replicates=[0, 1])
    assert len(cells) == 2 * 3 * 2 * 4
    assert {c.seeds.train for c in cells} == {0, 1} and {c.seeds.request for c in cells} == {0, 1}
    with pytest.raises(ValueError, match="unknown study-004 request"):
        study_requests(data.train, names=["young"])


def test_data_without_groups_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="needs grouped data"):
        run_benchmark("study-004", "tiny", out=tmp_path / "o", store=tmp_path / "store")
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("model.pt"))


def test_end_to_end_scores_match_the_oracle(tmp_path):
    settings = BenchSettings(seeds=1, methods=["finetune", "gold", "original"], n_models=3, scenario="non-iid")
    res = run_benchmark("study-004", SMALL.replace(), out=tmp_path / "o", settings=settings, store=tmp_path / "store")
    assert not res.errors and len(res.rows) == 9
    summary = [json.loads(line) for line in (tmp_path / "o/study004-summary.jsonl").read_text().splitlines()]
    assert {s["method"] for s in summary} == {"finetune", "gold", "original"}
    for s in summary:
        assert s["git_commit"] is not None or s["git_dirty"] is None
        assert "time" in s and s["K"] == 3
        rows = sorted((r for r in res.rows if r["method"] == s["method"]), key=lambda r: r["seeds"]["gold"])
        u = np.asarray([r["scores"]["forget"] for r in rows])
        g = np.asarray([r["scores"]["gold_forget"] for r in rows])
        eps = [oracle_epsilon(u[:, j], g[:, j]) for j in range(u.shape[1])]
        # H = 2^-floor(eps / 0.5), 0 from 2 ceil(ln(N - 1)) buckets on (N = 3: 2 buckets)
        h = [0.0 if int(e // 0.5) >= 2 else 2.0 ** -int(e // 0.5) for e in eps]
        assert s["F"] == pytest.approx(float(np.mean(h)), abs=1e-12)
    shift = [json.loads(line) for line in (tmp_path / "o/study004-shift.jsonl").read_text().splitlines()]
    assert shift and all(0 <= s["tv_distance"] <= 1 for s in shift)
    assert {s["request"] for s in shift} == {"non-iid", "iid-identities", "iid-images"}
    assert (tmp_path / "o/report.md").read_text().count("non-iid request, K = 3") == 1


@pytest.mark.ray
def test_ray_spreads_the_same_cells(tmp_path):
    """--ray-address local runs the study's cells on Ray and scores the same F as in-process."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'oblivio[ray]')")
    settings = BenchSettings(seeds=1, methods=["gold"], n_models=3, scenario="non-iid")
    local = run_benchmark("study-004", SMALL.replace(), out=tmp_path / "a", settings=settings, store=tmp_path / "s")
    on_ray = run_benchmark(
        "study-004",
        SMALL.replace(),
        out=tmp_path / "b",
        settings=settings,
        store=tmp_path / "s",
        ray_address="local",
        threads_per_worker=1,
    )
    assert not on_ray.errors and len(on_ray.rows) == len(local.rows) == 3
    f = {d: json.loads((tmp_path / d / "study004-summary.jsonl").read_text().splitlines()[0])["F"] for d in ("a", "b")}
    assert f["a"] == f["b"]
