"""Issue 21, item 3: denial of service from small inputs. A ~300-byte YAML config of nested aliases (a "billion
laughs") and a .npy file whose header claims 1e13 ids are refused at once, with one line, before anything grows.

The YAML case runs in a child process under a memory limit (its address space capped at what it has after the
imports plus 1 GiB), so that a regression fails with a MemoryError in seconds instead of eating the machine's memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from oblivio.scenarios import ScenarioError, read_indices_file

NAMES = "abcdefghi"
LAUGHS = ["&a [" + ",".join(["lol"] * 9) + "]"] + [
    f"&{NAMES[i]} [" + ",".join([f"*{NAMES[i - 1]}"] * 9) + "]" for i in range(1, 9)
]
"""Nine lists of nine: 9**9 (387 million) strings once every alias is expanded, in about 300 bytes (the issue's
file was 315 bytes and used 7.4 GB before a MemoryError)."""


def _bomb(key: str) -> str:
    if key == "methods":  # a list of nested lists
        return "methods: [" + ", ".join(LAUGHS) + "]\n"
    return "hparams: {" + ", ".join(f"k{i}: {item}" for i, item in enumerate(LAUGHS)) + "}\n"


CHILD = textwrap.dedent(
    """
    import contextlib, io, json, resource, sys, time
    from oblivio.cli import build_parser, main

    build_parser()  # imports every command's module: not what is timed

    def vm_bytes():
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))

    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    soft = vm_bytes() + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    argv = json.loads(sys.argv[1])
    with contextlib.redirect_stderr(io.StringIO()):  # the error path's imports, once: not what is timed either
        main([*argv[:-1], sys.argv[2]])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    err = io.StringIO()
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stderr(err):
            code = main(argv)
    except MemoryError:
        code = "MemoryError"
    seconds = time.perf_counter() - t0
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"code": code, "stderr": err.getvalue(), "seconds": seconds, "grown_kib": grown_kib}))
    """
)
"""``oblivio ARGV`` in-process in a child whose address space is capped at its size after the imports + 1 GiB."""


def test_the_bombs_are_small():
    assert len(_bomb("methods").encode()) < 360 and len(_bomb("hparams").encode()) < 360


@pytest.mark.parametrize("command, key", [("bench", "methods"), ("forget", "hparams")])
def test_yaml_aliases_are_refused_before_anything_grows(tmp_path, command, key):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(key))
    argv = [command, *(["tmu-table1"] if command == "bench" else []), "--config", str(path)]
    (tmp_path / "one-anchor.yaml").write_text("seeds: &n 1\n")
    child = [sys.executable, "-c", CHILD, json.dumps(argv), str(tmp_path / "one-anchor.yaml")]
    proc = subprocess.run(child, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    lines = [ln for ln in result["stderr"].splitlines() if ln.startswith("oblivio: error:")]
    assert result["code"] == 2 and len(lines) == 1 and "Traceback" not in result["stderr"], result
    assert "line 1: YAML anchors and aliases" in lines[0], result
    assert result["seconds"] < 0.5, result
    assert result["grown_kib"] < 20 * 1024, result  # no memory growth to speak of


def test_one_alias_is_enough_to_refuse_and_plain_configs_still_load(tmp_path):
    from oblivio.cli.common import load_config

    (tmp_path / "anchor.yaml").write_text("seeds: &n 3\n")
    with pytest.raises(ValueError, match="line 1: YAML anchors and aliases"):
        load_config(tmp_path / "anchor.yaml")
    (tmp_path / "merge.yaml").write_text("base: &b {epochs: 1}\nhparams:\n  <<: *b\n")
    with pytest.raises(ValueError, match="anchors and aliases"):
        load_config(tmp_path / "merge.yaml")
    (tmp_path / "ok.yaml").write_text("seeds: 3\nmethods: [finetune, {name: tmu, hparams: {epochs: 2}}]\n")
    assert load_config(tmp_path / "ok.yaml") == {
        "seeds": 3,
        "methods": ["finetune", {"name": "tmu", "hparams": {"epochs": 2}}],
    }


def test_a_huge_config_file_is_refused_unread(tmp_path):
    from oblivio.cli.common import MAX_CONFIG_BYTES, load_config

    path = tmp_path / "big.yaml"
    path.write_text("seeds: 3\n" + "#" * MAX_CONFIG_BYTES)
    with pytest.raises(ValueError, match="at most"):
        load_config(path)


# ---------------------------------------------------------------------------------------------- deep nesting
DEEP_CONFIGS = {
    "yaml-flow-lists": "method: finetune\nhparams: " + "[" * 2000 + "]" * 2000 + "\n",
    "yaml-flow-maps": "method: finetune\nhparams: " + "{a: " * 2000 + "1" + "}" * 2000 + "\n",
    "json-lists": '{"method": "finetune", "hparams": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "just-too-deep": "method: finetune\nhparams: {a: " + "[" * 40 + "]" * 40 + "}\n",
}


@pytest.mark.parametrize("case", sorted(DEEP_CONFIGS))
def test_a_deeply_nested_config_file_is_one_line(cli, tmp_path, case):
    """A RecursionError traceback from the YAML parser before (2000 ``[``); now one line, before anything runs."""
    path = tmp_path / "deep.yaml"
    path.write_text(DEEP_CONFIGS[case])
    code, out, err = cli("forget", "--config", str(path))
    lines = [ln for ln in err.splitlines() if ln.startswith("oblivio: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "nested too deeply" in lines[0]


@pytest.mark.parametrize("option", ["--hparams", "--model-options"])
@pytest.mark.parametrize("opener, closer", [("[", "]"), ('{"a": ', "}")])
def test_a_deeply_nested_json_option_is_one_line(cli, capsys, option, opener, closer):
    """``--hparams '[[[...'`` 100k deep: a RecursionError traceback from json before; now argparse's one line."""
    with pytest.raises(SystemExit) as exc:
        cli("forget", option, opener * 100_000 + "1" * (opener == '{"a": ') + closer * 100_000)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "nested too deeply" in err and "Traceback" not in err


def test_bench_methods_json_nested_too_deeply(cli, tmp_path):
    code, _, err = cli("bench", "tmu-table4", "--out", str(tmp_path / "b"), "--methods", "[" * 100_000)
    lines = [ln for ln in err.splitlines() if ln.startswith("oblivio: error:")]
    assert code == 2 and len(lines) == 1 and "--methods is nested too deeply" in lines[0], err


def test_nesting_up_to_the_limit_still_loads(tmp_path):
    from oblivio.cli.common import MAX_NESTING, load_config

    path = tmp_path / "ok.yaml"
    path.write_text("hparams: " + "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1) + "\n")
    assert load_config(path)["hparams"] is not None


# ---------------------------------------------------------------------------------------------- .npy headers
def _npy(tmp_path, header: dict, data: bytes, *, version: tuple[int, int] = (1, 0), name: str = "ids.npy"):
    """A .npy file with the given header dict and data bytes, written by hand (numpy would refuse to lie)."""
    from numpy.lib import format as npy_format

    path = tmp_path / name
    with open(path, "wb") as fh:
        fh.write(npy_format.magic(*version))
        text = repr(header).encode("latin1")
        length_bytes = 2 if version == (1, 0) else 4
        pad = -(len(npy_format.MAGIC_PREFIX) + 2 + length_bytes + len(text) + 1) % 64
        text += b" " * pad + b"\n"
        fh.write(len(text).to_bytes(length_bytes, "little"))
        fh.write(text)
        fh.write(data)
    return path


def test_a_header_claiming_1e13_ids_is_refused_at_once(tmp_path):
    path = _npy(tmp_path, {"descr": "<i8", "fortran_order": False, "shape": (10**13,)}, np.arange(3).tobytes())
    assert path.stat().st_size < 200
    with pytest.raises(ScenarioError, match="announces 10000000000000 ids .* 24 bytes follow"):
        read_indices_file(path)


def test_a_header_claiming_1e13_ids_through_the_ledger_and_the_cli(make_service, cli, tmp_path):
    path = _npy(tmp_path, {"descr": "<i8", "fortran_order": False, "shape": (10**13,)}, np.arange(3).tobytes())
    svc = make_service(tmp_path / "wd")
    with pytest.raises(ScenarioError, match="header announces"):
        svc.add_request(path, requester="mallory")
    assert svc.list_requests() == []
    svc.close()
    code, _, err = cli(
        "request", "add", "--file", str(path), "--requester", "mallory", "--workdir", str(tmp_path / "wd")
    )
    lines = [ln for ln in err.splitlines() if ln.startswith("oblivio: error:")]
    assert code == 2 and len(lines) == 1 and "header announces" in lines[0] and "Traceback" not in err


def test_the_indices_scenario_reads_the_header_first(tiny_experiment, tmp_path):
    path = _npy(tmp_path, {"descr": "<u4", "fortran_order": False, "shape": (10**13,)}, b"\0" * 8)
    with pytest.raises(ScenarioError, match="header announces"):
        tiny_experiment.unlearning_splits(f"indices:{path}")


@pytest.mark.parametrize(
    "header, data, match",
    [
        ({"descr": "|O", "fortran_order": False, "shape": (2,)}, b"\x80\x04K\x01.", "must be integers"),
        ({"descr": "<i8", "fortran_order": False, "shape": (2,)}, np.arange(3).tobytes(), "3 ids|24 bytes follow"),
        ({"descr": "<i8", "fortran_order": False, "shape": (4,)}, np.arange(3).tobytes(), "truncated or forged"),
        ({"descr": "<f8", "fortran_order": False, "shape": (10**13,)}, b"", "must be integers"),
        ({"descr": "<i8", "fortran_order": False, "shape": (10**6, 10**7)}, b"", "one-dimensional"),
    ],
)
def test_npy_headers_that_do_not_fit_their_file(tmp_path, header, data, match):
    with pytest.raises(ScenarioError, match=match):
        read_indices_file(_npy(tmp_path, header, data))


def test_honest_npy_files_still_load(tmp_path):
    big_endian = _npy(
        tmp_path, {"descr": ">i4", "fortran_order": False, "shape": (3,)}, np.array([5, 6, 7], ">i4").tobytes()
    )
    assert read_indices_file(big_endian).tolist() == [5, 6, 7]
    v2 = _npy(
        tmp_path,
        {"descr": "<u2", "fortran_order": False, "shape": (2,)},
        np.array([1, 2], "<u2").tobytes(),
        version=(2, 0),
        name="v2.npy",
    )
    assert read_indices_file(v2).tolist() == [1, 2]
    np.save(tmp_path / "empty.npy", np.zeros(0, np.int64))
    assert read_indices_file(tmp_path / "empty.npy").tolist() == []
    v3 = _npy(
        tmp_path, {"descr": "<i8", "fortran_order": False, "shape": (1,)}, b"\0" * 8, version=(3, 0), name="v3.npy"
    )
    with pytest.raises(ScenarioError, match="version 3.0 is not supported"):
        read_indices_file(v3)
