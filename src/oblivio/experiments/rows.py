"""The runner's results file: JSONL rows, read back (skipping a torn line) and appended one at a time (fsynced, and
never glued to a torn last line). The driver is the only writer."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from pathlib import Path
from typing import Any

from ..utils import json_safe

log = logging.getLogger("oblivio.runner")


# ---------------------------------------------------------------------------------------------- results file
def read_results(path: str | os.PathLike, *, only_ok: bool = True) -> list[dict]:
    """Rows of a results JSONL file (missing file: no rows; a torn last line is skipped with a warning)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s:%d is not valid JSON (an interrupted write?); skipped", path, n)
            continue
        if not only_ok or row.get("status") == "ok":
            rows.append(row)
    return rows


def _clean(obj: Any) -> Any:
    """JSON-safe row values (NaN and inf become null; anything else unknown as its ``repr``)."""
    return json_safe(obj, fallback=repr)


def append_row(path: str | os.PathLike, row: dict) -> None:
    """Append ``row`` as one JSON line (JSON-safe values, sorted keys), fsynced; a torn last line is ended first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(_clean(row), sort_keys=True, allow_nan=False)
    with open(path, "a+b") as fh:
        if fh.tell() > 0:  # a torn last line (interrupted write) must not swallow this row
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                line = "\n" + line
        fh.write((line + "\n").encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


__all__ = ["append_row", "provenance", "read_results"]


def provenance(*, cwd: str | os.PathLike | None = None) -> dict[str, Any]:
    """What every committed result row carries (RULES: commit, dirty flag and time): the git commit of the package,
    whether its tracked files differed from it (and a hash of that difference), the time, host and versions.

    Example:
        >>> sorted(provenance())[:4]
        ['git_commit', 'git_diff_hash', 'git_dirty', 'host']
    """
    import platform
    import socket

    from .. import __version__
    from ..utils import git_commit, git_source_state

    here = cwd or os.path.dirname(os.path.dirname(__file__))
    return {
        "git_commit": git_commit(here),
        **git_source_state(here),
        "host": socket.gethostname(),
        "oblivio_version": __version__,
        "python": platform.python_version(),
        "recorded_at": _now(),
    }
