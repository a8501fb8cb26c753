"""Writing reports that are meant to be shared: file mode 0644, a headless Chromium, PDF export.

Reports (markdown, HTML, JSON, PDF) are written with mode ``0644`` (:data:`REPORT_MODE`): a report is made to be
read by others. Everything else oblivio writes (the ledger database, model files, results rows) keeps the private
mode of :mod:`oblivio.utils`'s atomic writes (``0600``). The content is written atomically as every file is
(:func:`oblivio.utils.atomic_write_bytes`); the mode is set right after the rename, so a crash in between leaves a
complete report that only its owner can read (the safe side).

PDF export uses Chromium's own ``--print-to-pdf``, the same Debian ``chromium`` that the browser tests of the
reports run in (``make test`` installs it). Chosen over WeasyPrint: WeasyPrint is a maintained library but needs
Pango, HarfBuzz and their fonts as system libraries and lays pages out with its own CSS engine, so its PDF is not
the page that the browser checks judged; Chromium prints exactly the checked page with its print stylesheet and adds
no Python dependency. Without a Chromium, ``--pdf`` fails with a message saying how to get one, and every browser's
"Print / Save as PDF" uses the same print stylesheet.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..utils import atomic_write_bytes

REPORT_MODE = 0o644
"""File mode of reports (readable by everyone; the ledger database and model files stay 0600)."""

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # root in containers and CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # no connection attempts: a closed network refuses them, slowly
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
"""The flags every headless Chromium run of oblivio uses (reports are local files; nothing is fetched)."""


def write_report_file(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write a report file atomically with mode :data:`REPORT_MODE`; returns its path."""
    path = Path(path)
    atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)
    os.chmod(path, REPORT_MODE)
    return path


def find_chromium() -> str | None:
    """Path of a Chromium / Chrome binary (``$OBLIVIO_CHROMIUM`` first), or None."""
    env = os.environ.get("OBLIVIO_CHROMIUM")
    if env:
        return shutil.which(env) or (env if Path(env).is_file() else None)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def run_chromium(browser: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run headless ``browser`` with :data:`CHROMIUM_FLAGS`, a fresh throwaway profile and ``args``."""
    with tempfile.TemporaryDirectory(prefix="oblivio-chromium-") as profile:
        return subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def export_pdf(html_path: str | os.PathLike, *, pdf_path: str | os.PathLike | None = None) -> Path:
    """Print the HTML report ``html_path`` to a PDF (default: beside it, ``.pdf``) with headless Chromium.

    Raises:
        RuntimeError: no Chromium is installed, or it wrote no PDF (the message has its last error lines).
    """
    html_path = Path(html_path)
    pdf = Path(pdf_path) if pdf_path is not None else html_path.with_suffix(".pdf")
    browser = find_chromium()
    if browser is None:
        raise RuntimeError(
            "PDF export needs Chromium: apt-get install -y chromium (or set OBLIVIO_CHROMIUM to a Chrome binary); "
            f"or open {html_path} in a browser and print it to PDF"
        )
    fd, tmp = tempfile.mkstemp(prefix=f".{pdf.name}.", suffix=".tmp", dir=pdf.parent)
    os.close(fd)
    try:
        res = run_chromium(browser, "--no-pdf-header-footer", f"--print-to-pdf={tmp}", html_path.resolve().as_uri())
        data = Path(tmp).read_bytes()
        if not data.startswith(b"%PDF"):
            raise RuntimeError(f"chromium wrote no PDF for {html_path} (exit {res.returncode}): {res.stderr[-400:]}")
        return write_report_file(pdf, data)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


__all__ = ["CHROMIUM_FLAGS", "REPORT_MODE", "export_pdf", "find_chromium", "run_chromium", "write_report_file"]
