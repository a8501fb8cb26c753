"""The confinement rule for the model files a ledger names: only names the service generates, only inside
``<workdir>/models``.

A row of ``artefacts`` or ``model_versions`` holds a path that recovery may delete and ``apply`` / ``report`` load.
Anyone who can write the database could name ``../other/file.pt``, an absolute path or ``ledger.db`` there; so every
path is checked by one validator, :func:`model_file`, when the service records it **and** when it reads it back:

* it is one of the service's own names (:data:`MODEL_NAME`): ``models/original-<16 hex>.pt``,
  ``models/imported-<16 hex>.pt`` or ``models/run<5 or more digits>-<16 hex>.pt`` (no ``..``, no absolute path,
  no other folder, no other name);
* the file (when it exists) is not a symbolic link and resolves to a file directly inside ``<workdir>/models``;
* ``<workdir>/models`` itself is a real folder directly inside the (resolved) workdir, not a symbolic link
  (:func:`models_folder`): a linked ``models/`` would let a row with a valid name reach files elsewhere.

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

import os
import re
from pathlib import Path

from .db import LedgerError

MODEL_NAME = re.compile(r"models/(?:(?:original|imported)-[0-9a-f]{16}|run[0-9]{5,}-[0-9a-f]{16})\.pt")
"""The names the service gives its model files (relative to the workdir): version 1 is ``original-`` or
``imported-`` and the first 16 hex digits of its weights' hash; a run's model is ``run`` and the run id (at least
5 digits) and the hash."""

_NAMES = "models/original-<16 hex>.pt, models/imported-<16 hex>.pt, models/run<NNNNN>-<16 hex>.pt"
_FIX = "the ledger was tampered with; nothing was deleted or loaded, restore the ledger from a backup"
_FIX_FOLDER = (
    "nothing was changed. Replace the link with a real folder holding the ledger's model files (move them back), "
    "or restore the ledger's folder from a backup"
)


class TamperedPathError(LedgerError):
    """A ledger row names a path the service would never write: outside ``models/``, not its naming pattern, or a
    symbolic link. The row is left alone (never deleted, never loaded)."""


def models_folder(workdir: Path) -> Path:
    """``<workdir>/models`` after the check that it is the service's own folder: not a symbolic link, and it
    resolves directly inside the resolved workdir (a link higher up, e.g. the workdir itself, is fine).

    Raises:
        TamperedPathError: ``models`` is a symbolic link or resolves elsewhere; nothing is deleted, written or
            loaded through it.

    Example:
        >>> import tempfile
        >>> base = Path(tempfile.mkdtemp())
        >>> (base / "elsewhere").mkdir(); (base / "wd").mkdir()
        >>> (base / "wd" / "models").symlink_to(base / "elsewhere")
        >>> models_folder(base / "wd")
        Traceback (most recent call last):
        ...
        oblivio.ledger.paths.TamperedPathError: the ledger's models folder ... is a symbolic link ...
    """
    models = workdir / "models"
    if models.is_symlink():
        raise TamperedPathError(
            f"the ledger's models folder {models} is a symbolic link (to {os.readlink(models)}), not the folder "
            f"the service created: refusing to delete, write or load model files through it; {_FIX_FOLDER}"
        )
    if models.exists() and models.resolve() != workdir.resolve() / "models":
        raise TamperedPathError(
            f"the ledger's models folder {models} resolves to {models.resolve()}, outside the ledger's folder "
            f"{workdir.resolve()}: refusing to delete, write or load model files through it; {_FIX_FOLDER}"
        )
    return models


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
            resolves outside ``<workdir>/models``, or ``models`` itself is a symbolic link (:func:`models_folder`).
    """
    if not isinstance(rel, str) or not MODEL_NAME.fullmatch(rel):
        raise TamperedPathError(f"{row} names {rel!r}, not a model file this service writes ({_NAMES}): {_FIX}")
    try:
        models_folder(workdir)
    except TamperedPathError as exc:
        raise TamperedPathError(f"{row} names {rel!r}, but {exc}") from None
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


__all__ = ["MODEL_NAME", "TamperedPathError", "model_file", "models_folder", "temp_siblings"]
