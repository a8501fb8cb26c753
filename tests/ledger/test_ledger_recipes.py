"""The ledger states which recipe trained version 1 and the gold model, and warns when an imported model (the user's
own weights, trained their way) is measured against a gold model oblivio retrained with its own recipe (issue 24,
item 1: the issue's request workflow)."""

from __future__ import annotations

import torch


def test_imported_weights_beside_oblivios_gold_are_warned(make_service, tiny_experiment, tmp_path, cli):
    torch.manual_seed(3)
    mine = tiny_experiment.build_model(seed=3)  # the user's weights (how they were trained is not stated)
    torch.save(mine.state_dict(), tmp_path / "mine.pt")
    svc = make_service(workdir=tmp_path / "imported")
    svc.init(model_file=tmp_path / "mine.pt")
    svc.add_request([10, 11], requester="alice")
    m = svc.apply(gold=True).version.metrics
    assert m["original_recipe"]["kind"] == "unknown" and m["gold_recipe"]["name"] == "tiny"
    assert m["recipe_warning"].startswith("recipes differ") and "oblivio's recipe 'tiny'" in m["recipe_warning"]
    svc.close()
    # the command line prints it
    work = ["--workdir", str(tmp_path / "imported")]
    assert cli("request", "add", "--ids", "12", "--requester", "bob", *work)[0] == 0
    code, out, err = cli("request", "apply", "--method", "test-ledger-sgd", "--gold", *work)
    assert code == 0, err
    assert "WARNING: recipes differ" in out


def test_the_experiments_own_original_beside_gold_is_not_warned(make_service, tmp_path):
    # trained with the same recipe as gold: no warning (a test of its own: on PostgreSQL a test has one database)
    own = make_service(workdir=tmp_path / "own")
    own.add_request([10, 11], requester="alice")
    m = own.apply(gold=True).version.metrics
    assert m["original_recipe"] == m["gold_recipe"] and m["recipe_warning"] is None
