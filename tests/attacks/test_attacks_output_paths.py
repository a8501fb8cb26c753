"""Issue 21, item 1: output paths. Nothing the CLI writes may replace a device, a FIFO, a socket or a directory, and
a path that cannot be written fails at once, before any training.

No test here ever replaces a real device: ``os.replace`` is guarded for the whole test (``guard_replace``), so that
even code that would replace ``/dev/full`` (the starting code did, as root) fails the test instead of doing it.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest
import torch

from oblivio.utils import atomic_torch_save, atomic_write_bytes, check_output_dir, check_output_file

DEVICE = "/dev/full"


@pytest.fixture(autouse=True)
def guard_replace(monkeypatch):
    """``os.replace`` onto anything but a regular file (or nothing) fails the test instead of happening."""
    real = os.replace

    def guarded(src, dst, *args, **kwargs):
        try:
            mode = os.stat(dst).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and not stat.S_ISREG(mode):
            raise AssertionError(f"test guard: {dst} (not a regular file) would have been replaced")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", guarded)


def _kind(path: Path) -> str:
    mode = os.lstat(path).st_mode
    return "fifo" if stat.S_ISFIFO(mode) else "dir" if stat.S_ISDIR(mode) else "chr" if stat.S_ISCHR(mode) else "?"


def _one_line(code, err, *words):
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("oblivio: error:")]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _bad_file_targets(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Output-file paths that must be refused, and a word the message must hold."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "folder").mkdir()
    (tmp_path / "a-file").write_text("mine")
    return {
        "fifo": (fifo, "FIFO"),
        "directory": (tmp_path / "folder", "directory"),
        "device": (Path(DEVICE), "character device"),
        "missing-folder": (tmp_path / "no" / "such" / "folder" / "m.pt", "does not exist"),
        "inside-a-file": (tmp_path / "a-file" / "m.pt", "not a folder"),
        "unwritable": (Path("/proc/oblivio-test.pt"), "cannot write"),  # refused even for root
    }


# ---------------------------------------------------------------------------------------------- forget / evaluate
@pytest.mark.parametrize("option", ["--out", "--json"])
@pytest.mark.parametrize("case", ["fifo", "directory", "device", "missing-folder", "inside-a-file", "unwritable"])
def test_forget_refuses_a_bad_output_before_training(cli, tmp_path, no_unlearning, option, case):
    target, word = _bad_file_targets(tmp_path)[case]
    code, _, err = cli("forget", "--method", "test-attack-sgd", "--forget", "class-subset:3:5", option, str(target))
    _one_line(code, err, option, word)
    if case in ("fifo", "directory"):
        assert _kind(target) == {"fifo": "fifo", "directory": "dir"}[case]
    assert (tmp_path / "a-file").read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder (the /proc case covers root)")
def test_forget_refuses_a_read_only_folder_before_training(cli, tmp_path, no_unlearning):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    code, _, err = cli(
        "forget", "--method", "test-attack-sgd", "--forget", "class-subset:3:5", "--out", str(ro / "m.pt")
    )
    _one_line(code, err, "--out", "cannot write")


def test_forget_writes_a_regular_file_and_overwrites_one(cli, tmp_path):
    """The check lets the ordinary cases through: a new file, an existing regular file (replaced atomically)."""
    out, js = tmp_path / "m.pt", tmp_path / "m.json"
    js.write_text("old")
    code, _, err = cli(
        "forget", "--method", "test-attack-sgd", "--forget", "class-subset:3:5", "--out", str(out), "--json", str(js)
    )
    assert code == 0, err
    assert isinstance(torch.load(out, weights_only=True), dict)
    assert json.loads(js.read_text())["method"] == "test-attack-sgd"


def test_evaluate_refuses_a_fifo_for_json_before_evaluating(cli, tmp_path, tiny_experiment, monkeypatch):
    import oblivio.metrics.report as report_module

    def evaluated(*args, **kwargs):
        raise AssertionError("the evaluation ran before the output path was checked")

    monkeypatch.setattr(report_module, "evaluate_unlearning", evaluated)
    model = tmp_path / "model.pt"
    torch.save(tiny_experiment.original().state_dict(), model)
    fifo = tmp_path / "metrics.json"
    os.mkfifo(fifo)
    code, _, err = cli("evaluate", "--model-file", str(model), "--forget", "class-subset:3:5", "--json", str(fifo))
    _one_line(code, err, "--json", "FIFO")
    assert _kind(fifo) == "fifo"


# ---------------------------------------------------------------------------------------------- output folders
@pytest.mark.parametrize("case", ["file", "device", "fifo-inside", "dir-inside"])
def test_bench_refuses_a_bad_out_folder_before_running(cli, tmp_path, monkeypatch, case):
    import oblivio.experiments.bench as bench_module

    def ran(*args, **kwargs):
        raise AssertionError("the benchmark ran before its --out folder was checked")

    monkeypatch.setattr(bench_module, "run_benchmark", ran)
    out = tmp_path / "out"
    if case == "file":
        out.write_text("mine")
    elif case == "device":
        out = Path(DEVICE)
    else:
        out.mkdir()
        if case == "fifo-inside":
            os.mkfifo(out / "results.jsonl")  # appending to it would block forever
        else:
            (out / "report.html").mkdir()
    code, _, err = cli("bench", "tmu-table1", "--out", str(out), "--classes", "3", "--count", "5")
    _one_line(code, err, "--out")
    if case == "file":
        assert out.read_text() == "mine"


def test_report_refuses_a_bad_file_in_its_folder_and_writes_nothing(cli, tmp_path):
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps({"status": "ok", "method": "x", "seed": 0}) + "\n")
    out = tmp_path / "rep"
    out.mkdir()
    (out / "report.html").mkdir()
    code, _, err = cli("report", str(results), "--out", str(out), "--no-plots", experiment=False)
    _one_line(code, err, "--out", "report.html", "directory")
    assert not (out / "report.md").exists()  # nothing half-written
    os.mkfifo(tmp_path / "fifo-out")
    code, _, err = cli("report", str(results), "--out", str(tmp_path / "fifo-out"), experiment=False)
    _one_line(code, err, "--out", "FIFO")


def test_request_report_refuses_a_fifo_where_the_report_goes(make_service, cli, tmp_path):
    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    svc.add_request([30], requester="alice")
    svc.apply()
    svc.close()
    out = tmp_path / "rep"
    out.mkdir()
    os.mkfifo(out / "report-v2.json")
    code, _, err = cli("request", "report", "--out", str(out), "--workdir", str(workdir))
    _one_line(code, err, "--out", "report-v2.json", "FIFO")
    assert _kind(out / "report-v2.json") == "fifo" and not (out / "report-v2.html").exists()
    code, _, err = cli("request", "report", "--out", DEVICE, "--workdir", str(workdir))
    _one_line(code, err, "--out", "character device")


def test_store_must_be_a_folder(cli, tmp_path):
    (tmp_path / "store-file").write_text("mine")
    code, _, err = cli("train", "--preset", "tiny", "--store", str(tmp_path / "store-file"), experiment=False)
    _one_line(code, err, "--store", "not a folder")
    assert (tmp_path / "store-file").read_text() == "mine"


# ---------------------------------------------------------------------------------------------- the writers themselves
def _socket_at(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    return sock


@pytest.mark.parametrize("kind", ["fifo", "directory", "socket", "device"])
@pytest.mark.parametrize("writer", ["bytes", "torch"])
def test_atomic_writers_refuse_a_non_regular_target(tmp_path, kind, writer):
    sock = None
    if kind == "fifo":
        target = tmp_path / "t"
        os.mkfifo(target)
    elif kind == "directory":
        target = tmp_path / "t"
        target.mkdir()
    elif kind == "socket":
        target = tmp_path / "t"
        sock = _socket_at(target)
    else:
        target = Path(DEVICE)
    before = os.lstat(target)
    try:
        with pytest.raises(FileExistsError, match="not a regular file"):
            if writer == "bytes":
                atomic_write_bytes(target, b"data")
            else:
                atomic_torch_save({"w": torch.ones(1)}, target)
    finally:
        if sock is not None:
            sock.close()
    after = os.lstat(target)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert not [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]  # no temp file left


def test_the_checks_accept_what_is_fine(tmp_path):
    (tmp_path / "old.pt").write_bytes(b"x")
    assert check_output_file(tmp_path / "new.pt") == tmp_path / "new.pt"
    assert check_output_file(tmp_path / "old.pt") == tmp_path / "old.pt"
    assert check_output_dir(tmp_path / "a" / "b" / "c") == tmp_path / "a" / "b" / "c"  # created when written
    assert not (tmp_path / "a").exists()  # the check creates nothing
    assert check_output_dir(tmp_path, files=("old.pt", "missing.md")) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.pt"]  # the writability probe left nothing


def test_the_checks_refuse_a_socket(tmp_path):
    sock = _socket_at(tmp_path / "s")
    try:
        with pytest.raises(ValueError, match="is a socket, not a regular file"):
            check_output_file(tmp_path / "s", option="--out")
        with pytest.raises(ValueError, match="is a socket, not a folder"):
            check_output_dir(tmp_path / "s", option="--out")
    finally:
        sock.close()


def test_a_full_disk_in_torch_save_is_an_os_error(tmp_path):
    """torch's zip writer turns a failed write into a RuntimeError; the atomic writer gives the OSError back (so the
    CLI says "File too large" / "No space left on device" in one line). The file-size limit is set in a child."""
    import subprocess
    import sys

    code = (
        "import resource, errno, torch\n"
        "from oblivio.utils import atomic_torch_save\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))\n"
        "try:\n"
        f"    atomic_torch_save({{'w': torch.zeros(10000)}}, {str(tmp_path / 'm.pt')!r})\n"
        "except OSError as exc:\n"
        "    print('OSError', exc.errno == errno.EFBIG)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "OSError True", proc.stderr[-2000:]
    assert not (tmp_path / "m.pt").exists() and not list(tmp_path.iterdir())


def test_the_docstring_examples_run():
    import doctest

    import oblivio.utils

    result = doctest.testmod(oblivio.utils, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3 and result.failed == 0


# ---------------------------------------------------------------------------------------------- ledger files
@pytest.mark.sqlite_only("the victim is the SQLite ledger file itself")
@pytest.mark.parametrize("case", ["ledger-db", "renamed-db", "model-file", "new-in-models"])
@pytest.mark.parametrize("option", ["--out", "--json"])
def test_forget_never_writes_over_a_ledger(make_service, cli, tmp_path, no_unlearning, case, option):
    """``forget --out WORKDIR/ledger.db`` replaced the ledger's database with a model checkpoint (exit 0, every
    request lost). An existing SQLite database (found by its header, whatever its name) and anything in a ledger's
    ``models/`` folder are refused before the run, and the ledger still reads."""
    import shutil

    workdir = tmp_path / "wd"
    svc = make_service(workdir)
    version = svc.init()
    svc.add_request([30], requester="alice")
    svc.close()
    db = workdir / "ledger.db"
    targets = {
        "ledger-db": (db, "SQLite database"),
        "renamed-db": (tmp_path / "backup.pt", "SQLite database"),
        "model-file": (workdir / version.path, "models folder of the ledger"),
        "new-in-models": (workdir / "models" / "mine.pt", "models folder of the ledger"),
    }
    target, word = targets[case]
    if case == "renamed-db":
        shutil.copy(db, target)
    before = target.read_bytes() if target.exists() else None
    code, _, err = cli("forget", "--method", "test-attack-sgd", "--forget", "class-subset:3:5", option, str(target))
    _one_line(code, err, option, word)
    assert (target.read_bytes() if target.exists() else None) == before
    svc = make_service(workdir)
    assert [r.status for r in svc.list_requests()] == ["pending"] and len(svc.list_versions()) == 1
    code, _, err = cli("request", "report", "--out", str(workdir / "models"), "--workdir", str(workdir))
    _one_line(code, err, "--out", "models folder of the ledger")


def test_a_plain_models_folder_elsewhere_is_fine(tmp_path):
    (tmp_path / "models").mkdir()
    assert check_output_file(tmp_path / "models" / "m.pt", option="--out") == tmp_path / "models" / "m.pt"
