import json

import pytest
import torch

from oblivio.cli import main


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cli-store"))


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_train_prints_original_and_gold(capsys, store):
    code, out, _ = _run(
        capsys, "train", "--preset", "tiny", "--store", store, "--no-progress", "--forget", "class-subset:3:10"
    )
    assert code == 0
    assert "original" in out and "gold" in out and "class-subset:3:10" in out


def test_forget_saves_model_and_metrics_then_evaluate_reads_it(capsys, store, tmp_path):
    out_model, out_json = tmp_path / "m.pt", tmp_path / "m.json"
    code, out, err = _run(
        capsys,
        "forget",
        "--preset",
        "tiny",
        "--store",
        store,
        "--no-progress",
        "--method",
        "finetune",
        "--forget",
        "class-subset:3:10",
        "--hparams",
        '{"epochs": 1}',
        "--gold",
        "--out",
        str(out_model),
        "--json",
        str(out_json),
    )
    assert code == 0, err
    assert "gold reference (retrain)" in out and "finetune" in out
    report = json.loads(out_json.read_text())
    assert report["forget"]["spec"] == "class-subset:3:10" and len(report["forget"]["forget_ids"]) == 10
    assert 0 <= report["metrics"]["acc_forget"] <= 1 and "gold_acc_forget" in report["metrics"]
    torch.load(out_model, weights_only=True)
    code, out, err = _run(
        capsys,
        "evaluate",
        "--preset",
        "tiny",
        "--store",
        store,
        "--no-progress",
        "--model-file",
        str(out_model),
        "--forget",
        "class-subset:3:10",
    )
    assert code == 0, err
    assert f"{100 * report['metrics']['acc_forget']:.2f}" in out and "acc_forget (%)" in out  # percent, as forget


@pytest.mark.parametrize(
    "argv,message",
    [
        (["forget", "--method", "nope"], "unknown method 'nope'"),
        (["forget", "--method", "finetune", "--hparams", '{"bogus": 1}'], "no hyper-parameter"),
        (["train", "--forget", "class-subset:42:5"], "unknown class 42"),
        (["train", "--forget", "class-subset:3:100000"], "a subset must be smaller"),
        (["train", "--forget", "teleport:1"], "unknown scenario kind"),
    ],
)
def test_bad_input_gives_clear_error_and_exit_2(capsys, store, argv, message):
    code, _, err = _run(capsys, *argv, "--preset", "tiny", "--store", store, "--no-progress")
    assert code == 2
    assert message in err


def test_corrupt_model_file_rejected(capsys, store, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    code, _, err = _run(
        capsys,
        "evaluate",
        "--preset",
        "tiny",
        "--store",
        store,
        "--no-progress",
        "--model-file",
        str(bad),
        "--forget",
        "class-subset:3:10",
    )
    assert code == 2 and "could not be read" in err
