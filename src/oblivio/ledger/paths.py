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
import stat
from collections.abc import Iterable
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
    symbolic link (or ``models/`` itself is a link). The row is left alone (never deleted, never loaded)."""

    problem: str = ""  # what is wrong, without the fix (set by models_folder)


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
    problem = None
    if models.is_symlink():
        problem = f"the ledger's models folder {models} is a symbolic link (to {os.readlink(models)})"
    elif models.exists() and models.resolve() != workdir.resolve() / "models":
        problem = f"the ledger's models folder {models} resolves to {models.resolve()}, outside {workdir.resolve()}"
    if problem is not None:
        exc = TamperedPathError(
            f"{problem}, not the folder the service created: refusing to delete, write or load model files "
            f"through it; {_FIX_FOLDER}"
        )
        exc.problem = problem
        raise exc
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
    problem = _problem(workdir, rel, row=row)
    if problem is not None:
        raise TamperedPathError(f"{problem}: {_FIX}")
    return workdir / str(rel)


def _problem(workdir: Path, rel: object, *, row: str) -> str | None:
    """What is wrong with the path ``rel`` a row stores (None: nothing), without the fix."""
    if not isinstance(rel, str) or not MODEL_NAME.fullmatch(rel):
        return f"{row} names {rel!r}, not a model file this service writes ({_NAMES})"
    try:
        models_folder(workdir)
    except TamperedPathError as exc:
        return f"{row} names {rel!r}, but {exc.problem}"
    path = workdir / rel
    if path.is_symlink():
        return f"{row} names {rel!r}, which is a symbolic link, not a file this service wrote"
    models = (workdir / "models").resolve()
    if path.resolve().parent != models:  # e.g. a symlinked file name on a case-folding or odd file system
        return f"{row} names {rel!r}, which resolves outside {models}"
    return None


def audit_rows(workdir: Path, rows: Iterable[tuple[str, object]]) -> list[str]:
    """One warning line per row whose stored path fails :func:`model_file`, for the commands that only show the
    ledger (``request list``, ``request report``): they act on nothing, but must not show a tampered row as fine.

    Args:
        workdir: the ledger's folder.
        rows: ``(row label, stored path)`` pairs, e.g. ``("model_versions row 3", "models/run00003-....pt")``.

    Example:
        >>> audit_rows(Path("/srv/ledger"), [("artefacts row 2", "../other/file.pt")])  # doctest: +ELLIPSIS
        ["artefacts row 2 names '../other/file.pt', not a model file this service writes (...): tampered? left ...
    """
    out = []
    for row, rel in rows:
        problem = _problem(workdir, rel, row=row)
        if problem is not None:
            out.append(f"{problem}: tampered? left alone (never loaded or deleted); restore the ledger from a backup")
    return out


def temp_siblings(path: Path) -> list[Path]:
    """The temporary files an interrupted atomic write of ``path`` can leave (``.<name>.<random>.tmp`` beside it):
    regular files only, never a symbolic link."""
    return [p for p in path.parent.glob(f".{path.name}.*.tmp") if p.is_file() and not p.is_symlink()]


def remove_model_files(workdir: Path, paths: Iterable[Path]) -> list[Path]:
    """Delete the regular files among ``paths`` (each directly in ``<workdir>/models``) through a descriptor of the
    models folder opened without following links: a ``models/`` swapped for a link after :func:`model_file` checked
    it cannot redirect the deletion (``O_NOFOLLOW`` refuses the link; each name is unlinked relative to the opened
    folder, and only when ``lstat`` there says it is a regular file). Returns the paths removed.

    Raises:
        TamperedPathError: ``models/`` is (now) a symbolic link or not a folder; nothing is deleted.
    """
    models = models_folder(workdir)
    try:
        fd = os.open(models, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        problem = f"the ledger's models folder {models} cannot be opened as a folder ({exc.strerror})"
        err = TamperedPathError(f"{problem}: refusing to delete anything through it; {_FIX_FOLDER}")
        err.problem = problem
        raise err from None
    removed = []
    try:
        for path in paths:
            if Path(path).parent != models:
                continue  # only names directly in models/ (model_file and temp_siblings give no other)
            name = Path(path).name
            try:
                st = os.lstat(name, dir_fd=fd)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                os.unlink(name, dir_fd=fd)
                removed.append(Path(path))
    finally:
        os.close(fd)
    return removed


__all__ = [
    "MODEL_NAME",
    "TamperedPathError",
    "audit_rows",
    "model_file",
    "models_folder",
    "remove_model_files",
    "temp_siblings",
]
