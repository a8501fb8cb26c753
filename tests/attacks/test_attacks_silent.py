"""Silent wrong answers become clear errors (issue 21, item 2).

Each input here was accepted before and did something other than what the user asked (an id read as another id, a
ledger that forgot everything, a request rounded down, labels truncated, forget images trained on as retain...). Now
each is refused with one line naming the problem and the fix, before anything is recorded or trained.
"""

from __future__ import annotations

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
