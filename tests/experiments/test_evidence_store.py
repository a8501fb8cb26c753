"""Held-out evidence kept in the store (issue 23): an original's training dynamics beside its model, recovered
bit-for-bit for an older original, and K-fold models whose held-out logits cover every image of D exactly once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oblivio.experiments.pipeline import DYNAMICS_FILE, Experiment, kfold_assignment
from oblivio.training.evaluate import predict_logits


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    return Experiment("tiny", store=tmp_path_factory.mktemp("evidence"), progress=False)


def test_the_original_keeps_its_dynamics_and_an_older_one_is_recovered(exp):
    exp.original()
    first = exp.original_dynamics()
    assert first is not None and first.complete and first.epochs == exp.config.recipe.epochs
    assert sorted(first.ids.tolist()) == sorted(exp.data.train.ids.tolist())
    path = exp.store.folder("original", {**exp.config.model_key(), "seed": exp.config.seed}) / DYNAMICS_FILE
    path.unlink()  # an original stored before issue 23
    assert exp.original_dynamics() is None
    again = exp.original_dynamics(recompute=True)  # retrained with the recorder: same weights, same record
    assert torch.equal(again.correct, first.correct) and torch.allclose(again.aum, first.aum)
    assert path.is_file()


def test_kfold_evidence_is_held_out_for_every_image(exp):
    folds = 3
    models = exp.kfold_models(folds=folds)
    fold_ids = [set(ids.tolist()) for _, ids in models]
    assert sum(len(f) for f in fold_ids) == len(exp.data.train)
    assert set().union(*fold_ids) == set(exp.data.train.ids.tolist())
    ev = exp.kfold_evidence(folds=folds)
    # each image's logits come from the one model that did not train on it
    pos_of = {int(i): p for p, i in enumerate(exp.data.train.ids.tolist())}
    for k, (model, ids) in enumerate(models):
        some = sorted(ids.tolist())[:5]
        part = exp.data.train.subset(torch.tensor([pos_of[i] for i in some]))
        expect = predict_logits(model, part).float()
        rows = torch.tensor([int(np.searchsorted(ev["ids"].numpy(), i)) for i in some])
        assert torch.allclose(ev["logits"][rows], expect, atol=1e-5), k
    assert exp.kfold_evidence(folds=folds)["logits"].shape == ev["logits"].shape  # read back from the store


def test_kfold_assignment_is_stratified_and_seeded():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 7)
    a = kfold_assignment(y, folds=5, seed=1)
    assert np.array_equal(a, kfold_assignment(y, folds=5, seed=1))
    assert not np.array_equal(a, kfold_assignment(y, folds=5, seed=2))
    for c in range(3):
        per_fold = np.bincount(a[y.numpy() == c], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1
    with pytest.raises(ValueError, match="folds"):
        Experiment("tiny").kfold_models(folds=1)


def test_a_runner_cell_provides_the_evidence_and_amortises_its_cost(tmp_path):
    from oblivio.experiments.runner import Cell, EvalOptions, MethodSpec, Seeds, run_cell

    cell = Cell(
        "class-subset:3:20", MethodSpec("tmu.kfold", {"evidence_folds": 3}), Seeds(), EvalOptions(mia=False, zrf=False)
    )
    from oblivio.experiments.config import get_preset

    row = run_cell(get_preset("tiny"), cell, store=tmp_path / "store")
    ev = row["info"]["evidence_cost"]
    exp = Experiment("tiny", store=tmp_path / "store", progress=False)
    metas = [exp.store_meta("kfold", {**exp.config.model_key(), "seed": 0, "kfold": 3, "fold": k}) for k in range(3)]
    assert ev["kfold_models"] == 3
    assert ev["cpu_seconds"] == pytest.approx(sum(m["train_cpu_seconds"] for m in metas))
    c = row["cost"]
    gold_cpu = c["gold_train_cpu_seconds"]
    own = row["info"]["cpu_seconds"]
    for r in (1, 10, 100):
        assert c[f"rte_cpu_amortised_{r}"] == pytest.approx((own + ev["cpu_seconds"] / r) / gold_cpu)
    assert c["rte_cpu_amortised_100"] < c["rte_cpu_amortised_1"]
    assert "evidence_wrong" in row["info"] and "twin_size" not in row["info"]
