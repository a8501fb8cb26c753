"""Bench report layout (issue 24 item 3): one panel per measure no wider than the page at 1280 px, wide tables split
into column blocks that repeat the key column and keep a method's pair of columns together, reports written 0644.
The browser tests (tests/cli/test_html_in_browser.py) judge the rendered pages; these check the pieces without one."""

from __future__ import annotations

import re
import stat
import struct

from oblivio.experiments.plots import grouped_bars
from oblivio.experiments.report import Table, write_report


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])  # the IHDR chunk: width, height


def test_a_many_bar_figure_stays_within_the_page():
    classes = [str(k) for k in range(10)]
    series = {f"method {i}": ([float(i + k) for k in range(10)], [0.5] * 10) for i in range(9)}
    width, height = _png_size(grouped_bars(classes, series, ylabel="δ (points)"))
    assert width <= 1216 and 300 < height < 700  # was 4455 x 396 for this shape


def test_wide_tables_split_into_blocks_that_keep_pairs():
    cols = ["Forget class"] + [f"m{i} ACC_{s} (%)" for i in range(8) for s in ("test", "Df")]
    rows = [[f"{k} (class)"] + ["90.5 ± 0.3"] * 16 for k in range(3)]
    t = Table("t1", "TMU Table 1", cols, rows, group=2)
    blocks = t.column_blocks()
    assert len(blocks) >= 2 and all(b[0] == 0 for b in blocks)
    assert sorted(j for b in blocks for j in b[1:]) == list(range(1, 17))  # every column once
    for b in blocks:  # pairs (ACC_test, ACC_Df) of one method stay in one block
        assert all(j % 2 == 1 and j + 1 in b for j in b[1:] if "ACC_test" in cols[j])
    page = t.to_html()
    assert page.count("<table>") == len(blocks) and page.count("<th class=t>Forget class</th>") == len(blocks)
    assert "continued (columns" in page
    one = Table("n", "narrow", ["a", "b"], [["x", "1.0"]]).to_html()
    assert one.count("<table>") == 1 and "continued" not in one


def test_bench_reports_are_written_0644_with_a_print_stylesheet(tmp_path):
    rows = [
        {
            "status": "ok",
            "method": "finetune",
            "forget_class": 0,
            "scenario": "class-subset:0:10",
            "seeds": {"train": 0, "gold": 0, "request": 0},
            "metrics": {"acc_test": 0.9, "acc_forget": 0.8, "gold_acc_test": 0.9, "gold_acc_forget": 0.7},
        }
    ]
    files = write_report(rows, tmp_path, title="t", tables=["summary"], plots=False)
    for path in (files.markdown, files.html):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    page = files.html.read_text()
    assert re.search(r"@page\{size:A4 landscape", page) and "@media print{" in page
    # columns the runs did not record are n/a, and only then the n/a note appears
    assert "n/a" in page and "n/a: not computable from these rows" in page
