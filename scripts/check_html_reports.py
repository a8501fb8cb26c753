#!/usr/bin/env python3
"""Judge oblivio's HTML reports in a real browser: headless Chromium (the Debian ``chromium`` package).

For each page it checks, at a laptop-sized window (1280 px wide by default):

1. **nothing runs off the page sideways**: the document's ``scrollWidth`` is at most the window's width (wide
   tables scroll inside their ``.table-wrap`` container instead); measured by a script injected into a temporary
   copy of the page and read back with ``--dump-dom`` (the report itself stays script-free);
2. **the screenshot shows the content and is not blank beyond it**: a full-height screenshot has ink (pixels that
   differ from the page background), and the ink reaches the bottom part of the image (no empty area where content
   should be) and stays inside the window horizontally.

Usage::

    python scripts/check_html_reports.py results/tmu-table1/report.html oblivio-ledger/reports/v2/report.html
    python scripts/check_html_reports.py --demo          # a synthetic 17-column bench report
    make html-check                                      # installs chromium (apt) and runs --demo

Exit status 0 when every page passes, 1 otherwise, 2 when Chromium is missing. Screenshots are kept with ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_MEASURE = (
    "<script>document.title = JSON.stringify({scrollWidth: document.documentElement.scrollWidth, "
    "clientWidth: document.documentElement.clientWidth, scrollHeight: document.documentElement.scrollHeight, "
    "tables: document.querySelectorAll('table').length, "
    "wrapped: document.querySelectorAll('.table-wrap > table').length});</script>"
)


def find_chromium() -> str | None:
    """Path of a Chromium / Chrome binary, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(browser: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--force-device-scale-factor=1",
    ]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=timeout, check=False)


@dataclass
class PageCheck:
    """The measurements and verdict for one page."""

    path: str
    width: int
    scroll_width: int = 0
    scroll_height: int = 0
    tables: int = 0
    wrapped: int = 0
    ink_fraction: float = 0.0
    ink_box: tuple[int, int, int, int] | None = None  # left, top, right, bottom
    image_size: tuple[int, int] = (0, 0)
    screenshot: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def measure(browser: str, page: Path, *, width: int) -> dict:
    """Layout numbers of ``page`` at ``width`` px (from a temporary copy with a measuring script)."""
    text = page.read_text(encoding="utf-8")
    marked = text.replace("</body>", _MEASURE + "</body>") if "</body>" in text else text + _MEASURE
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / page.name
        copy.write_text(marked, encoding="utf-8")
        res = _run(browser, f"--window-size={width},900", "--dump-dom", copy.as_uri())
    start, end = res.stdout.find("<title>"), res.stdout.find("</title>")
    if start < 0 or end < 0:
        raise RuntimeError(f"chromium gave no DOM for {page} (exit {res.returncode}): {res.stderr[-500:]}")
    import html

    return json.loads(html.unescape(res.stdout[start + len("<title>") : end]))


def ink(png: Path, *, threshold: int = 24) -> tuple[float, tuple[int, int, int, int] | None, tuple[int, int]]:
    """Fraction of pixels that differ from the background (the top-left pixel) and their bounding box."""
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB")).astype(np.int16)
    background = img[0, 0]
    mask = np.abs(img - background).max(axis=2) > threshold
    h, w = mask.shape
    if not mask.any():
        return 0.0, None, (w, h)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return float(mask.mean()), (int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])), (w, h)


def check_page(
    browser: str,
    page: Path,
    *,
    width: int = 1280,
    out_dir: Path | None = None,
    min_ink: float = 0.002,
    min_fill: float = 0.75,
) -> PageCheck:
    """Measure, screenshot and judge one HTML page (see the module docstring)."""
    result = PageCheck(str(page), width)
    m = measure(browser, page, width=width)
    result.scroll_width, result.scroll_height = int(m["scrollWidth"]), int(m["scrollHeight"])
    result.tables, result.wrapped = int(m["tables"]), int(m["wrapped"])
    if result.scroll_width > int(m["clientWidth"]):
        result.problems.append(
            f"the page is {result.scroll_width} px wide in a {m['clientWidth']} px window: "
            "content runs off the page sideways"
        )
    height = min(max(result.scroll_height, 200), 16000)
    out_dir = out_dir or Path(tempfile.mkdtemp(prefix="oblivio-html-"))
    shot = out_dir / (page.stem + f"-{page.parent.name}.png")
    res = _run(browser, f"--window-size={width},{height}", f"--screenshot={shot}", page.resolve().as_uri())
    if not shot.is_file():
        result.problems.append(f"chromium wrote no screenshot (exit {res.returncode}): {res.stderr[-300:]}")
        return result
    result.screenshot = str(shot)
    result.ink_fraction, result.ink_box, result.image_size = ink(shot)
    if result.ink_fraction < min_ink or result.ink_box is None:
        result.problems.append(f"the screenshot is blank ({100 * result.ink_fraction:.2f}% ink)")
    else:
        _, _, right, bottom = result.ink_box
        w, h = result.image_size
        if bottom + 1 < min_fill * h:
            result.problems.append(f"the content ends at {bottom + 1} px of a {h} px page: the rest is blank")
        if right + 1 > w:
            result.problems.append("the content touches the right edge of the window")
    return result


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pages", nargs="*", help="HTML files to check")
    parser.add_argument("--demo", action="store_true", help="also check a synthetic wide bench report")
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
        pages.append(demo_report(out_dir / "demo"))
    if not pages:
        parser.error("give HTML files or --demo")
    failed = 0
    for page in pages:
        if not page.is_file():
            print(f"FAIL {page}: no such file")
            failed += 1
            continue
        r = check_page(browser, page, width=args.width, out_dir=out_dir)
        status = "ok  " if r.ok else "FAIL"
        print(
            f"{status} {page}: {r.scroll_width} px wide in a {args.width} px window, {r.tables} table(s) "
            f"({r.wrapped} in a scrolling container), {100 * r.ink_fraction:.1f}% ink, content box {r.ink_box} "
            f"of {r.image_size}; screenshot {r.screenshot}"
        )
        for p in r.problems:
            print(f"     - {p}")
        failed += not r.ok
    if not args.keep:
        print(f"(screenshots in {out_dir}; --keep DIR to choose where)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
