"""The browser tests' marker and their count in the session summary: CI's log must show them run, not skipped."""

from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: judged in headless Chromium (scripts/check_html_reports.py)")


def pytest_terminal_summary(terminalreporter):
    """One line: how many browser tests ran (passed / failed) and how many were skipped, with the browser."""
    counts = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        reports = [r for r in terminalreporter.stats.get(outcome, []) if "browser" in getattr(r, "keywords", {})]
        counts[outcome] = len({r.nodeid for r in reports})
    if not any(counts.values()):
        return
    from oblivio.experiments.publish import find_chromium

    browser = find_chromium() or "not installed"
    ran = counts["passed"] + counts["failed"] + counts["error"]
    terminalreporter.write_line(
        f"browser tests (headless Chromium: {browser}): ran {ran}, passed {counts['passed']}, "
        f"failed {counts['failed'] + counts['error']}, skipped {counts['skipped']}"
    )
