"""The command line with your weights and your training recipe (issue 24, item 1): ``forget --model-file`` (no
original trained), ``--gold-model-file`` (your gold model), ``--import MODULE --recipe NAME`` (gold retrained with
your function), and the recipe lines + WARNING of forget / evaluate / train, in the terminal and in --json.

The issue's case is reproduced: a model trained with Adam by the user, unlearned with gold retrained by oblivio's
SGD recipe, must carry a warning; with the user's function registered as the recipe it must not.
Oracle: accuracies of the user's own weights recomputed here with sklearn's accuracy_score.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import torch
from sklearn.metrics import accuracy_score

from oblivio.cli import main
from oblivio.experiments import Experiment
from oblivio.methods import METHODS
from oblivio.training import RECIPES, TrainData, unregister_recipe

PLUGIN = "own_recipe_cli_plugin"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A folder with the user's plugin (their Adam loop as a recipe, a do-nothing method), their Adam-trained
    weights for the tiny preset's model, and their own gold model."""
    root = tmp_path_factory.mktemp("own-recipe")
    (root / f"{PLUGIN}.py").write_text(
        textwrap.dedent(
            """
            import torch
            from dataclasses import dataclass
            from torch import nn
            from torch.utils.data import DataLoader
            from oblivio.methods import UnlearningMethod, register_method
            from oblivio.training import register_recipe

            @register_recipe("t-cli-adam")
            def adam(model, train_data, *, seed, epochs=1):
                opt = torch.optim.Adam(model.parameters(), lr=3e-3)
                g = torch.Generator().manual_seed(seed)
                for _ in range(epochs):
                    for x, y in DataLoader(train_data, batch_size=64, shuffle=True, generator=g):
                        opt.zero_grad()
                        nn.functional.cross_entropy(model(x), y).backward()
                        opt.step()
                return model

            @register_method("test-keep")
            @dataclass(kw_only=True)
            class Keep(UnlearningMethod):
                def _unlearn(self, model, data, *, seed, progress):
                    return model
            """
        )
    )
    sys.path.insert(0, str(root))
    plugin = __import__(PLUGIN)
    exp = Experiment("tiny", store=root / "scratch", progress=False, device="cpu")
    torch.manual_seed(5)
    user = exp.build_model(seed=5)
    plugin.adam(user, TrainData(exp.data.train), seed=5)  # the user's model, trained their way
    torch.save(user.state_dict(), root / "user.pt")
    splits = exp.unlearning_splits("class-subset:3:10")
    torch.manual_seed(6)
    gold = exp.build_model(seed=6)
    plugin.adam(gold, TrainData(splits.retain), seed=6)  # the user's own gold model
    torch.save(gold.state_dict(), root / "gold.pt")
    yield {"root": root, "user": user.eval(), "gold": gold.eval(), "splits": splits}
    sys.path.remove(str(root))
    sys.modules.pop(PLUGIN, None)
    unregister_recipe("t-cli-adam")
    METHODS._entries.pop("test-keep", None)


def _acc(model, ds):
    with torch.no_grad():
        return accuracy_score(ds.labels.numpy(), model(ds.float_images()).argmax(1).numpy())


def _run(capsys, monkeypatch, world, *argv):
    monkeypatch.chdir(world["root"])
    code = main(list(argv))
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


BASE = ("--preset", "tiny", "--no-progress", "--forget", "class-subset:3:10", "--import", PLUGIN)


def test_forget_your_adam_weights_with_oblivios_sgd_gold_warns(capsys, monkeypatch, world, tmp_path):
    store = tmp_path / "store"
    argv = ("forget", *BASE, "--store", str(store), "--method", "test-keep", "--model-file", "user.pt", "--gold")
    out = _run(capsys, monkeypatch, world, *argv, "--json", str(tmp_path / "f.json"))
    assert "recipe of the original: unknown" in out and "recipe of the gold model: tiny (oblivio recipe: SGD" in out
    assert "WARNING: recipes differ" in out and max(len(line) for line in out.splitlines()) <= 120
    report = json.loads((tmp_path / "f.json").read_text())
    assert report["recipes"]["original"]["kind"] == "unknown" and report["recipes"]["gold"]["name"] == "tiny"
    assert report["recipes"]["warning"].startswith("recipes differ")
    # the user's weights were unlearned (test-keep returns them as they are); no original was trained
    assert report["metrics"]["acc_forget"] == pytest.approx(_acc(world["user"], world["splits"].forget))
    assert report["metrics"]["acc_test"] == pytest.approx(_acc(world["user"], world["splits"].test))
    assert not (store / "original").exists() and (store / "gold").is_dir()
    # stating that the weights were trained with gold's recipe silences it
    out = _run(capsys, monkeypatch, world, *argv, "--model-recipe", "tiny")
    assert "WARNING: recipes differ" not in out and "recipe of the original: tiny (stated by you)" in out
    assert "WARNING: no change" in out  # test-keep returns the weights as they are: said, as issue 21 asks


def test_forget_with_your_recipe_retrains_gold_your_way(capsys, monkeypatch, world, tmp_path):
    store = tmp_path / "store"
    argv = ("forget", *BASE, "--store", str(store), "--method", "test-keep", "--model-file", "user.pt", "--gold")
    out = _run(capsys, monkeypatch, world, *argv, "--recipe", "t-cli-adam", "--json", str(tmp_path / "f.json"))
    assert "WARNING: recipes differ" not in out and "recipe of the gold model: t-cli-adam (your function" in out
    report = json.loads((tmp_path / "f.json").read_text())
    assert report["recipes"]["warning"] is None and report["recipes"]["gold"]["kind"] == "function"
    (gold_meta,) = [json.loads(p.read_text()) for p in (store / "gold").glob("*/meta.json")]
    assert gold_meta["key"]["recipe"]["name"] == "t-cli-adam" and gold_meta["key"]["recipe"]["kind"] == "function"
    assert "t-cli-adam" in RECIPES
    out = _run(capsys, monkeypatch, world, "train", *BASE, "--store", str(store), "--recipe", "t-cli-adam")
    assert "recipe of the original and gold models: t-cli-adam (your function" in out


def test_your_gold_model_file_is_the_reference(capsys, monkeypatch, world, tmp_path):
    store = tmp_path / "store"
    argv = ("forget", *BASE, "--store", str(store), "--method", "test-keep", "--model-file", "user.pt")
    out = _run(capsys, monkeypatch, world, *argv, "--gold-model-file", "gold.pt", "--json", str(tmp_path / "f.json"))
    assert "gold reference (your file)" in out and "WARNING: recipes differ" not in out
    report = json.loads((tmp_path / "f.json").read_text())
    splits = world["splits"]
    assert report["metrics"]["gold_acc_forget"] == pytest.approx(_acc(world["gold"], splits.forget))
    assert report["metrics"]["gold_acc_test"] == pytest.approx(_acc(world["gold"], splits.test))
    assert report["recipes"]["gold"]["kind"] == "file" and report["recipes"]["warning"] is None
    assert not store.exists()  # neither an original nor a gold model was trained
    ev = ("evaluate", *BASE, "--store", str(store), "--model-file", "user.pt")
    out = _run(capsys, monkeypatch, world, *ev, "--gold-model-file", "gold.pt", "--json", str(tmp_path / "e.json"))
    metrics = json.loads((tmp_path / "e.json").read_text())
    assert metrics["gold_acc_forget"] == pytest.approx(report["metrics"]["gold_acc_forget"])
    assert "gold reference" in out and not store.exists()
    out = _run(capsys, monkeypatch, world, *ev, "--gold")  # gold retrained with oblivio's recipe: warned
    assert "recipe of the model's original: unknown" in out and "WARNING: recipes differ" in out


def test_a_gold_model_file_of_another_architecture_is_refused(capsys, monkeypatch, world, tmp_path):
    torch.save({"weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    monkeypatch.chdir(world["root"])
    argv = ("forget", *BASE, "--store", str(tmp_path / "s"), "--method", "test-keep", "--model-file", "user.pt")
    assert main([*argv, "--gold-model-file", str(tmp_path / "other.pt")]) == 2
    assert "--gold-model-file" in capsys.readouterr().err
