"""Every HTML report judged in a real browser (headless Chromium, Debian package `chromium`): nothing runs off the
page sideways, and the screenshot shows the content without blank space beyond it. Skipped without Chromium
(`make html-check` installs it and runs the same check as a script)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_html_reports.py"
spec = importlib.util.spec_from_file_location("check_html_reports", SCRIPT)
checker = importlib.util.module_from_spec(spec)
sys.modules.setdefault(spec.name, checker)  # dataclasses look their module up there
spec.loader.exec_module(checker)

BROWSER = checker.find_chromium()
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="headless Chromium not installed (apt-get install -y chromium, or make html-check)"
)


def test_bench_report_fits_the_window_and_is_not_blank(tmp_path):
    page = checker.demo_report(tmp_path / "bench")
    r = checker.check_page(BROWSER, page, out_dir=tmp_path)
    assert r.ok, r.problems
    assert r.tables == r.wrapped == 2 and r.scroll_width <= 1280
    assert r.ink_fraction > 0.01 and r.ink_box[3] > 0.75 * r.image_size[1]


def test_the_check_fails_on_a_table_without_its_container(tmp_path):
    page = checker.demo_report(tmp_path / "bench")
    bare = tmp_path / "bare.html"
    bare.write_text(re.sub(r'<div class="table-wrap">(<table>.*?</table>)</div>', r"\1", page.read_text(), flags=re.S))
    r = checker.check_page(BROWSER, bare, out_dir=tmp_path)
    assert any("runs off the page sideways" in p for p in r.problems), r.problems


def test_the_check_fails_on_a_blank_page(tmp_path):
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body style='height:3000px'><p style='color:#fff'>x</p></body></html>")
    r = checker.check_page(BROWSER, blank, out_dir=tmp_path)
    assert any("blank" in p for p in r.problems)


def test_ledger_report_in_the_browser(tmp_path, capsys):
    from oblivio.cli import main

    common = [
        "--workdir",
        str(tmp_path / "ledger"),
        "--preset",
        "tiny",
        "--store",
        str(tmp_path / "store"),
        "--no-progress",
    ]
    assert main(["request", "add", "--ids", "1,2,3,4,5,6,7,8,9,10,11,12", "--requester", "ann", *common]) == 0
    assert main(["request", "apply", "--method", "finetune", "--hparams", '{"epochs": 1}', *common]) == 0
    assert main(["request", "report", "--out", str(tmp_path / "rep"), *common]) == 0
    capsys.readouterr()
    (page,) = list((tmp_path / "rep").glob("*.html"))
    r = checker.check_page(BROWSER, page, out_dir=tmp_path)
    assert r.ok, r.problems
