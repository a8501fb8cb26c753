"""Release bookkeeping (issue 25): one version, named by the CHANGELOG, shown by `oblivio --version`; the licence in
its SPDX form; the type-check ratchet's rules."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import oblivio

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
_RELEASE = re.compile(r"^## \[(?P<version>\d+\.\d+\.\d+)\] - (?P<date>\d{4}-\d{2}-\d{2})$", re.M)


def _changelog() -> str:
    return (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def test_newest_released_version_in_the_changelog_is_the_package_version():
    releases = _RELEASE.findall(_changelog())
    assert releases, "CHANGELOG.md names no released version ('## [X.Y.Z] - YYYY-MM-DD')"
    assert releases[0][0] == oblivio.__version__


def test_changelog_sections_are_in_order_and_well_formed():
    text = _changelog()
    headings = re.findall(r"^## .*$", text, re.M)
    assert headings[0] == "## [Unreleased]"
    assert all(_RELEASE.match(h) for h in headings[1:]), headings
    versions = [tuple(map(int, v.split("."))) for v, _ in _RELEASE.findall(text)]
    dates = [d for _, d in _RELEASE.findall(text)]
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions)
    assert dates == sorted(dates, reverse=True)
    kinds = set(re.findall(r"^### (.*)$", text, re.M))
    assert kinds <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, kinds


def test_the_version_has_one_source():
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "oblivio.__version__"}


def test_cli_version_prints_the_package_version():
    out = subprocess.run(
        [sys.executable, "-m", "oblivio", "--version"], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == f"oblivio {oblivio.__version__}"


def test_licence_is_an_spdx_expression_with_its_file():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("MIT License") and "Copyright (c) 2026 The oblivio authors" in licence
    # PEP 639 support (the SPDX string and license-files) came with setuptools 77
    assert PYPROJECT["build-system"]["requires"] == ["setuptools>=77"]


@pytest.fixture(scope="module")
def check_types():
    spec = importlib.util.spec_from_file_location("check_types", ROOT / "scripts" / "check_types.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_type_check_ratchet_counts_errors_per_file(check_types):
    out = (
        "src/oblivio/data/folder.py:248: error: Argument 1 ...  [arg-type]\n"
        "src/oblivio/data/folder.py:250:7: error: Item ...  [union-attr]\n"
        "src/oblivio/data/folder.py:250: note: a note is not an error\n"
        "src/oblivio/api.py:3: error: Name ...  [name-defined]\n"
    )
    assert check_types.error_counts(out) == Counter({"src/oblivio/data/folder.py": 2, "src/oblivio/api.py": 1})


def test_type_check_ratchet_rules(check_types):
    judge = check_types.judge
    pending = {"src/oblivio/data/folder.py": 2}
    assert judge(Counter({"src/oblivio/data/folder.py": 2}), pending) == []
    # a new error in a clean module, a count that grows, a count that shrinks without the list following
    assert "must be clean" in judge(Counter({"src/oblivio/data/folder.py": 2, "src/oblivio/api.py": 1}), pending)[0]
    assert "more than the 2 listed" in judge(Counter({"src/oblivio/data/folder.py": 3}), pending)[0]
    assert "lower its count to 1" in judge(Counter({"src/oblivio/data/folder.py": 1}), pending)[0]
    assert "remove its line" in judge(Counter(), pending)[0]
    # the public API can never be listed
    for path in ("src/oblivio/api.py", "src/oblivio/ledger/service.py", "src/oblivio/__init__.py"):
        assert "public API" in judge(Counter({path: 1}), {path: 1})[0]


def test_pending_list_names_existing_modules_outside_the_public_api(check_types):
    pending = check_types.read_pending()
    for path in pending:
        assert (ROOT / path).is_file(), path
        assert not path.startswith(check_types.PUBLIC_API), path
