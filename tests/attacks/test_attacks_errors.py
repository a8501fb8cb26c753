"""Tracebacks become one-line errors naming the problem and the fix (issue 21, item 4).

Each input here ended in a Python traceback (or in a one-line message that named neither the problem nor the fix).
Now each gives exactly one ``oblivio: error: ...`` line, exit code 2, and nothing is recorded, trained or written.
"""

from __future__ import annotations

import os
import sqlite3

import pytest

from oblivio.ledger import LedgerError


def _one_line_error(code, err, *, match):
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("oblivio: error:")]
    assert len(lines) == 1, err
    assert any(m in lines[0] for m in match.split("|")), lines[0]


def _argparse_error(cli, capsys, *argv, match):
    """An option refused by its argparse type: exit code 2, argparse's usage line and the reason, no traceback."""
    with pytest.raises(SystemExit) as exc:
        cli(*argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err, err
    assert match in err, err
    return err


# ---------------------------------------------------------------------------------------------- seeds, leases
@pytest.mark.parametrize(
    "seed, match", [(str(2**70), "0..4294967295"), ("4294967296", "0..4294967295"), ("-1", "ASCII")]
)
def test_a_run_seed_out_of_range(cli, capsys, tmp_path, seed, match):
    _argparse_error(cli, capsys, "request", "apply", "--run-seed", seed, "--workdir", str(tmp_path / "wd"), match=match)
    assert not (tmp_path / "wd").exists()


def test_a_run_seed_out_of_range_from_python(make_service):
    svc = make_service()
    svc.add_request([30], requester="alice")
    with pytest.raises(ValueError, match=r"run seed .* 0\.\.4294967295"):
        svc.apply(seed=2**70)
    assert [r.status for r in svc.list_requests()] == ["pending"] and svc.list_runs() == []


@pytest.mark.parametrize("command", ["train", "forget"])
def test_a_training_seed_out_of_range(cli, capsys, command):
    _argparse_error(cli, capsys, command, "--seed", str(2**70), match="0..4294967295")


def test_a_training_seed_out_of_range_from_python():
    from oblivio.experiments import get_preset

    with pytest.raises(ValueError, match=r"training seed .* 0\.\.4294967295"):
        get_preset("tiny").replace(seed=2**70)
    with pytest.raises(ValueError, match="training seed"):
        get_preset("tiny").replace(seed=-1)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-5", "abc"])
def test_lease_seconds_must_be_finite_and_positive(cli, capsys, tmp_path, value):
    _argparse_error(
        cli, capsys, "request", "apply", "--lease-seconds", value, "--workdir", str(tmp_path / "wd"), match="seconds"
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0])
def test_lease_seconds_must_be_finite_and_positive_from_python(make_service, value):
    with pytest.raises(ValueError, match="lease_seconds must be a finite number of seconds > 0"):
        make_service(lease_seconds=value)


@pytest.mark.parametrize("value", ["1e300", "604801"])
def test_a_lease_beyond_a_week_is_one_line(cli, make_service, tmp_path, value):
    """``--lease-seconds 1e300`` passed the finite check and overflowed ``timedelta`` (an ``OverflowError``
    traceback); now one line, and nothing is recorded."""
    workdir = tmp_path / "wd"
    code, _, err = cli("request", "apply", "--lease-seconds", value, "--workdir", str(workdir))
    _one_line_error(code, err, match="lease_seconds must be at most 604800")
    with pytest.raises(ValueError, match="at most 604800"):
        make_service(tmp_path / "wd2", lease_seconds=float(value))


@pytest.mark.parametrize("request_id", [str(2**31), str(2**63), "99999999999999999999999"])
def test_cancel_an_id_beyond_the_databases_integers(cli, make_service, tmp_path, request_id):
    """``request cancel 99999999999999999999999`` was an ``OverflowError`` traceback (SQLite) or a database error
    (PostgreSQL's 32-bit ids); now "no request #..." like any other unknown id, and nothing changes."""
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.add_request([3], requester="alice")
    code, _, err = cli("request", "cancel", request_id, "--by", "dpo", "--workdir", str(workdir))
    _one_line_error(code, err, match=f"no request #{request_id}")
    with pytest.raises(LedgerError, match=f"no request #{request_id}"):
        svc.cancel_request(int(request_id), by="dpo")
    assert [r.status for r in svc.list_requests()] == ["pending"]


# ---------------------------------------------------------------------------------------------- the workdir
def test_a_symlink_loop_workdir(cli, tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    code, _, err = cli("request", "list", "--workdir", str(tmp_path / "a"))
    _one_line_error(code, err, match="symbolic link loop")


def test_a_workdir_that_cannot_be_created(cli, tmp_path, monkeypatch):
    from pathlib import Path

    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):  # what a read-only parent folder does for a user who is not root
        if str(self).startswith(str(tmp_path / "ro")):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, _, err = cli("request", "list", "--workdir", str(tmp_path / "ro" / "ledger"))
    _one_line_error(code, err, match="permission denied; give a --workdir you can write to")


@pytest.mark.sqlite_only("opens the SQLite ledger file read-only (mode=ro); PostgreSQL has no file")
def test_a_read_only_ledger_says_so(cli, make_service, tmp_path):
    workdir = tmp_path / "wd"
    make_service(workdir).close()
    # SQLite opened read-only: the same refusal a read-only folder or file gives (and it holds even for root)
    url = f"sqlite:///file:{workdir / 'ledger.db'}?mode=ro&uri=true"
    code, out, err = cli("request", "add", "--ids", "5", "--requester", "a", "--workdir", str(workdir), "--db-url", url)
    _one_line_error(code, err, match="read-only: make both writable, or give another --workdir")
    assert "recorded" not in out


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_workdir_for_a_real_user(cli, make_service, tmp_path):
    workdir = tmp_path / "wd"
    make_service(workdir).close()
    os.chmod(workdir, 0o500)
    try:
        code, _, err = cli("request", "add", "--ids", "5", "--requester", "a", "--workdir", str(workdir))
        _one_line_error(code, err, match="read-only|cannot be opened|permission")
    finally:
        os.chmod(workdir, 0o700)


# ---------------------------------------------------------------------------------------------- damaged ledger rows
@pytest.mark.sqlite_only("damages the SQLite file with sqlite3 (PostgreSQL's JSON columns refuse invalid JSON)")
@pytest.mark.parametrize("value", ["not json", "null", '{"a": 1}', "[1.5]", '["x"]', "[true]", "[30, 2.0]"])
def test_corrupt_forgotten_ids_name_the_row(make_service, cli, tmp_path, value):
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.add_request([30], requester="alice")
    svc.apply()
    svc.add_request([31], requester="bob")
    with sqlite3.connect(workdir / "ledger.db") as con:
        con.execute("UPDATE model_versions SET forgotten_ids = ? WHERE id = 2", (value,))
    con.close()
    for action in (svc.list_versions, svc.report, lambda: svc.add_request([32], requester="carol"), svc.apply):
        with pytest.raises(LedgerError, match="model_versions row 2, column forgotten_ids"):
            action()
    assert [r.status for r in svc.list_requests()] == ["applied", "pending"]  # nothing applied, nothing added
    for argv in (("list",), ("report", "--out", str(tmp_path / "rep"))):
        code, _, err = cli("request", *argv, "--workdir", str(workdir))
        _one_line_error(code, err, match="restore the database from a backup")


@pytest.mark.sqlite_only("damages the SQLite file with sqlite3 (PostgreSQL's JSON columns refuse invalid JSON)")
@pytest.mark.parametrize(
    "table, column, value", [("deletion_requests", "sample_ids", "[31.5]"), ("unlearning_runs", "hparams", "[1]")]
)
def test_other_corrupt_json_columns_name_the_row(make_service, tmp_path, table, column, value):
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.add_request([30], requester="alice")
    svc.apply()
    with sqlite3.connect(workdir / "ledger.db") as con:
        con.execute(f"UPDATE {table} SET {column} = ? WHERE id = 1", (value,))
    con.close()
    with pytest.raises(LedgerError, match=f"{table} row 1, column {column}"):
        svc.list_requests() if table == "deletion_requests" else svc.list_runs()


# ---------------------------------------------------------------------------------------------- datasets, models
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "svhn", "npz", "image-folder", "mnist-idx"])
def test_a_file_dataset_without_data_root(cli, dataset):
    code, _, err = cli("train", "--dataset", dataset)
    _one_line_error(code, err, match="--data-root PATH")


def test_the_arrays_dataset_on_the_command_line(cli):
    code, _, err = cli("train", "--dataset", "arrays")
    _one_line_error(code, err, match="--dataset npz --data-root FILE.npz")


def test_an_unknown_dataset_option_from_python():
    from oblivio.data import DatasetError, load_dataset

    with pytest.raises(DatasetError, match="dataset 'digits' has no option"):
        load_dataset("digits", rooot="/data")


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize(
    "options, match",
    [
        ('{"width": -1}', "negative dimension"),
        ('{"width": 0}', "empty layers"),
        ('{"width": "8"}', "cannot be built"),
        ('{"wdith": 4}', "has no option(s) wdith"),
    ],
)
def test_bad_model_options(cli, options, match):
    code, _, err = cli("train", "--model-options", options)
    _one_line_error(code, err, match=match)
    assert "its options: width, hidden" in err


@pytest.mark.parametrize("options", ["[1]", '"abc"', "5", "{bad json"])
def test_model_options_must_be_a_json_object(cli, capsys, options):
    _argparse_error(cli, capsys, "train", "--model-options", options, match="--model-options")


@pytest.mark.parametrize(
    "device, match",
    [("quantum", "unknown device 'quantum'"), ("meta", "holds no data"), ("lazy", "not supported by oblivio")],
)
def test_bad_devices(cli, tmp_path, device, match):
    code, _, err = cli("train", "--preset", "tiny", "--store", str(tmp_path), "--device", device, experiment=False)
    _one_line_error(code, err, match=match)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda(cli, tmp_path, device):
    code, _, err = cli("train", "--preset", "tiny", "--store", str(tmp_path), "--device", device, experiment=False)
    _one_line_error(code, err, match="is_available() is False")


# ---------------------------------------------------------------------------------------------- hparams, --import
@pytest.mark.parametrize("hparams", ['"abc"', "[1]", "3", "null"])
@pytest.mark.parametrize("command", [("forget", "--method", "test-attack-sgd"), ("request", "apply")])
def test_hparams_must_be_a_json_object(cli, capsys, tmp_path, command, hparams):
    extra = ("--workdir", str(tmp_path / "wd")) if command[0] == "request" else ()
    _argparse_error(cli, capsys, *command, "--hparams", hparams, *extra, match="expected a JSON object")


@pytest.mark.parametrize(
    "method, hparams, match",
    [
        ("tmu", '{"epochs": 1e999}', "epochs must be an integer, got inf"),
        ("tmu", '{"lr": 1e999}', "lr must be a finite number, got inf"),
        ("tmu", '{"twin_size": "x"}', "twin_size must be an integer or null, got 'x'"),
        ("tmu", '{"n_twins": null}', "n_twins must be an integer, got None"),
        ("tmu", '{"epochs": true}', "epochs must be an integer, got True"),
        ("tmu", '{"features": "nf"}', "features must be a list of a string, got 'nf'"),
        ("retrain", '{"recipe": 1}', "recipe must be a string or a Recipe, got 1"),
        ("finetune", '{"optimizer": 1}', "optimizer must be one of 'sgd', 'adam', got 1"),
    ],
)
@pytest.mark.parametrize("command", ["forget", "request"])
def test_hparams_of_the_wrong_type_are_one_line(cli, tmp_path, monkeypatch, command, method, hparams, match):
    """A number too large for a float (``1e999``), a string where a count goes, ``null``, a bool, an int for a
    recipe: a ``TypeError``/``AttributeError``/``OverflowError`` traceback from inside the method before; now one
    line naming the hyper-parameter, the type it must have and the value, before any training."""
    from oblivio.methods import base

    monkeypatch.setattr(base.UnlearningMethod, "__call__", lambda *a, **k: pytest.fail("trained"))
    if command == "forget":
        code, _, err = cli("forget", "--method", method, "--hparams", hparams)
    else:
        code, _, err = cli(
            "request", "apply", "--workdir", str(tmp_path / "wd"), "--method", method, "--hparams", hparams
        )
    _one_line_error(code, err, match=f"{method}: hyper-parameter {match}")


def test_hparams_list_in_a_config_file(cli, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("method: test-attack-sgd\nhparams: [1, 2]\n")
    code, _, err = cli("forget", "--config", str(config))
    _one_line_error(code, err, match="a value does not fit its option")
    assert "expected a JSON object" in err


@pytest.mark.parametrize(
    "source, match",
    [
        (
            "raise RuntimeError('boom')\n",
            "importing it raised RuntimeError: boom (",
        ),
        ("def f(:\n", "syntax error in "),
        ("x = 1 / 0\n", "ZeroDivisionError"),
        ("import oblivio_no_such_package_xyz\n", "failed to import 'oblivio_no_such_package_xyz'"),
    ],
)
def test_an_import_module_that_fails(cli, tmp_path, monkeypatch, source, match):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"usermod_{abs(hash(source)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(source)
    code, _, err = cli("train", "--import", name)
    _one_line_error(code, err, match=match)
    assert f"--import {name}" in err


# ---------------------------------------------------------------------------------------------- model files
def _tiny_state(tiny_experiment, how):
    import torch

    state = {k: v.clone() for k, v in tiny_experiment.original().state_dict().items()}
    if how == "nan":
        state["head.weight"][0, 0] = float("nan")
    elif how == "inf":
        state["body.0.bias"][0] = float("inf")
    elif how == "zero-std":
        state["normalize.std"].zero_()
    elif how == "huge-mean":  # every weight finite, every output -inf: (x - 1e38) / std overflows float32
        state["normalize.mean"].fill_(1e38)
    return state, torch


@pytest.mark.parametrize("command", ["init", "evaluate", "forget", "unlearn"])
def test_a_model_with_finite_weights_but_non_finite_outputs(cli, make_service, tiny_experiment, tmp_path, command):
    """A normalisation mean of 1e38: the weights are finite, so the weight check passed, and ``request init``
    registered it, ``evaluate`` scored it and ``forget`` unlearned it with nonsense. Now the outputs on one batch of
    real images are checked first: one line, nothing registered, nothing trained."""
    import oblivio
    from oblivio.methods import base

    state, torch = _tiny_state(tiny_experiment, "huge-mean")
    path = tmp_path / "m.pt"
    torch.save(state, path)
    workdir = tmp_path / "wd"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(base.UnlearningMethod, "_unlearn", lambda *a, **k: pytest.fail("trained"))
        if command == "unlearn":
            model = tiny_experiment.build_model()
            model.load_state_dict(state)
            train = tiny_experiment.data.train
            with pytest.raises(base.UnlearningError, match="outputs on a batch of .* not finite"):
                oblivio.unlearn(
                    model,
                    forget=train.subset(torch.arange(5)),
                    retain=train.subset(torch.arange(5, 50)),
                    method="test-attack-sgd",
                )
            return
        if command == "init":
            code, _, err = cli("request", "init", "--model-file", str(path), "--workdir", str(workdir))
        else:
            extra = ("--method", "test-attack-sgd") if command == "forget" else ()
            code, _, err = cli(command, "--model-file", str(path), "--forget", "class-subset:3:5", *extra)
    _one_line_error(code, err, match="outputs on 4 real images are not finite")
    if command == "init":
        assert make_service(workdir).list_versions() == []


@pytest.mark.parametrize(
    "how, match", [("nan", "non-finite weights"), ("inf", "non-finite weights"), ("zero-std", "normalisation std")]
)
def test_evaluate_a_model_file_with_unusable_weights(cli, tiny_experiment, tmp_path, how, match):
    state, torch = _tiny_state(tiny_experiment, how)
    path = tmp_path / "m.pt"
    torch.save(state, path)
    code, _, err = cli("evaluate", "--model-file", str(path), "--forget", "class-subset:3:5")
    _one_line_error(code, err, match=match)
    assert "SVC" not in err


@pytest.mark.parametrize("kind", ["FIFO", "character device", "directory"])
@pytest.mark.parametrize("command", ["evaluate", "init"])
def test_a_model_file_that_is_not_a_regular_file(cli, make_service, tmp_path, kind, command):
    """``--model-file`` naming a FIFO, ``/dev/zero`` or a folder said "does not exist"; now it says what it is,
    without opening it (a FIFO would block), and nothing is registered."""
    if kind == "FIFO":
        path = tmp_path / "m.pt"
        os.mkfifo(path)
    elif kind == "character device":
        path = "/dev/zero"
    else:
        path = tmp_path / "m.pt"
        path.mkdir()
    workdir = tmp_path / "wd"
    if command == "evaluate":
        code, _, err = cli("evaluate", "--model-file", str(path), "--forget", "class-subset:3:5")
    else:
        code, _, err = cli("request", "init", "--model-file", str(path), "--workdir", str(workdir))
    _one_line_error(code, err, match=f"is not a regular file: it is a {kind}")
    assert "does not exist" not in err
    if command == "init":
        assert make_service(workdir).list_versions() == []


# ---------------------------------------------------------------------------------------------- id files
@pytest.mark.parametrize("kind, match", [("fifo", "named pipe"), ("device", "is a device"), ("folder", "is a folder")])
def test_an_id_file_that_is_not_a_regular_file(cli, make_service, tmp_path, kind, match):
    if kind == "fifo":
        path = tmp_path / "ids.txt"
        os.mkfifo(path)
    elif kind == "device":
        path = "/dev/zero"
    else:
        path = tmp_path / "ids.txt"
        path.mkdir()
    workdir = tmp_path / "wd"
    code, out, err = cli("request", "add", "--file", str(path), "--requester", "a", "--workdir", str(workdir))
    _one_line_error(code, err, match=match)
    assert "does not exist" not in err
    assert [r.id for r in make_service(workdir).list_requests()] == []


# ---------------------------------------------------------------------------------------------- Ctrl-C
def _register_interrupting_method():
    from dataclasses import dataclass

    from oblivio.methods import METHODS, UnlearningMethod, register_method

    if "test-attack-interrupt" not in METHODS:

        @register_method("test-attack-interrupt")
        @dataclass(kw_only=True)
        class Interrupted(UnlearningMethod):
            """Ctrl-C in the middle of an unlearning run."""

            def _unlearn(self, model, data, *, seed, progress):
                raise KeyboardInterrupt


def test_ctrl_c_in_apply_says_what_apply_does_and_it_is_true(cli, make_service, tmp_path):
    _register_interrupting_method()
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.add_request([30], requester="alice")
    svc.apply()  # version 2, committed before the interrupted apply
    svc.add_request([31, 32], requester="bob")
    code, _, err = cli("request", "apply", "--method", "test-attack-interrupt", "--workdir", str(workdir))
    assert code == 130 and "Traceback" not in err
    line = [ln for ln in err.splitlines() if ln.startswith("oblivio: interrupted")]
    assert len(line) == 1 and "finished epochs are saved" not in line[0]
    assert "recorded as failed" in line[0] and "its requests stay open" in line[0]
    assert "serves them again from the start" in line[0] and "Runs that committed before are kept" in line[0]
    # ... and each clause holds: the run failed, no version and no file were made, the request is open ...
    runs = svc.list_runs()
    assert [r.status for r in runs] == ["succeeded", "failed"] and "KeyboardInterrupt" in runs[-1].error
    assert [v.id for v in svc.list_versions()] == [1, 2] and svc.current_version().id == 2
    on_disk = {p.name for p in (workdir / "models").iterdir()}
    assert on_disk == {os.path.basename(v.path) for v in svc.list_versions()}  # no partial model kept
    assert [r.status for r in svc.list_requests()] == ["applied", "failed"]
    assert svc.ledger.lease_info().holder is None  # the lease was released
    # ... and the next apply serves it again, from the start
    result = svc.apply()
    assert result.status == "succeeded" and result.runs[0].request_ids == (2,)
    assert [r.status for r in svc.list_requests()] == ["applied", "applied"]


def test_ctrl_c_in_forget_does_not_promise_a_resume(cli):
    _register_interrupting_method()
    code, _, err = cli("forget", "--method", "test-attack-interrupt", "--forget", "class-subset:3:5")
    assert code == 130 and "Traceback" not in err
    assert "an unlearning run or an evaluation that was cut off is not resumed" in err


def test_ctrl_c_in_training_resumes_from_the_last_finished_epoch(cli, tmp_path, monkeypatch):
    """The sentence train prints after Ctrl-C, checked: the rerun resumes after the last finished epoch."""
    import torch

    from oblivio.experiments import Experiment

    steps = {"n": 0}
    real_step = torch.optim.SGD.step

    def step(self, *args, **kwargs):  # Ctrl-C in the middle of the second epoch (22 steps per epoch here)
        steps["n"] += 1
        if steps["n"] == 30:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    store = tmp_path / "store"
    argv = ("train", "--preset", "tiny", "--store", str(store), "--device", "cpu", "--no-progress")
    code, _, err = cli(*argv, experiment=False)
    assert code == 130 and "resumes from its last finished epoch when you rerun the command" in err
    monkeypatch.setattr(torch.optim.SGD, "step", real_step)
    code, _, err = cli(*argv, experiment=False)
    assert code == 0, err
    meta = Experiment("tiny", store=store, device="cpu", progress=False).original_with_meta().meta
    assert meta["resumed_from"] == 1 and meta["epochs"] == 3
