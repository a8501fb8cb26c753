"""The confinement rule for the model files a ledger names: only names the service generates, only inside
``<workdir>/models``.

A row of ``artefacts`` or ``model_versions`` holds a path that recovery may delete and ``apply`` / ``report`` load.
Anyone who can write the database could name ``../other/file.pt``, an absolute path or ``ledger.db`` there; so every
path is checked by one validator, :func:`model_file`, when the service records it **and** when it reads it back:

* it is one of the service's own names (:data:`MODEL_NAME`): ``models/original-<16 hex>.pt``,
  ``models/imported-<16 hex>.pt`` or ``models/run<5 or more digits>-<16 hex>.pt`` (no ``..``, no absolute path,
  no other folder, no other name);
* the file (when it exists) is not a symbolic link and resolves to a file directly inside ``<workdir>/models``.

A row that fails is :class:`TamperedPathError`: recovery reports it and leaves the row and every file alone, and
loading a version whose row fails stops with that error before anything is recorded.

Example:
    >>> from pathlib import Path
    >>> model_file(Path("/srv/ledger"), "models/run00012-0123456789abcdef.pt", row="model_versions row 3").name
    'run00012-0123456789abcdef.pt'
    >>> model_file(Path("/srv/ledger"), "../other/file.pt", row="artefacts row 2")
    Traceback (most recent call last):
    ...
    oblivio.ledger.paths.TamperedPathError: artefacts row 2 names '../other/file.pt', not a model file this ...
"""

from __future__ import annotations

import re
from pathlib import Path

from .db import LedgerError

MODEL_NAME = re.compile(r"models/(?:(?:original|imported)-[0-9a-f]{16}|run[0-9]{5,}-[0-9a-f]{16})\.pt")
"""The names the service gives its model files (relative to the workdir): version 1 is ``original-`` or
``imported-`` and the first 16 hex digits of its weights' hash; a run's model is ``run`` and the run id (at least
5 digits) and the hash."""

_NAMES = "models/original-<16 hex>.pt, models/imported-<16 hex>.pt, models/run<NNNNN>-<16 hex>.pt"
_FIX = "the ledger was tampered with; nothing was deleted or loaded, restore the ledger from a backup"


class TamperedPathError(LedgerError):
    """A ledger row names a path the service would never write: outside ``models/``, not its naming pattern, or a
    symbolic link. The row is left alone (never deleted, never loaded)."""


def model_file(workdir: Path, rel: object, *, row: str) -> Path:
    """The path of the model file ``rel`` (as a ledger row stores it) under ``workdir``, after the confinement check.

    Args:
        workdir: the ledger's folder.
        rel: the stored path.
        row: which row names it, for the message (``"model_versions row 3"``).

    Returns:
        ``workdir / rel`` (not resolved: the caller acts on the name it checked).

    Raises:
        TamperedPathError: ``rel`` is not one of the service's own names, or the file is a symbolic link, or it
            resolves outside ``<workdir>/models``.
    """
    if not isinstance(rel, str) or not MODEL_NAME.fullmatch(rel):
        raise TamperedPathError(f"{row} names {rel!r}, not a model file this service writes ({_NAMES}): {_FIX}")
    path = workdir / rel
    if path.is_symlink():
        raise TamperedPathError(f"{row} names {rel!r}, which is a symbolic link, not a file this service wrote: {_FIX}")
    models = (workdir / "models").resolve()
    if path.resolve().parent != models:  # e.g. a symlinked file name on a case-folding or odd file system
        raise TamperedPathError(f"{row} names {rel!r}, which resolves outside {models}: {_FIX}")
    return path


def temp_siblings(path: Path) -> list[Path]:
    """The temporary files an interrupted atomic write of ``path`` can leave (``.<name>.<random>.tmp`` beside it):
    regular files only, never a symbolic link."""
    return [p for p in path.parent.glob(f".{path.name}.*.tmp") if p.is_file() and not p.is_symlink()]


__all__ = ["MODEL_NAME", "TamperedPathError", "model_file", "temp_siblings"]
