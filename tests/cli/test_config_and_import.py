"""CLI: --config FILE.yaml (options from a file, command line wins), --import MODULE on every command, and a
user's own dataset and model (registered in a module of their own) through train, forget, request and bench."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import yaml

from oblivio.cli import build_parser, main
from oblivio.cli.common import apply_config


def _parse(tmp_path, config: dict, *argv: str):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config))
    full = [argv[0], "--config", str(path), *argv[1:]]
    parser = build_parser()
    return apply_config(parser, full, parser.parse_args(full))


def test_forget_config_values_and_command_line_override(tmp_path):
    cfg = {
        "method": "tmu.one-twin",
        "forget": "class-subset:6:50",
        "hparams": {"epochs": 3, "twin_lr": 0.01},
        "unlearn-seed": 4,
        "gold": True,
        "preset": "tiny",
        "model_options": {"width": 4},
    }
    args = _parse(tmp_path, cfg, "forget", "--unlearn-seed", "7")
    assert args.method == "tmu.one-twin" and args.forget == "class-subset:6:50"
    assert args.hparams == {"epochs": 3, "twin_lr": 0.01} and args.model_options == {"width": 4}
    assert args.gold is True and args.preset == "tiny"
    assert args.unlearn_seed == 7  # the command line wins over the file
    assert isinstance(args.request_seed, int) and args.request_seed == 0  # untouched defaults stay


def test_bench_config_methods_variants_seeds_scenario(tmp_path):
    from oblivio.cli.bench import _parse_methods

    methods = ["finetune", "tmu.one-twin", {"name": "tmu", "hparams": {"n_twins": 2}, "label": "tmu[2]"}]
    args = _parse(
        tmp_path,
        {
            "name": "tmu-table1",
            "methods": methods,
            "seeds": 3,
            "classes": [0, 4],
            "scenario": "random:0.1",
            "import": ["json"],
        },
        "bench",
        "--seeds",
        "2",
    )
    assert _parse_methods(args.methods) == methods
    assert args.seeds == 2 and args.classes == [0, 4] and args.scenario == "random:0.1" and args.imports == ["json"]


@pytest.mark.parametrize(
    "config, message",
    [
        ({"metod": "tmu"}, "unknown option 'metod' for this command; valid: "),
        ({"gold": "yes"}, "gold must be true or false"),
        ({"seeds": "many"}, "does not fit its option"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, capsys, config, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = "bench" if "seeds" in str(config) else "forget"
    code = main([cmd, "--config", str(path)])
    assert code == 2 and message in capsys.readouterr().err


def test_missing_and_invalid_yaml(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "x.yaml").write_text("a: [1, 2\n")
    assert main(["train", "--config", str(tmp_path / "x.yaml")]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    (tmp_path / "latin1.yaml").write_bytes(b"epochs: 2\nname: caf\xe9\n")
    assert main(["train", "--config", str(tmp_path / "latin1.yaml")]) == 2
    err = capsys.readouterr().err
    assert "latin1.yaml is not UTF-8" in err and "0xe9" in err and len(err.strip().splitlines()) == 1


def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for inner, subsub in _subparsers(sub):
                    yield f"{name} {inner}", subsub


def test_every_command_takes_import():
    commands = dict(_subparsers(build_parser()))
    assert {"train", "forget", "evaluate", "demo", "bench", "report", "request add", "request apply"} <= set(commands)
    for name, sub in commands.items():
        if name == "request":
            continue  # a group: each action below it takes the option
        assert any("--import" in a.option_strings for a in sub._actions), name


def test_import_errors_name_the_module(capsys, tmp_path):
    assert main(["report", str(tmp_path / "r.jsonl"), "--import", "no_such_plugin_xyz"]) == 2
    assert "--import no_such_plugin_xyz: cannot import it" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "r.jsonl"), "--import", "plug.py"]) == 2
    assert "takes a module name, not a path" in capsys.readouterr().err


PLUGIN = textwrap.dedent('''
    """A user's own data and model, registered for the oblivio CLI."""
    import numpy as np
    from torch import nn

    from oblivio.data import from_arrays, register_dataset
    from oblivio.models import Normalize, register_model


    @register_dataset("NAME-blobs")
    def blobs(n_train: int = 150, n_test: int = 60):
        rng = np.random.default_rng(0)
        def draw(n):
            y = np.arange(n) % 3
            x = rng.normal(0.5, 0.12, (n, 1, 6, 6)) + (y[:, None, None, None] - 1) * 0.15
            return np.clip(x, 0, 1).astype(np.float32), y
        (xt, yt), (xs, ys) = draw(n_train), draw(n_test)
        return from_arrays(xt, yt, xs, ys, classes=("a", "b", "c"), name="NAME-blobs")


    @register_model("NAME-mlp")
    def mlp(*, num_classes, in_channels, image_size, mean=None, std=None, hidden: int = 16):
        d = in_channels * image_size[0] * image_size[1]
        return nn.Sequential(Normalize(mean or [0.5] * in_channels, std or [0.25] * in_channels), nn.Flatten(),
                             nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
''')


@pytest.fixture()
def user_plugin(tmp_path, monkeypatch):
    """A module of the user's own, in the current folder (found by --import like `python -m` would)."""
    name = f"my_oblivio_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(PLUGIN.replace("NAME", name))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield name
    from oblivio.data import DATASETS
    from oblivio.models import MODELS

    DATASETS._entries.pop(f"{name}-blobs", None)
    MODELS._entries.pop(f"{name}-mlp", None)
    sys.modules.pop(name, None)


def test_own_dataset_and_model_through_train_forget_request_bench(user_plugin, tmp_path, capsys):
    common = [
        "--import",
        user_plugin,
        "--preset",
        "tiny",
        "--dataset",
        f"{user_plugin}-blobs",
        "--model",
        f"{user_plugin}-mlp",
        "--store",
        str(tmp_path / "store"),
        "--no-progress",
    ]
    assert main(["train", *common, "--forget", "class-subset:1:5"]) == 0
    out = capsys.readouterr().out
    assert "gold reference" in out and "original" in out

    cfg = tmp_path / "forget.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "method": "tmu",
                "forget": "class-subset:1:5",
                "gold": True,
                "json": "m.json",
                "hparams": {"n_twins": 1, "twin_epochs": 1, "epochs": 1, "predictor_epochs": 5},
            }
        )
    )
    assert main(["forget", "--config", str(cfg), *common]) == 0  # TMU on a plain nn.Sequential
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["method"] == "tmu" and len(report["forget"]["forget_ids"]) == 5
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 120

    ledger = ["--workdir", str(tmp_path / "ledger"), *common]
    assert main(["request", "add", "--ids", "3,4,5", "--requester", "ann", *ledger]) == 0
    assert main(["request", "apply", "--method", "finetune", "--hparams", '{"epochs": 1}', *ledger]) == 0
    assert "is current" in capsys.readouterr().out

    out_dir = tmp_path / "bench"
    assert (
        main(
            [
                "bench",
                "tmu-table1",
                "--classes",
                "0",
                "--count",
                "10",
                "--methods",
                "finetune",
                "--out",
                str(out_dir),
                "--no-plots",
                *common,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"--import {user_plugin}" in printed  # the reproduce line names the plugin
    assert max(len(line) for line in printed.splitlines() if not line.startswith("reproduce:")) <= 120
    assert (out_dir / "report.html").is_file()
