"""Deletion requests as a workflow: a crash-safe ledger of requests, runs and model versions.

See ``docs/workflow.md``. The entry point is :class:`DeletionService`; the tables are in :mod:`.schema`.
"""

from __future__ import annotations

from .db import (
    ApplyInProgressError,
    Ledger,
    LedgerError,
    RequestRecord,
    RunRecord,
    VersionRecord,
    holder_is_dead,
    new_holder,
)
from .paths import TamperedPathError
from .report import build_report, render_html, write_report
from .service import ApplyResult, DeletionService, twin_estimate

__all__ = [
    "ApplyInProgressError",
    "ApplyResult",
    "DeletionService",
    "Ledger",
    "LedgerError",
    "RequestRecord",
    "RunRecord",
    "TamperedPathError",
    "VersionRecord",
    "build_report",
    "holder_is_dead",
    "new_holder",
    "render_html",
    "twin_estimate",
    "write_report",
]
