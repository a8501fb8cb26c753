"""Silent wrong answers become clear errors (issue 21, item 2).

Each input here was accepted before and did something other than what the user asked (an id read as another id, a
ledger that forgot everything, a request rounded down, labels truncated, forget images trained on as retain...). Now
each is refused with one line naming the problem and the fix, before anything is recorded or trained.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from oblivio.scenarios import ScenarioError, parse_scenario, read_indices_file

# Text that Python's int() reads as a number but that is not an id written with ASCII digits.
HOSTILE_ID_TEXT = ["１２", "٣٤", "1_0", "+11", "-0", "-3", "12\u00a0", "\u0e51"]


def _one_line_error(code, err, *, match):
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("oblivio: error:")]
    assert len(lines) == 1, err
    assert any(m in lines[0] for m in match.split("|")), lines[0]


def _requests(svc):
    return [(r.id, r.status, r.sample_ids) for r in svc.list_requests()]


# ---------------------------------------------------------------------------------------------- ids: one rule
@pytest.mark.parametrize("text", HOSTILE_ID_TEXT)
def test_ids_option_takes_ascii_digits_only(cli, make_service, tmp_path, text):
    workdir = tmp_path / "wd"
    code, out, err = cli("request", "add", "--ids", f"5,{text}", "--requester", "a", "--workdir", str(workdir))
    _one_line_error(code, err, match="ASCII digits")
    assert repr(text.strip()) in err and "recorded" not in out
    svc = make_service(workdir)
    assert _requests(svc) == []  # nothing recorded


@pytest.mark.parametrize("text", ["7,,8", "7,8,", ",7"])
def test_ids_option_refuses_empty_items_as_a_file_does(cli, make_service, tmp_path, text):
    workdir = tmp_path / "wd"
    code, out, err = cli("request", "add", "--ids", text, "--requester", "a", "--workdir", str(workdir))
    _one_line_error(code, err, match="empty item")
    assert "recorded" not in out
    assert _requests(make_service(workdir)) == []


@pytest.mark.parametrize("text", HOSTILE_ID_TEXT)
@pytest.mark.parametrize("suffix", [".txt", ".csv"])
def test_id_files_take_ascii_digits_only(make_service, tmp_path, text, suffix):
    svc = make_service()
    path = tmp_path / f"ids{suffix}"
    path.write_text(f"5\n{text}\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"line 2: .* not an integer sample id: .*ASCII digits"):
        svc.add_request(path, requester="alice")
    assert _requests(svc) == []


@pytest.mark.parametrize("payload", ["[5, -0]", "[-3, 5]", '{"ids": [5, -0]}'])
def test_json_id_files_refuse_signed_numbers(make_service, tmp_path, payload):
    svc = make_service()
    path = tmp_path / "ids.json"
    path.write_text(payload)
    with pytest.raises(ScenarioError, match=r"is -[03], not an integer id"):
        svc.add_request(path, requester="alice")
    assert _requests(svc) == []


def test_ascii_ids_with_surrounding_spaces_are_still_ids(make_service, tmp_path, cli):
    path = tmp_path / "ids.txt"
    path.write_text(" 5 \n\t7\n")
    assert read_indices_file(path).tolist() == [5, 7]
    code, out, _ = cli("request", "add", "--ids", " 8 , 9", "--requester", "a", "--workdir", str(tmp_path / "wd"))
    assert code == 0 and "2 sample(s)" in out


@pytest.mark.parametrize(
    "spec",
    ["group:1,١", "group:+1", "class-subset:3:1_0", "class-subset:3:１０", "class-subset:3:+5"],
)
def test_scenario_ids_and_counts_take_ascii_digits_only(spec):
    with pytest.raises(ScenarioError, match="ASCII digits"):
        parse_scenario(spec)


def test_class_token_in_another_script_is_a_name_not_an_index():
    assert parse_scenario("class:3").cls == 3
    assert parse_scenario("class:٣").cls == "٣"  # not class 3: resolving it fails as an unknown class name


@pytest.mark.parametrize("text", ["١", "+1", "1_0"])
def test_request_and_version_ids_on_the_command_line(cli, make_service, tmp_path, capsys, text):
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.add_request([30], requester="alice")
    svc.apply()
    with pytest.raises(SystemExit) as exc:  # argparse refuses it: exit code 2 and its usage line
        cli("request", "cancel", text, "--by", "bob", "--workdir", str(workdir))
    assert exc.value.code == 2 and "ASCII digits" in capsys.readouterr().err
    from oblivio.ledger import LedgerError

    with pytest.raises(LedgerError, match="no single model version matches"):
        svc.resolve_version(text)  # '١' was version 1


@pytest.mark.parametrize(
    "option, value", [("--seed", "１"), ("--epochs", "1_0"), ("--train-size", "+50"), ("--seed", "-0")]
)
def test_whole_number_options_take_ascii_digits_only(cli, capsys, option, value):
    with pytest.raises(SystemExit) as exc:
        cli("train", option, value)
    assert exc.value.code == 2 and "ASCII digits" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- ledgers that forget
@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///:memory:",
        "sqlite://",
        "sqlite+pysqlite:///:memory:",
        "sqlite:///file::memory:?uri=true",
        "sqlite:///file:ledger?mode=memory&uri=true",
        "sqlite:///file:ledger?mode=memory&cache=shared&uri=true",
        # other spellings of the same (accepted before): another VFS, another case, an empty name, inside the URI
        "sqlite:///file:ledger?vfs=memdb&uri=true",
        "sqlite:///ledger.db?vfs=memdb",
        "sqlite:///:MEMORY:",
        "sqlite:///file:ledger?MODE=MEMORY&uri=true",
        "sqlite:///file:ledger?mode=Memory&uri=true",
        "sqlite:///file:?uri=true",
        "sqlite:///file:%3AMemory%3A?uri=true",
        "sqlite:///file:ledger%3Fvfs%3Dmemdb?uri=true",
    ],
)
def test_an_in_memory_ledger_is_refused(cli, tmp_path, monkeypatch, url):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("request", "add", "--ids", "5", "--requester", "a", "--db-url", url)
    _one_line_error(code, err, match="in memory")
    assert "recorded" not in out
    assert list(tmp_path.iterdir()) == []  # not even the default workdir was made


def test_an_in_memory_ledger_is_refused_from_python(tiny_experiment, tmp_path, monkeypatch):
    from oblivio.ledger import DeletionService, LedgerError

    with pytest.raises(LedgerError, match="in memory"):
        DeletionService(tmp_path / "wd", experiment=tiny_experiment, db_url="sqlite://")
    monkeypatch.setenv("OBLIVIO_LEDGER_URL", "sqlite:///:memory:")
    with pytest.raises(LedgerError, match="in memory"):
        DeletionService(tmp_path / "wd", experiment=tiny_experiment)
    assert not (tmp_path / "wd").exists()


@pytest.mark.parametrize("workdir", ["", "  "])
def test_an_empty_workdir_is_refused(cli, tmp_path, monkeypatch, workdir):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("request", "add", "--ids", "5", "--requester", "a", "--workdir", workdir)
    _one_line_error(code, err, match="--workdir is empty")
    assert list(tmp_path.iterdir()) == []  # no ledger.db, models/ or id index in the current folder


# ---------------------------------------------------------------------------------------------- epochs, amounts
@pytest.mark.parametrize("epochs, match", [("0", "epoch count must be >= 1"), ("-1", "ASCII digits")])
def test_non_positive_epochs_are_refused_on_the_command_line(cli, capsys, epochs, match):
    with pytest.raises(SystemExit) as exc:
        cli("train", f"--epochs={epochs}")
    assert exc.value.code == 2
    assert match in capsys.readouterr().err


def test_non_positive_epochs_are_refused_in_a_config_file(cli, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 0\n")
    code, _, err = cli("train", "--config", str(config))
    _one_line_error(code, err, match="does not fit its option")
    assert "epoch count must be >= 1" in err


@pytest.mark.parametrize("epochs", [0, -1, 1.5, True])
def test_a_recipe_that_trains_nothing_is_refused(epochs):
    from oblivio.training.recipes import CPU, Recipe

    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        Recipe(epochs=epochs)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        CPU.replace(epochs=epochs)


@pytest.mark.parametrize(
    "method, hparams",
    [
        ("finetune", {"epochs": 0}),
        ("finetune", {"epochs": -2}),
        ("tmu", {"n_twins": 0}),
        ("tmu", {"twin_size": 0}),
        ("tmu", {"twin_epochs": 0}),
        ("scrub", {"forget_batch_size": 0}),
    ],
)
def test_a_method_count_of_zero_is_refused_before_anything_runs(cli, make_service, tmp_path, method, hparams):
    """``request apply --hparams '{"epochs": 0}'`` ran a no-op and recorded the requests as applied; now it is one
    line naming the hyper-parameter, nothing is recorded, and the request stays pending (CLI and Python)."""
    import oblivio
    from oblivio.methods import base

    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.add_request([5], requester="alice")
    svc.close()
    key = next(iter(hparams))
    code, out, err = cli(
        "request", "apply", "--workdir", str(workdir), "--method", method, "--hparams", json.dumps(hparams)
    )
    _one_line_error(code, err, match=f"hyper-parameter {key} must be an integer >= 1")
    assert "applied" not in out
    svc = make_service(workdir)
    with pytest.raises(ValueError, match=f"{key} must be an integer >= 1"):
        svc.apply(method=method, hparams=hparams)
    assert _requests(svc) == [(1, "pending", (5,))] and svc.list_runs() == []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(base.UnlearningMethod, "__call__", lambda *a, **k: pytest.fail("trained"))
        with pytest.raises(ValueError, match=f"{key} must be an integer >= 1"):
            oblivio.unlearn(None, forget=None, retain=None, method=method, **hparams)


def test_a_stage_that_may_be_left_out_still_takes_zero():
    from oblivio.methods import create_method

    assert create_method("kl-uniform-contrastive", forget_epochs=0).forget_epochs == 0
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        create_method("kl-uniform-contrastive", epochs=0)


@pytest.mark.parametrize("spec", ["random:1.5", "random:2.25", "random:10.5"])
def test_a_fractional_random_count_is_refused_before_training(cli, monkeypatch, spec):
    from oblivio.methods import base

    monkeypatch.setattr(base.UnlearningMethod, "__call__", lambda *a, **k: pytest.fail("trained"))
    code, _, err = cli("forget", "--method", "test-attack-sgd", "--forget", spec)
    _one_line_error(code, err, match="neither a fraction in (0, 1) nor a whole count")


@pytest.mark.parametrize("spec, n", [("random:1", 1), ("random:2.0", 2), ("random:0.01", 13)])
def test_whole_random_counts_and_fractions_still_work(tiny_experiment, spec, n):
    assert len(tiny_experiment.forget_split(spec).forget_ids) == n


# ---------------------------------------------------------------------------------------------- data files
def _cifar10_folder(tmp_path, train_labels):
    """A CIFAR-10 python-format folder written here from the format's definition (pickled dicts)."""
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(labels):
        return {b"data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8), b"labels": labels}

    names = [f"c{i}".encode() for i in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch(train_labels)))
    (folder / "test_batch").write_bytes(pickle.dumps(batch([0, 1, 2])))
    return tmp_path


@pytest.mark.parametrize("labels", [[0.5, 1.0, 2.9], [0, 1, 2.5], ["0", "1", "2"], [True, False, True]])
def test_cifar_labels_that_are_not_integers_are_refused(tmp_path, labels):
    from oblivio.data import DatasetError, load_cifar10

    with pytest.raises(DatasetError, match="must hold integer class indices"):
        load_cifar10(_cifar10_folder(tmp_path, labels))


def test_cifar_integer_labels_still_load(tmp_path):
    from oblivio.data import load_cifar10

    splits = load_cifar10(_cifar10_folder(tmp_path, [0, 1, 2]))
    assert splits.train.labels.tolist() == [0, 1, 2] * 5
    splits = load_cifar10(_cifar10_folder(tmp_path / "b", [0.0, 1.0, 2.0]))  # whole numbers, as idx allows
    assert splits.train.labels.tolist() == [0, 1, 2] * 5


@pytest.mark.parametrize("which", ["train", "t10k"])
def test_an_idx_file_with_zero_images_is_refused(tmp_path, which):
    from oblivio.data import DatasetError, load_idx_dataset, write_idx

    root = tmp_path / "idx"
    root.mkdir()
    images = {"train": np.zeros((4, 4, 4), np.uint8), "t10k": np.zeros((3, 4, 4), np.uint8)}
    labels = {"train": np.array([0, 1, 0, 1], np.uint8), "t10k": np.array([0, 1, 1], np.uint8)}
    images[which], labels[which] = np.zeros((0, 4, 4), np.uint8), np.zeros(0, np.uint8)
    for split in ("train", "t10k"):
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images[split])
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels[split])
    with pytest.raises(DatasetError, match=f"{which}-images-idx3-ubyte.gz holds 0 images"):
        load_idx_dataset(root)


def test_an_empty_training_split_is_refused_whatever_the_loader():
    import torch

    from oblivio.data import DatasetError, DatasetSplits, ImageDataset

    empty = ImageDataset(torch.zeros(0, 1, 4, 4, dtype=torch.uint8), torch.zeros(0, dtype=torch.long), ("a", "b"))
    test = ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), ("a", "b"))
    with pytest.raises(DatasetError, match="training split holds 0 images"):
        DatasetSplits(empty, test)


# ---------------------------------------------------------------------------------------------- init --model-file
@pytest.mark.parametrize(
    "how, match", [("nan", "non-finite weights"), ("inf", "non-finite weights"), ("zero-std", "normalisation std")]
)
def test_init_refuses_a_model_file_with_unusable_weights(cli, make_service, tiny_experiment, tmp_path, how, match):
    import torch

    state = {k: v.clone() for k, v in tiny_experiment.original().state_dict().items()}
    if how == "nan":
        state["head.weight"][0, 0] = float("nan")
    elif how == "inf":
        state["body.0.bias"][0] = float("-inf")
    else:
        state["normalize.std"].zero_()
    path = tmp_path / "m.pt"
    torch.save(state, path)
    workdir = tmp_path / "wd"
    code, out, err = cli("request", "init", "--model-file", str(path), "--workdir", str(workdir))
    _one_line_error(code, err, match=match)
    assert "registered" not in out
    svc = make_service(workdir)
    assert svc.list_versions() == []  # no version 1: a later apply does not inherit a model that cannot work
    from oblivio.utils import CheckpointError

    with pytest.raises(CheckpointError, match=match):
        svc.init(model_file=path)


# ---------------------------------------------------------------------------------------------- "no change"
@pytest.mark.parametrize("method, unchanged", [("test-attack-noop", True), ("test-attack-sgd", False)])
def test_forget_says_no_change_and_records_it(cli, tmp_path, method, unchanged):
    out_json = tmp_path / "m.json"
    code, out, err = cli("forget", "--method", method, "--forget", "class-subset:3:5", "--json", str(out_json))
    assert code == 0, err
    said = [ln for ln in out.splitlines() if ln.startswith("WARNING: no change")]
    assert json.loads(out_json.read_text())["unchanged"] is unchanged
    if unchanged:
        text = " ".join(out.split())
        assert len(said) == 1 and "same weights as the original (5 of 5 forget samples predicted easy)" in text
    else:
        assert said == []
    assert max(len(line) for line in out.splitlines()) <= 120


@pytest.mark.parametrize(
    "argv", [("bench", "tmu-table1", "--classes", "0,１"), ("demo", "--count", "1_0"), ("demo", "--request-seed", "+1")]
)
def test_bench_and_demo_whole_numbers_take_ascii_digits_only(cli, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        cli(*argv)
    assert exc.value.code == 2 and "ASCII digits" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- duplicate keys
@pytest.mark.parametrize(
    "text, line",
    [
        ("method: finetune\nmethod: tmu\n", 2),
        ("method: finetune\nhparams:\n  epochs: 1\n  epochs: 5\n", 4),
        ('{"method": "finetune", "method": "tmu"}', 1),
    ],
)
def test_a_key_given_twice_in_a_config_file_is_refused(cli, tmp_path, text, line):
    """The last value silently won before (``method: tmu`` ran TMU though the file also said finetune)."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    code, _, err = cli("forget", "--config", str(path))
    _one_line_error(code, err, match=f"line {line}: the key")
    assert "given twice" in err


def test_a_key_given_twice_in_json_hparams_is_refused(cli, capsys):
    with pytest.raises(SystemExit) as exc:
        cli("forget", "--method", "finetune", "--hparams", '{"epochs": 1, "epochs": 5}')
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "'epochs' is given twice" in err


# ---------------------------------------------------------------------------------------------- amounts: ASCII
@pytest.mark.parametrize("spec", ["random:１０", "random:1_0", "random:٣", "random:0.1_5", "group-frac:0.0２"])
def test_amounts_take_ascii_digits_only(spec):
    """``random:１０`` and ``random:1_0`` forgot 10 samples (Python's float reads them); ids refuse that text."""
    with pytest.raises(ScenarioError, match="ASCII digits"):
        parse_scenario(spec)


@pytest.mark.parametrize("spec, amount", [("random:10", 10.0), ("random:0.1", 0.1), ("random:1e-2", 0.01)])
def test_ascii_amounts_still_parse(spec, amount):
    assert parse_scenario(spec).amount == amount
