"""Every HTML report judged in a real browser (headless Chromium, Debian package `chromium`) at 1280 px: nothing runs
off the page, no table is cut off, figures fit and stay legible, the ledger report's verdict is in the first screen,
the print stylesheet holds, the screenshots show the content (scripts/check_html_reports.py). One test per report
kind, from the committed result rows and ledger records, plus a ledger run end to end and the checks' own failures.

Without Chromium these tests skip with the reason; `make test` installs Chromium first and sets
OBLIVIO_REQUIRE_BROWSER=1, under which a missing browser fails them instead (CI must not skip them silently)."""

from __future__ import annotations

import importlib.util
import io
import os
import re
import stat
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_html_reports.py"
spec = importlib.util.spec_from_file_location("check_html_reports", SCRIPT)
checker = importlib.util.module_from_spec(spec)
sys.modules.setdefault(spec.name, checker)  # dataclasses look their module up there
spec.loader.exec_module(checker)

BROWSER = checker.find_chromium()
REQUIRED = os.environ.get("OBLIVIO_REQUIRE_BROWSER") == "1"
pytestmark = pytest.mark.browser

KINDS = [
    "synthetic-wide",
    "tmu-table1",
    "forget-quality",
    "two-stage",
    "tmu-figure3",
    "tmu-cost",
    "ledger-gold",
    "ledger-twin",
    "ledger-none",
    "ledger-original",
]


@pytest.fixture(scope="module")
def browser():
    if BROWSER is None:
        if REQUIRED:
            pytest.fail("OBLIVIO_REQUIRE_BROWSER=1 but no Chromium is installed (apt-get install -y chromium)")
        pytest.skip("headless Chromium not installed (apt-get install -y chromium, or make html-check)")
    return BROWSER


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 160)).save(buf, format="PNG")
    return buf.getvalue()


def _broken_pages(pages: dict[str, Path], out: Path) -> dict[str, Path]:
    """Each rule broken on purpose: a table too wide for its block (cut), the same without its container (the page
    overflows), a figure squeezed to the page width, a verdict pushed below the first screen, a page wider than A4
    when printed, a blank page."""
    from oblivio.experiments.report import Table, to_html

    wide = Table("wide", "A wide table", ["Method"] + [f"column {i}" for i in range(30)], [["m"] + ["12.3 ± 4.5"] * 30])
    bad = {}
    bad["cut"] = to_html([wide], title="t").replace(wide.to_html(), wide.to_html(max_width_px=10**6))
    bad["bare"] = re.sub(r'<div class="table-wrap">(<table>.*?</table>)</div>', r"\1", bad["cut"], flags=re.S)
    bad["squeezed"] = to_html([], title="t", figures=[("a 4455 px strip", _png(4455, 396))])
    ledger = pages["ledger-gold"].read_text()
    bad["late-verdict"] = ledger.replace(
        '<section id="verdict"', '<div style="height:900px"></div><section id="verdict"'
    )
    bad["print-wide"] = ledger.replace("</body>", "<pre>" + "x" * 95 + "</pre></body>")  # 760 px: fits 980, not 688
    bad["blank"] = "<!DOCTYPE html><html><body style='height:3000px'><p style='color:#fff'>x</p></body></html>"
    paths = {}
    for name, text in bad.items():
        (out / name).mkdir(parents=True)
        paths[f"bad-{name}"] = out / name / "report.html"
        paths[f"bad-{name}"].write_text(text)
    return paths


def _ledger_run(out: Path) -> tuple[Path, str]:
    """A real ledger on the tiny preset: apply with --gold, then the report (HTML, JSON, PDF); the page and what
    the report command printed."""
    import contextlib

    from oblivio.cli import main

    common = ["--workdir", str(out / "ledger"), "--preset", "tiny", "--store", str(out / "store"), "--no-progress"]
    assert main(["request", "add", "--ids", ",".join(map(str, range(1, 13))), "--requester", "ann", *common]) == 0
    assert main(["request", "apply", "--gold", "--method", "finetune", "--hparams", '{"epochs": 1}', *common]) == 0
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["request", "report", "--out", str(out / "rep"), "--pdf", *common]) == 0
    (page,) = list((out / "rep").glob("*.html"))
    return page, printed.getvalue()


@pytest.fixture(scope="module")
def checked(browser, tmp_path_factory):
    """Every report kind written by oblivio's own writers, the broken pages and a real ledger's report, judged in
    one batch of browser runs (a handful of browser starts)."""
    out = tmp_path_factory.mktemp("reports")
    pages = checker.demo_pages(out / "demo")
    assert sorted(pages) == sorted(KINDS)
    pages.update(_broken_pages(pages, out / "broken"))
    pages["ledger-run"], printed = _ledger_run(out)
    results = checker.check_pages(browser, list(pages.values()), out_dir=out / "shots")
    return dict(zip(pages, results, strict=True)), pages, printed


@pytest.mark.parametrize("kind", KINDS)
def test_every_report_kind_passes_in_the_browser(checked, kind):
    results, pages, _ = checked
    r = results[kind]
    assert r.ok, r.problems
    assert r.scroll_width <= 1280 and r.print_scroll_width <= r.print_width and not r.cut_tables
    assert r.tables == r.wrapped or kind.startswith("ledger")  # bench tables sit in a wrapper, ledger tables fit
    assert r.ink_fraction > 0.01 and r.ink_box[3] > 0.75 * r.image_size[1]
    mode = stat.S_IMODE(pages[kind].stat().st_mode)
    assert mode == 0o644, oct(mode)  # reports are meant to be shared
    if kind == "tmu-table1":  # one panel per measure, each shown at its own size
        assert len(r.images) == 2 and all(im["natural"] <= 1216 and im["shown"] == im["natural"] for im in r.images)
    if kind.startswith("ledger"):
        assert r.verdict_box is not None and r.verdict_box["bottom"] <= checker.FIRST_SCREEN
        assert r.verdict_frame_pixels >= 2 * 1280
        assert r.print_width == 688  # A4 portrait; bench reports print landscape
    else:
        assert r.print_width == 1032


def test_wide_tables_are_split_not_cut(checked):
    """The synthetic 17-column TMU Table 1 is split into blocks, each repeating the key column."""
    _, pages, _ = checked
    page = pages["synthetic-wide"].read_text()
    section = page[page.index('<section id="tmu-table1">') : page.index("</section>")]
    assert section.count("<table>") >= 2 and section.count("<th class=t>Forget class</th>") == section.count("<table>")
    assert "continued (columns" in section


def test_the_checks_fail_where_they_should(checked):
    """Each rule, broken on purpose (see _broken_pages), is reported."""
    results, _, _ = checked

    def problems(name):
        return " | ".join(results[f"bad-{name}"].problems)

    assert "a table is cut off" in problems("cut")
    assert "runs off sideways" in problems("bare")
    assert "is shrunk to" in problems("squeezed")
    assert "below the first screen" in problems("late-verdict")
    assert "printed, the page is" in problems("print-wide")
    assert "runs off sideways" not in problems("print-wide")  # on screen it fits: the print check is its own
    assert "blank" in problems("blank")


def test_ledger_report_end_to_end_in_the_browser(checked):
    """A real ledger run: the verdict printed and in the first screen, the page passes, a PDF is written; the
    reports are 0644 while the model files stay 0600."""
    results, pages, printed = checked
    assert re.search(r"verdict: (Yes, within|No, outside) the noise floor\. On the 12 forgotten samples", printed)
    r, page = results["ledger-run"], pages["ledger-run"]
    assert r.ok, r.problems
    assert r.verdict_box is not None and r.verdict_box["bottom"] <= checker.FIRST_SCREEN
    pdf = page.with_suffix(".pdf")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 10_000
    for path in (page, page.with_suffix(".json"), pdf):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    models = list((page.parents[1] / "ledger" / "models").glob("*.pt"))
    assert models and all(stat.S_IMODE(m.stat().st_mode) == 0o600 for m in models)
