#!/usr/bin/env python3
"""Judge oblivio's HTML reports in a real browser: headless Chromium (the Debian ``chromium`` package).

For each page, at a laptop-sized window (1280 px wide by default, the first screen 800 px high):

1. **nothing runs off the page sideways**: the document is no wider than the window;
2. **no table is cut off**: no table scrolls inside its ``.table-wrap`` container (a screenshot or a print would
   lose its right-hand columns; wide tables are split into column blocks instead);
3. **figures fit and stay legible**: every image lies within the page width and is shown at 90% or more of its own
   pixel size (a figure squeezed to the page width has unreadable axes and legends);
4. **the verdict is in the first screen** (pages that have one, the ledger's verification report): the
   ``#verdict`` box ends within the first screen, and the screenshot shows its coloured frame there;
5. **the print stylesheet holds**: the page with its ``@media print`` rules applied, at the printable width of its
   ``@page`` size (A4 portrait 688 px, landscape 1032 px), has no horizontal overflow and no cut table;
6. **the screenshot shows the content and is not blank beyond it**: a full-height screenshot has ink (pixels that
   differ from the page background), the ink reaches the bottom part of the image and stays off the right edge.

Layout numbers come from one Chromium run over all pages (each page in an ``<iframe srcdoc>`` of the window's size,
its print version in another, measured by a script in the wrapper; the reports themselves stay script-free); the
full-height screenshots from a few more (pages stacked, cut apart afterwards): a handful of browser starts for any
number of pages.

Usage::

    python scripts/check_html_reports.py results/tmu-table1/report.html oblivio-ledger/reports/report-v2.html
    python scripts/check_html_reports.py --demo          # every report kind, from committed rows and records
    python scripts/check_html_reports.py --demo --keep shots/   # keep the screenshots (PNG) to look at them

Exit status 0 when every page passes, 1 otherwise, 2 when Chromium is missing. ``make html-check`` installs
Chromium (apt) and runs ``--demo``; ``make test`` runs the same checks as tests (tests/cli/test_html_in_browser.py).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

try:
    from oblivio.experiments.publish import find_chromium, run_chromium
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from oblivio.experiments.publish import find_chromium, run_chromium

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
FIRST_SCREEN = 800
"""Height of the first screen (px) at the 1280 px window."""
MIN_FIGURE_SCALE = 0.9
"""A figure is legible when shown at this fraction of its own pixel size or more."""
VERDICT_COLOURS = ((0x1A, 0x7F, 0x37), (0xCF, 0x22, 0x2E), (0x9A, 0x67, 0x00))
"""The verdict frame's colours (yes, no, not measured), see oblivio.ledger.report_html.CSS."""

_MEASURE = """<script>
function measure(doc) {
  var de = doc.documentElement, wraps = [].slice.call(doc.querySelectorAll('.table-wrap'));
  var v = doc.getElementById('verdict');
  return {scrollWidth: de.scrollWidth, clientWidth: de.clientWidth, scrollHeight: de.scrollHeight,
    tables: doc.querySelectorAll('table').length, wrapped: doc.querySelectorAll('.table-wrap > table').length,
    cut: wraps.filter(function (w) { return w.scrollWidth > w.clientWidth + 1; }).map(function (w) {
      var s = w.closest('section'); return (s && s.id ? s.id : 'table') + ' ' + w.scrollWidth + '>' + w.clientWidth; }),
    images: [].slice.call(doc.images).map(function (im) { var r = im.getBoundingClientRect();
      return {natural: im.naturalWidth, shown: r.width, right: r.right, alt: im.alt}; }),
    verdict: v ? {top: v.getBoundingClientRect().top, bottom: v.getBoundingClientRect().bottom} : null};
}
window.addEventListener('load', function () {
  var out = {};
  [].slice.call(document.querySelectorAll('iframe')).forEach(function (f) { out[f.id] = measure(f.contentDocument); });
  var pre = document.createElement('pre'); pre.id = 'oblivio-measure'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def print_width(page_html: str) -> int:
    """Printable width (CSS px at 96 dpi) of the page's ``@page`` size: A4 landscape 1032, A4 portrait 688."""
    m = re.search(r"@page\s*\{[^}]*size:\s*A4\s*(landscape)?", page_html)
    return 1032 if m and m.group(1) else 688


def as_printed(page_html: str) -> str:
    """The page with its print rules applied on screen (``@media print`` becomes ``@media all``)."""
    return page_html.replace("@media print", "@media all")


@dataclass
class PageCheck:
    """The measurements and verdict for one page."""

    path: str
    width: int
    scroll_width: int = 0
    scroll_height: int = 0
    tables: int = 0
    wrapped: int = 0
    cut_tables: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    verdict_box: dict | None = None
    print_width: int = 0
    print_scroll_width: int = 0
    print_cut_tables: list[str] = field(default_factory=list)
    ink_fraction: float = 0.0
    ink_box: tuple[int, int, int, int] | None = None  # left, top, right, bottom
    image_size: tuple[int, int] = (0, 0)
    verdict_frame_pixels: int = 0
    screenshot: str | None = None
    first_screen: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def measure(browser: str, pages: list[Path], *, width: int, height: int = FIRST_SCREEN) -> list[dict]:
    """Layout numbers of every page at ``width`` px and of its print version, from one Chromium run."""
    frames = []
    for i, page in enumerate(pages):
        text = page.read_text(encoding="utf-8")
        for tag, src, w in (("s", text, width), ("p", as_printed(text), print_width(text))):
            frames.append(
                f'<iframe id="{tag}{i}" scrolling="no" style="border:0;display:block;width:{w}px;height:{height}px" '
                f'srcdoc="{html.escape(src, quote=True)}"></iframe>'
            )
    wrapper = "<!DOCTYPE html><html><body style='margin:0'>" + "".join(frames) + _MEASURE + "</body></html>"
    with tempfile.TemporaryDirectory(prefix="oblivio-html-") as tmp:
        path = Path(tmp) / "measure.html"
        path.write_text(wrapper, encoding="utf-8")
        res = run_chromium(
            browser, f"--window-size={width + 40},{height}", "--virtual-time-budget=10000", "--dump-dom", path.as_uri()
        )
    start = res.stdout.find('<pre id="oblivio-measure">')
    end = res.stdout.find("</pre>", start)
    if start < 0 or end < 0:
        raise RuntimeError(f"chromium gave no measurements (exit {res.returncode}): {res.stderr[-500:]}")
    data = json.loads(html.unescape(res.stdout[start + len('<pre id="oblivio-measure">') : end]))
    return [{"screen": data[f"s{i}"], "print": data[f"p{i}"], "print_width": print_width(p.read_text())} for i, p in
            enumerate(pages)]  # fmt: skip


def ink(png: Path, *, threshold: int = 24):
    """Fraction of pixels that differ from the background (the top-left pixel), their bounding box, the image size
    and the number of verdict-frame-coloured pixels in the first screen."""
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB")).astype(np.int16)
    background = img[0, 0]
    mask = np.abs(img - background).max(axis=2) > threshold
    h, w = mask.shape
    top = img[:FIRST_SCREEN]
    frame = sum(int((np.abs(top - np.array(c)).max(axis=2) <= 8).sum()) for c in VERDICT_COLOURS)
    if not mask.any():
        return 0.0, None, (w, h), frame
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return float(mask.mean()), (int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])), (w, h), frame


def _judge(result: PageCheck, m: dict, *, width: int) -> None:
    s, p = m["screen"], m["print"]
    result.scroll_width, result.scroll_height = int(s["scrollWidth"]), int(s["scrollHeight"])
    result.tables, result.wrapped, result.cut_tables = int(s["tables"]), int(s["wrapped"]), list(s["cut"])
    result.images, result.verdict_box = list(s["images"]), s["verdict"]
    result.print_width, result.print_scroll_width = int(m["print_width"]), int(p["scrollWidth"])
    result.print_cut_tables = list(p["cut"])
    if result.scroll_width > int(s["clientWidth"]):
        result.problems.append(
            f"the page is {result.scroll_width} px wide in a {s['clientWidth']} px window: content runs off sideways"
        )
    for cut in result.cut_tables:
        result.problems.append(f"a table is cut off (it scrolls inside its container): {cut} px")
    for im in result.images:
        if im["right"] > int(s["clientWidth"]) + 0.5:
            result.problems.append(f"figure {im['alt']!r} runs past the page width ({im['right']:.0f} px)")
        if im["natural"] and im["shown"] < MIN_FIGURE_SCALE * im["natural"]:
            result.problems.append(
                f"figure {im['alt']!r} is shrunk to {im['shown']:.0f} of its {im['natural']} px: illegible at {width}"
            )
    if result.verdict_box is not None and result.verdict_box["bottom"] > FIRST_SCREEN:
        result.problems.append(
            f"the verdict ends at {result.verdict_box['bottom']:.0f} px, below the first screen ({FIRST_SCREEN} px)"
        )
    if result.print_scroll_width > result.print_width:
        result.problems.append(
            f"printed, the page is {result.print_scroll_width} px wide on a {result.print_width} px page"
        )
    for cut in result.print_cut_tables:
        result.problems.append(f"printed, a table is cut off: {cut} px")


MAX_SHOT_HEIGHT = 16000
"""Tallest screenshot Chromium is asked for (pages are stacked into screenshots of at most this height)."""


def screenshots(browser: str, pages: list[Path], heights: list[int], *, width: int, out_dir: Path) -> list[Path | None]:
    """A full-height screenshot of each page, taken a few pages at a time: the pages stacked as ``<iframe srcdoc>``
    of the window's width and their own height (a page's screenshot is then the same as a window of that size),
    one Chromium run per stack of at most :data:`MAX_SHOT_HEIGHT` px, cut apart afterwards."""
    from PIL import Image

    heights = [min(max(h, 200), MAX_SHOT_HEIGHT) for h in heights]
    stacks: list[list[int]] = [[]]
    for i, h in enumerate(heights):
        if stacks[-1] and sum(heights[j] for j in stacks[-1]) + h > MAX_SHOT_HEIGHT:
            stacks.append([])
        stacks[-1].append(i)
    out: list[Path | None] = [None] * len(pages)
    with tempfile.TemporaryDirectory(prefix="oblivio-html-") as tmp:
        for k, stack in enumerate(stacks):
            frames = "".join(
                f'<iframe scrolling="no" style="border:0;display:block;width:{width}px;height:{heights[i]}px" '
                f'srcdoc="{html.escape(pages[i].read_text(encoding="utf-8"), quote=True)}"></iframe>'
                for i in stack
            )
            wrapper = Path(tmp) / f"stack{k}.html"
            wrapper.write_text(f"<!DOCTYPE html><html><body style='margin:0'>{frames}</body></html>", encoding="utf-8")
            shot = Path(tmp) / f"stack{k}.png"
            total = sum(heights[i] for i in stack)
            run_chromium(browser, f"--window-size={width},{total}", f"--screenshot={shot}", wrapper.as_uri())
            if not shot.is_file():
                continue
            with Image.open(shot) as img:
                top = 0
                for i in stack:
                    path = out_dir / f"{pages[i].parent.name}-{pages[i].stem}.png"
                    img.crop((0, top, width, top + heights[i])).save(path)
                    out[i] = path
                    top += heights[i]
    return out


def check_pages(
    browser: str,
    pages: list[Path],
    *,
    width: int = 1280,
    out_dir: Path | None = None,
    min_ink: float = 0.002,
    min_fill: float = 0.75,
) -> list[PageCheck]:
    """Measure, screenshot and judge each page (see the module docstring)."""
    out_dir = out_dir or Path(tempfile.mkdtemp(prefix="oblivio-html-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for page, m in zip(pages, measure(browser, pages, width=width), strict=True):
        result = PageCheck(str(page), width)
        _judge(result, m, width=width)
        results.append(result)
    shots = screenshots(browser, pages, [r.scroll_height for r in results], width=width, out_dir=out_dir)
    for result, shot in zip(results, shots, strict=True):
        if shot is None:
            result.problems.append("chromium wrote no screenshot")
            continue
        result.screenshot = str(shot)
        result.ink_fraction, result.ink_box, result.image_size, result.verdict_frame_pixels = ink(shot)
        if result.verdict_box is not None and result.verdict_frame_pixels < 2 * width:
            result.problems.append("the first screen of the screenshot shows no verdict frame")
        if result.ink_fraction < min_ink or result.ink_box is None:
            result.problems.append(f"the screenshot is blank ({100 * result.ink_fraction:.2f}% ink)")
        else:
            _, _, right, bottom = result.ink_box
            w, h = result.image_size
            if bottom + 1 < min_fill * h:
                result.problems.append(f"the content ends at {bottom + 1} px of a {h} px page: the rest is blank")
            if right + 1 >= w:
                result.problems.append("the content touches the right edge of the window")
        first = shot.with_name(shot.stem + "-first-screen.png")
        _crop_first_screen(shot, first)
        result.first_screen = str(first)
    return results


def _crop_first_screen(shot: Path, out: Path) -> None:
    from PIL import Image

    with Image.open(shot) as img:
        img.crop((0, 0, img.width, min(img.height, FIRST_SCREEN))).save(out)


def check_page(browser: str, page: Path, **kwargs) -> PageCheck:
    """:func:`check_pages` for one page."""
    return check_pages(browser, [page], **kwargs)[0]


# ---------------------------------------------------------------------------------------------- demo reports
def demo_report(out_dir: Path) -> Path:
    """A bench report with a wide (17-column) TMU Table 1 and the summary table, from synthetic rows."""
    from oblivio.experiments.report import write_report

    rows = []
    methods = ["finetune", "neggrad", "random-label", "bad-teacher", "tmu", "tmu.one-twin", "gold"]
    for k in range(3):
        for m_i, m in enumerate(methods):
            for s in range(2):
                rows.append(
                    {
                        "status": "ok",
                        "method": m,
                        "forget_class": k,
                        "forget_class_name": f"class {k}",
                        "scenario": f"class-subset:{k}:100",
                        "seeds": {"train": s, "gold": s, "request": s},
                        "metrics": {
                            "acc_test": 0.9 - 0.01 * m_i,
                            "acc_forget": 0.8 - 0.05 * m_i,
                            "acc_retain": 0.95,
                            "gold_acc_test": 0.9,
                            "gold_acc_forget": 0.7,
                            "gold_acc_retain": 0.95,
                            "delta_forget": abs(0.1 - 0.05 * m_i),
                            "activation_distance_l2": 0.2,
                            "mia_loss_lr_acc": 0.5,
                            "gold_mia_loss_lr_acc": 0.5,
                            "mia_salun_efficacy": 0.4,
                            "gold_mia_salun_efficacy": 0.4,
                        },
                        "cost": {"method_seconds": 2.0, "rte": 0.1},
                    }
                )
    files = write_report(
        rows, out_dir, title="oblivio report: synthetic wide tables", tables=["tmu-table1", "summary"], plots=False
    )
    return Path(files.html)


def bench_reports(out_dir: Path, *, plots: bool = True) -> dict[str, Path]:
    """Every benchmark report kind, from the committed result rows (docs/results): TMU Table 1 (with figures),
    forget quality (scores trimmed to 20 samples per model: the layout is what is judged, and F is slow), two-stage
    (with its figure), TMU Figure 3, and the tmu-cost report."""
    from oblivio.experiments.bench import get_benchmark
    from oblivio.experiments.publish import write_report_file
    from oblivio.experiments.report import to_html, write_report
    from oblivio.experiments.runner import read_results
    from oblivio.experiments.tmu_cost import _tables as tmu_cost_tables

    out: dict[str, Path] = {}
    for kind, bench in (
        ("tmu-table1-full", "tmu-table1"),
        ("forget-quality-n16", "forget-quality"),
        ("two-stage-full", "two-stage"),
        ("tmu-figure3", "tmu-figure3"),
    ):
        rows = read_results(RESULTS / f"{kind}.jsonl")
        trimmed = "; scores trimmed to 20 samples, a layout check" if bench == "forget-quality" else ""
        if bench == "forget-quality":
            for r in rows:
                r["scores"] = {k: v[:20] for k, v in (r.get("scores") or {}).items()}
        title = f"oblivio benchmark: {bench} ({kind}{trimmed})"
        files = write_report(rows, out_dir / bench, title=title, tables=get_benchmark(bench).tables, plots=plots)
        out[bench] = Path(files.html)
    cost = json.loads((RESULTS / "tmu-cost.json").read_text())
    page = out_dir / "tmu-cost" / "report.html"
    write_report_file(page, to_html(tmu_cost_tables(cost), title="oblivio benchmark: tmu-cost"))
    out["tmu-cost"] = page
    return out


def ledger_reports(out_dir: Path) -> dict[str, Path]:
    """The ledger's verification report for each kind of verdict (measured against gold, estimated by the twin,
    not measured) and for the original version, from ledger records (no training)."""
    from datetime import datetime

    from oblivio.ledger.db import RequestRecord, RunRecord, VersionRecord
    from oblivio.ledger.report import build_report, write_report

    t0 = datetime(2026, 12, 5, 9, 30)
    requests = [
        RequestRecord(1, "alice@example.org", t0, tuple(range(12)), "GDPR art. 17, ticket 4411", "applied", None,
                      1, 2, 1),
        RequestRecord(2, "bob", t0, tuple(range(100, 114)), None, "applied", None, 2, 3, 2),
    ]  # fmt: skip
    base = {
        "n_forget": 26, "acc_forget": 25 / 26, "acc_retain": 0.9296, "acc_test": 0.9111, "seconds": 3.5,
        "mia_loss_lr_acc": 0.45, "mia_loss_lr_auc": 0.44, "mia_loss_lr_tpr_at_1pct_fpr": 0.0385,
        "mia_salun_efficacy": 0.23, "per_example_alpha": 0.05, "per_example_n": 26, "per_example_n_flagged": 2,
        "per_example": [{"id": i, "loss": 0.01 * i, "quantile": i / 30, "quantile_parent": i / 28,
                         "flagged": i / 30 < 0.05} for i in range(26)],
        "method_info": {"cpu_seconds": 1.4, "epochs": 1, "predicted_easy": 24, "predicted_hard": 2,
                        "twin_rule_agreement": 0.9, "twin_easy_rate": 0.88},
    }  # fmt: skip
    kinds = {
        "gold": dict(base, alignment_reference="gold", gold_acc_forget=22 / 26, sample_agreement=23 / 26,
                     delta_forget=3 / 26, gold_acc_retain=0.927, gold_acc_test=0.893, gold_mia_loss_lr_acc=0.45,
                     gold_mia_loss_lr_auc=0.43, gold_mia_loss_lr_tpr_at_1pct_fpr=0.0, gold_mia_salun_efficacy=0.12,
                     activation_distance_l2=0.116, js_divergence=0.029, gold_seconds=70.0, cost_ratio=0.05),
        "twin": dict(base, alignment_reference="twin", twin_est_gold_acc_forget=0.88, twin_est_delta_forget=0.08,
                     twin_predicted_easy=24, twin_predicted_hard=2, twin_est_source="twin_easy_rate"),
        "none": dict(base, alignment_reference="none"),
    }  # fmt: skip
    hp = {"epochs": 1, "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0005, "batch_size": 256, "optimizer": "sgd"}
    out = {}
    for kind, metrics in kinds.items():
        run = RunRecord(2, (2,), "finetune", hp, 0, 2, 3, 26, t0, t0, 3.5, "succeeded", None)
        version = VersionRecord(3, "ab" * 32, "models/run00002-abab.pt", 2, 2, t0, tuple(range(26)), metrics, True)
        report = build_report(version, run, requests[1:], forgotten_requests=requests, oblivio_version="demo")
        out[f"ledger-{kind}"] = write_report(report, out_dir / f"ledger-{kind}")[1]
    original = VersionRecord(1, "cd" * 32, "models/original-cdcd.pt", None, None, t0, (), {"acc_forget": 1.0}, False)
    out["ledger-original"] = write_report(build_report(original, None, []), out_dir / "ledger-original")[1]
    return out


def demo_pages(out_dir: Path) -> dict[str, Path]:
    """Every report kind oblivio writes (see :func:`bench_reports`, :func:`ledger_reports`) and the synthetic
    17-column table."""
    pages = {"synthetic-wide": demo_report(out_dir / "synthetic-wide")}
    pages.update(bench_reports(out_dir))
    pages.update(ledger_reports(out_dir))
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pages", nargs="*", help="HTML files to check")
    parser.add_argument("--demo", action="store_true", help="also check every report kind (from committed rows)")
    parser.add_argument("--width", type=int, default=1280, help="window width in px (default 1280)")
    parser.add_argument("--keep", metavar="DIR", help="keep the screenshots in DIR")
    args = parser.parse_args(argv)
    browser = find_chromium()
    if browser is None:
        print(
            "check_html_reports: no chromium found; install it with `apt-get install -y chromium` "
            "(or `make html-check`)",
            file=sys.stderr,
        )
        return 2
    out_dir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="oblivio-html-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = [Path(p) for p in args.pages]
    if args.demo:
        pages += list(demo_pages(out_dir / "demo").values())
    if not pages:
        parser.error("give HTML files or --demo")
    missing = [p for p in pages if not p.is_file()]
    for p in missing:
        print(f"FAIL {p}: no such file")
    results = check_pages(browser, [p for p in pages if p.is_file()], width=args.width, out_dir=out_dir)
    for r in results:
        print(
            f"{'ok  ' if r.ok else 'FAIL'} {r.path}: {r.scroll_width} px wide in a {args.width} px window, "
            f"{r.tables} table(s), {len(r.cut_tables)} cut, {len(r.images)} figure(s), printed {r.print_scroll_width}"
            f" px on {r.print_width} px, {100 * r.ink_fraction:.1f}% ink; screenshot {r.screenshot}"
        )
        for p in r.problems:
            print(f"     - {p}")
    if not args.keep:
        print(f"(screenshots in {out_dir}; --keep DIR to choose where)")
    return 1 if missing or not all(r.ok for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
