"""Intake of deletion requests: validating sample ids (lists or files), recording and cancelling requests.

:class:`IntakeMixin` is one part of :class:`~oblivio.ledger.service.DeletionService` (the facade users import); it
owns the training set's id index (a cache beside the ledger), the validation of a request's ids and texts, and the
request rows' ``pending`` / ``rejected`` / ``cancelled`` transitions. Nothing here trains or writes a model.

Example:
    >>> _coerce_ids([3, 1, 2]).tolist()
    [3, 1, 2]
    >>> _coerce_ids([True])
    Traceback (most recent call last):
    ...
    oblivio.scenarios.ScenarioError: sample ids must be integers, got True (bool); 1 such item(s)
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
from sqlalchemy import select

from ..scenarios import ScenarioError, check_ids_known, read_indices_file, read_npy_ids
from ..utils import atomic_write_bytes, config_hash, indices_hash, to_jsonable
from .db import Ledger, LedgerError, RequestRecord
from .records import strict_ids
from .schema import OPEN_STATUSES, DeletionRequest, ModelVersion, UnlearningRun, utcnow

log = logging.getLogger("oblivio.ledger")

MAX_REQUESTER_CHARS = 200
MAX_REASON_CHARS = 4000
MAX_IDS_FILE_BYTES = 64 * 1024 * 1024


class IntakeMixin:
    """Request intake for :class:`~oblivio.ledger.service.DeletionService`.

    Uses the service's ``ledger``, ``workdir``, ``experiment`` and ``train_set``.
    """

    ledger: Ledger
    workdir: Path
    experiment: Any

    if TYPE_CHECKING:  # the service's (declared here for the type checker)

        @property
        def train_set(self) -> Any: ...

    # ------------------------------------------------------------------ id index
    def _id_index_path(self) -> Path:
        key = config_hash(to_jsonable(self.experiment.config.data_key()))
        return self.workdir / f"id-index-{key}.npy"

    def train_ids(self) -> np.ndarray:
        """The sorted sample ids of the training set, from a cache beside the ledger (``id-index-<key>.npy``).

        The cache is keyed by the experiment's data configuration (dataset, its options, the subsample size) and
        built from the dataset the first time; validating a request then needs no dataset load (seconds instead of
        the whole dataset). Every ``apply`` loads the dataset anyway and rewrites the cache if it differs (a
        dataset whose files changed).
        """
        path = self._id_index_path()
        if path.is_file():
            try:
                ids = read_npy_ids(path)  # the header checked first: a forged one allocates nothing
                if ids.ndim == 1 and ids.dtype.kind in "iu" and ids.size and bool(np.all(ids[1:] > ids[:-1])):
                    return ids.astype(np.int64)
            except (OSError, ValueError, EOFError) as exc:
                log.warning("ignoring the unreadable id index %s (%s); rebuilding it", path, exc)
            else:
                log.warning("ignoring the malformed id index %s; rebuilding it", path)
        return self._write_id_index()

    def _write_id_index(self) -> np.ndarray:
        ids = np.sort(self.train_set.ids.numpy().astype(np.int64))
        path = self._id_index_path()
        buf = io.BytesIO()
        np.save(buf, ids, allow_pickle=False)
        try:
            atomic_write_bytes(path, buf.getvalue())
        except OSError as exc:  # a cache: working without it is only slower
            log.warning("could not write the id index %s: %s", path, exc)
        return ids

    def _refresh_id_index(self) -> None:
        """After the dataset was loaded: make sure the cached id index matches it."""
        path = self._id_index_path()
        current = np.sort(self.train_set.ids.numpy().astype(np.int64))
        try:
            cached = read_npy_ids(path) if path.is_file() else None
        except (OSError, ValueError, EOFError):
            cached = None
        if cached is None or not np.array_equal(cached, current):
            if cached is not None:
                log.warning(
                    "the training set's ids differ from the cached id index %s (its files changed?); rewriting it", path
                )
            self._write_id_index()

    # ------------------------------------------------------------------ requests
    def add_request(
        self, ids: Sequence[int] | np.ndarray | str | os.PathLike, *, requester: str, reason: str | None = None
    ) -> RequestRecord:
        """Validate and record a deletion request (committed before this returns).

        Args:
            ids: training-sample ids, or the path of a file of ids (``.txt`` one per line, ``.json`` list or
                ``{"ids": [...]}``, ``.csv`` first column, ``.npy``).
            requester: who asks (a name or an e-mail).
            reason: free text (legal basis, ticket number...).

        Returns:
            The stored request: ``pending``, or ``rejected`` when every id is already in open requests
            (``status_detail`` names them).

        Raises:
            ScenarioError: empty, malformed or non-integer ids; duplicates within the request; ids unknown to the
                training set; ids already forgotten by an applied request; a request that (with everything
                forgotten or pending) would cover the whole training set. Nothing is written.

        The ids are checked against the cached id index (:meth:`train_ids`), not the loaded dataset.
        """
        requester = _clean_text(requester, "requester", MAX_REQUESTER_CHARS, required=True)
        reason = _clean_text(reason, "reason", MAX_REASON_CHARS, required=False)
        arr = _read_ids(ids) if isinstance(ids, (str, os.PathLike)) else _coerce_ids(ids)
        known = self.train_ids()
        n_train = len(known)
        uniq = check_ids_known(known, arr, name=self.experiment.config.dataset)
        id_list = [int(i) for i in uniq]
        with self.ledger.transaction() as s:
            state = self.ledger.state(s, for_update=True)  # serialises writers on PostgreSQL
            forgotten: set[int] = set()
            if state.current_version_id is not None:
                current = self.ledger.row(
                    s, ModelVersion, state.current_version_id, what=f"model version {state.current_version_id}"
                )
                forgotten = set(strict_ids(current.forgotten_ids, "model_versions", current.id, "forgotten_ids"))
            again = sorted(forgotten.intersection(id_list))
            if again:
                by = [
                    r.id
                    for r in s.scalars(select(DeletionRequest).where(DeletionRequest.status == "applied"))
                    if set(strict_ids(r.sample_ids, "deletion_requests", r.id, "sample_ids")) & set(again)
                ]
                raise ScenarioError(
                    f"sample ids already forgotten by applied request(s) {_refs(by)}: "
                    f"{again[:10]}{' ...' if len(again) > 10 else ''}; leave them out of the request"
                )
            pending = list(s.scalars(select(DeletionRequest).where(DeletionRequest.status.in_(OPEN_STATUSES))))
            pending_ids = set().union(
                *(set(strict_ids(r.sample_ids, "deletion_requests", r.id, "sample_ids")) for r in pending)
            )
            total = len(forgotten | pending_ids | set(id_list))
            if total >= n_train:
                raise ScenarioError(
                    f"with the ids already forgotten ({len(forgotten)}) and pending "
                    f"({len(pending_ids)}), this request would remove all {n_train} training "
                    "samples: nothing would be left to retain; train a new model instead"
                )
            row = DeletionRequest(
                requester=requester,
                created_at=utcnow(),
                sample_ids=id_list,
                n_samples=len(id_list),
                ids_hash=indices_hash(id_list),
                reason=reason,
                status="pending",
                base_version_id=state.current_version_id,
            )
            if set(id_list) <= pending_ids:
                dup_of = [r.id for r in pending if set(r.sample_ids) & set(id_list)]
                row.status = "rejected"
                row.status_detail = f"duplicate: every id is already in open request(s) {_refs(dup_of)}"
                row.updated_at = row.created_at
            s.add(row)
            s.flush()
            record = RequestRecord.from_row(row)
        if record.status == "rejected":
            log.warning("request #%d rejected: %s", record.id, record.status_detail)
        return record

    def cancel_request(self, request_id: int, *, by: str, reason: str | None = None) -> RequestRecord:
        """Withdraw an open (``pending`` or ``failed``) request: it becomes ``cancelled`` and is never applied.

        Args:
            request_id: the request.
            by: who cancels (recorded in ``status_detail``).
            reason: why (recorded too).

        Raises:
            LedgerError: no such request; it is already applied (a forgotten sample cannot be un-forgotten),
                rejected or cancelled; or an apply is serving it right now. Nothing is changed.
        """
        by = _clean_text(by, "by", MAX_REQUESTER_CHARS, required=True)
        reason = _clean_text(reason, "reason", MAX_REASON_CHARS, required=False)
        info = self.ledger.lease_info()
        busy = info.holder is not None and info.expires_at is not None and info.expires_at > utcnow()
        with self.ledger.transaction() as s:
            self.ledger.state(s, for_update=True)
            row = s.get(DeletionRequest, int(request_id)) if self.ledger.id_in_range(int(request_id)) else None
            if row is None:
                raise LedgerError(f"no request #{request_id}")
            if row.status not in OPEN_STATUSES:
                how = (
                    f" by run {row.applied_run_id} (model version {row.applied_version_id}); a forgotten sample "
                    "cannot be un-forgotten"
                    if row.status == "applied"
                    else ""
                )
                raise LedgerError(
                    f"request #{row.id} is {row.status}{how}; only pending or failed requests can be "
                    "cancelled. Nothing was changed."
                )
            running = [
                r.id
                for r in s.scalars(select(UnlearningRun).where(UnlearningRun.status == "running"))
                if row.id in r.request_ids
            ]
            if running and busy:
                raise LedgerError(
                    f"request #{row.id} is being applied right now (run {running[0]}); cancel it after "
                    "that apply has finished. Nothing was changed."
                )
            row.status = "cancelled"
            row.status_detail = f"cancelled by {by}" + (f": {reason}" if reason else "")
            row.updated_at = utcnow()
            s.flush()
            record = RequestRecord.from_row(row)
        log.info("request #%d cancelled by %s", record.id, by)
        return record

    def list_requests(self, *, status: str | None = None) -> list[RequestRecord]:
        """All requests (oldest first), optionally only those with ``status``."""
        return self.ledger.requests(status=status)

    def open_requests(self) -> list[RequestRecord]:
        """The requests the next apply serves: ``pending`` and ``failed`` ones, oldest first."""
        return [r for r in self.ledger.requests() if r.status in OPEN_STATUSES]


def _refs(ids: list[int]) -> str:
    return ", ".join(f"#{i}" for i in ids) or "(none)"


@overload
def _clean_text(value: Any, name: str, limit: int, *, required: Literal[True]) -> str: ...
@overload
def _clean_text(value: Any, name: str, limit: int, *, required: bool) -> str | None: ...
def _clean_text(value: Any, name: str, limit: int, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ScenarioError(f"{name} must be text, got {type(value).__name__}")
    value = value.strip()
    if "\x00" in value:
        raise ScenarioError(f"{name} contains a NUL character")
    if required and not value:
        raise ScenarioError(f"{name} is required: say who asks for the deletion")
    if len(value) > limit:
        raise ScenarioError(f"{name} is too long ({len(value)} characters; at most {limit})")
    return value or None


def _coerce_ids(ids: Any) -> np.ndarray:
    """A flat int64 array from integers only: an integer-dtype 1-D array, or a sequence of ``int``.

    ``True``, ``4.0``, ``"4"`` and 2-D arrays are refused (ScenarioError), not converted.
    """
    if isinstance(ids, (str, bytes)):
        raise ScenarioError("sample ids must be a sequence of integers (or a file path)")
    if isinstance(ids, np.ndarray) or hasattr(ids, "numpy"):
        arr = np.asarray(ids.numpy() if hasattr(ids, "numpy") else ids)
        if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.ndim == 1):
            raise ScenarioError(f"sample ids must be integers, got {arr.dtype} values")
        if arr.ndim != 1:
            raise ScenarioError(f"sample ids must be a flat list, got an array of shape {tuple(arr.shape)}")
        return arr.astype(np.int64)
    try:
        items = list(ids)
    except TypeError:
        raise ScenarioError(f"sample ids must be a sequence of integers, got {type(ids).__name__}") from None
    bad = [v for v in items if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer))]
    if bad:
        raise ScenarioError(
            f"sample ids must be integers, got {bad[0]!r} ({type(bad[0]).__name__}); {len(bad)} such item(s)"
        )
    try:
        return np.asarray([int(v) for v in items], dtype=np.int64)
    except OverflowError:
        raise ScenarioError("sample ids out of range (they must fit in 64 bits)") from None


def _read_ids(path: str | os.PathLike) -> np.ndarray:
    """Read an ids file; every failure becomes a ScenarioError naming the file."""
    p = Path(path)
    try:
        if p.is_file() and p.stat().st_size > MAX_IDS_FILE_BYTES:
            raise ScenarioError(f"{p} is larger than {MAX_IDS_FILE_BYTES >> 20} MiB; split the request")
        return read_indices_file(p)
    except ScenarioError:
        raise
    except (ValueError, TypeError, OverflowError, EOFError, OSError, UnicodeError, RecursionError) as exc:
        raise ScenarioError(f"cannot read sample ids from {p}: {type(exc).__name__}: {exc}") from None
