"""A user's sample ids: read from a file (``.txt`` / ``.json`` / ``.npy`` / ``.csv``, integers only) and checked
against the ids of a training set (no duplicates, no unknown ids, not the whole set)."""

from __future__ import annotations

import json
import os
import re
import stat
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.base import ImageDataset
from .specs import ID_RULE, ScenarioError, is_id_text

_ASCII_SPACE = " \t\r\n\v\f"


class _NotAnId(str):
    """A JSON number that is not an id as the rule says (``-0``, ``-3``): kept as its text for the message."""


def _json_id(text: str) -> int | _NotAnId:
    return int(text) if is_id_text(text) else _NotAnId(text)


def _not_a_regular_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file of ids (None when it is a regular file)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"indices file {path} does not exist"
    except OSError as exc:  # a symlink loop (ELOOP), a permission problem on a parent folder...
        return f"indices file {path} cannot be opened: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    kind = (
        "a folder"
        if stat.S_ISDIR(mode)
        else "a named pipe (FIFO)"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    return f"indices file {path} is {kind}, not a file of ids; give a .txt, .csv, .json or .npy file"


def read_indices_file(path: str | os.PathLike) -> np.ndarray:
    """Read sample ids from a ``.txt`` / ``.json`` / ``.npy`` / ``.csv`` file; only integers are ids.

    * ``.txt`` (and any other suffix): one id per line; ``#`` starts a comment; every other line must be an id
      written with the ASCII digits 0-9 (``12``; not ``-3``, ``+1``, ``1_0`` or other scripts' digits), else the
      error names the line.
    * ``.csv``: the first column; the first line is a header only when its first cell is not a number at all
      (``id``, ``sample_id``); a first cell that looks like a mistyped number (``5.0``, ``1O``, ``+18``) is an error.
    * ``.json``: a list of JSON integers (or ``{"ids": [...]}``); ``true``, ``8.0``, ``"8"`` or ``-0`` are errors.
    * ``.npy``: a one-dimensional array of an integer dtype.

    Raises:
        ScenarioError: the file is missing, not a regular file (a folder, a FIFO, a device), unreadable, or holds
            anything that is not an integer id.
    """
    path = Path(path)
    problem = _not_a_regular_file(path)
    if problem is not None:
        raise ScenarioError(problem)
    try:
        if path.suffix == ".npy":
            arr = read_npy_ids(path)
        elif path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"), parse_int=_json_id)
            if isinstance(data, dict):
                data = data.get("ids", data.get("indices"))
            if not isinstance(data, list):
                raise ValueError('expected a JSON list of ids (or {"ids": [...]})')
            bad = [(i, v) for i, v in enumerate(data) if isinstance(v, (bool, _NotAnId)) or not isinstance(v, int)]
            if bad:
                i, v = bad[0]
                shown = str(v) if isinstance(v, _NotAnId) else json.dumps(v)
                raise ScenarioError(
                    f"{path}: item {i} of the list is {shown}, not an integer id "
                    f"({len(bad)} such item(s)); only JSON integers are ids ({ID_RULE})"
                )
            try:
                arr = np.asarray([int(v) for v in data], dtype=np.int64)
            except OverflowError:
                raise ScenarioError(f"{path}: sample ids out of range (they must fit in 64 bits)") from None
        else:
            csv = path.suffix.lower() == ".csv"
            tokens: list[str] = []
            for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                line = line.split("#", 1)[0].strip(_ASCII_SPACE)  # ASCII spaces only, as is_id_text
                if not line:
                    continue
                tok = line.split(",")[0].strip(_ASCII_SPACE) if csv else line
                if not is_id_text(tok):
                    if csv and not tokens and _is_header(tok):
                        continue  # a CSV header line (a name, not a number)
                    raise ScenarioError(
                        f"{path}, line {line_no}: {tok[:40]!r} is not an integer sample id: {ID_RULE}"
                        + (" (a .csv header must be a name such as 'id')" if csv and not tokens else "")
                    )
                tokens.append(tok)
            arr = np.asarray([int(t) for t in tokens], dtype=np.int64) if tokens else np.zeros(0, np.int64)
    except ScenarioError:
        raise
    except OverflowError:
        raise ScenarioError(f"{path}: sample ids out of range (they must fit in 64 bits)") from None
    except (ValueError, UnicodeDecodeError, json.JSONDecodeError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ScenarioError(f"cannot read sample ids from {path}: {exc}") from exc
    return np.asarray(arr).astype(np.int64).reshape(-1)


def read_npy_ids(path: str | os.PathLike) -> np.ndarray:
    """A one-dimensional integer array from a ``.npy`` file, its header checked before anything is allocated.

    The header (``numpy.lib.format.read_magic`` / ``read_array_header_1_0`` / ``_2_0``) must announce an integer
    dtype (never an object dtype: no pickle is ever read), one dimension, and exactly as many bytes as the file
    holds after it: a 200-byte file whose header claims 1e13 ids is refused at once instead of allocating 73 TiB.

    Raises:
        ScenarioError: not a ``.npy`` file (an ``.npz`` archive, a pickle...), an unsupported format version, a
            non-integer or object dtype, not one-dimensional, or a size that does not match the header.

    Example:
        >>> import io, tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> np.save(folder / "ids.npy", np.array([3, 1, 2], dtype=np.int32))
        >>> read_npy_ids(folder / "ids.npy").tolist()
        [3, 1, 2]
    """
    from numpy.lib import format as npy_format

    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        try:
            version = npy_format.read_magic(fh)
        except ValueError:
            raise ScenarioError(
                f"cannot read sample ids from {path}: not a .npy file (no .npy magic string: an .npz archive, a "
                "pickle or another format); save the ids with np.save(path, ids)"
            ) from None
        readers = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}
        if version not in readers:
            raise ScenarioError(
                f"cannot read sample ids from {path}: .npy format version {version[0]}.{version[1]} is not "
                "supported (1.0 and 2.0 are: np.save writes them for integer arrays)"
            )
        shape, _fortran, dtype = readers[version](fh)
        if dtype.hasobject or dtype.kind not in "iu":
            raise ScenarioError(
                f"{path}: sample ids must be integers (an integer array), got dtype {dtype} "
                "(save them with an integer dtype, e.g. np.save(path, ids.astype(np.int64)))"
            )
        if len(shape) != 1:
            raise ScenarioError(f"{path}: sample ids must be a one-dimensional array, got shape {shape}")
        expected = int(shape[0]) * dtype.itemsize
        remaining = size - fh.tell()
        if expected != remaining:
            raise ScenarioError(
                f"cannot read sample ids from {path}: its header announces {shape[0]} ids ({expected} bytes) but "
                f"{remaining} bytes follow it; the file is truncated or forged: save the ids again with np.save"
            )
        return np.frombuffer(fh.read(expected), dtype=dtype).copy()


def _is_header(token: str) -> bool:
    """A CSV header cell: a name with a letter and nothing that could be a mistyped number (``1O``, ``5.0``)."""
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_ .-]*", token))


def check_ids_known(known_ids: np.ndarray, ids: Sequence[int] | np.ndarray, *, name: str = "the dataset") -> np.ndarray:
    """Check a user's id list against the sorted ids of a training set; returns the sorted unique ids.

    Needs only the ids, not the images (the deletion service keeps them in a cached id index).

    Raises:
        ScenarioError: empty list, duplicates, unknown ids, or the whole training set.
    """
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    known = np.asarray(known_ids, dtype=np.int64).reshape(-1)
    if ids.size == 0:
        raise ScenarioError("the forget request is empty: give at least one sample id")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dups = uniq[counts > 1][:10].tolist()
        raise ScenarioError(f"duplicate sample ids in the forget request: {dups}; list each sample once")
    unknown = np.setdiff1d(uniq, known)
    if unknown.size:
        lo, hi = int(known.min()), int(known.max())
        raise ScenarioError(f"sample ids out of range or unknown: {unknown[:10].tolist()} ({name} has ids {lo}..{hi})")
    if uniq.size >= known.size:
        raise ScenarioError(
            "the forget request covers the whole training set: nothing would be left to retain; "
            "train a new model instead"
        )
    return uniq


def validate_ids(dataset: ImageDataset, ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """Check a user's id list against the training set; returns the sorted ids.

    Raises:
        ScenarioError: empty list, duplicates, unknown ids, or the whole training set.
    """
    return check_ids_known(dataset.ids.numpy(), ids, name=dataset.name)  # type: ignore[union-attr]


__all__ = ["check_ids_known", "read_indices_file", "read_npy_ids", "validate_ids"]
