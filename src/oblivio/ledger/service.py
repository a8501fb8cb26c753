"""Deletion requests as a workflow: record, batch, unlearn, verify, with a crash-safe ledger.

A :class:`DeletionService` keeps, in one working folder, a ledger database (``ledger.db``, or any SQLAlchemy URL)
and the model versions it has served (``models/``). The life of a request:

1. :meth:`DeletionService.add_request` validates the sample ids against the training set and commits the request
   (``pending``) before anything else happens.
2. :meth:`DeletionService.apply` takes the apply lease, serves every open (``pending`` or ``failed``) request
   together (the forget set is the union of their ids and everything forgotten before), starting from the current
   model version, with a registered unlearning method; it evaluates the result, records the model file it is about
   to write (an ``artefacts`` row), writes it atomically and only then, in one transaction, marks the run
   succeeded, the requests applied and the new version current. A run whose method returns the parent's weights
   unchanged is recorded as ``no-op`` and says so. A failed run marks its requests ``failed`` (retried by the next
   apply). :meth:`DeletionService.cancel_request` withdraws an open request.
3. :meth:`DeletionService.report` / :meth:`DeletionService.write_report`: the verification report (JSON + HTML).

The service deletes only files it recorded creating (``artefacts`` rows still ``pending`` after a crash), never
anything else in its folder.

Example:
    >>> from oblivio.ledger import DeletionService                                  # doctest: +SKIP
    >>> svc = DeletionService("ledger-dir", experiment="tiny", method="finetune")  # doctest: +SKIP
    >>> req = svc.add_request([3, 14, 15], requester="alice", reason="GDPR art. 17")  # doctest: +SKIP
    >>> result = svc.apply()                                                       # doctest: +SKIP
    >>> svc.write_report("report-dir")                                             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from sqlalchemy import delete, select, update
from torch import nn

from .. import __version__
from ..experiments import Experiment, ExperimentConfig
from ..scenarios import Indices, ScenarioError, check_ids_known, read_indices_file
from ..training.loop import DivergenceError
from ..utils import (CheckpointError, atomic_torch_save, atomic_write_bytes, config_hash, file_sha256, indices_hash,
                     json_safe, safe_torch_load, state_dict_hash, to_jsonable)
from .db import (ApplyInProgressError, Ledger, LedgerError, RequestRecord, RunRecord, VersionRecord, _safe_url,
                 new_holder)
from .schema import (DONE_RUN_STATUSES, OPEN_STATUSES, Artefact, DeletionRequest, LedgerState, ModelVersion,
                     UnlearningRun, utcnow)

log = logging.getLogger("oblivio.ledger")

MAX_REQUESTER_CHARS = 200
MAX_REASON_CHARS = 4000
MAX_IDS_FILE_BYTES = 64 * 1024 * 1024
PER_EXAMPLE_MAX = 50
"""Forget sets up to this size get the per-example membership check (the loss MIA needs at least 10 samples)."""

APPLY_STAGES = ("lease-taken", "recovered", "original-recorded", "original-written", "original-committed",
                "run-started", "unlearned", "artefact-recorded", "model-written", "committed")
"""The points between two writes of an apply, in order, at which :func:`_checkpoint_hook` is called."""


def _checkpoint_hook(stage: str) -> None:
    """Called between the writes of an apply, at each stage of :data:`APPLY_STAGES`.

    A no-op; tests replace it to simulate a crash (or a full disk, a locked database) at a precise point.
    """


@dataclass(frozen=True)
class ApplyResult:
    """What :meth:`DeletionService.apply` did.

    Attributes:
        status: ``"succeeded"``; ``"no-op"`` (every run returned its parent's weights unchanged: the requests are
            recorded as applied, but the model did not change); ``"failed"`` (a run failed; its requests are
            ``failed`` and retried by the next apply); or ``"nothing-to-do"``.
        runs: the runs made, in order.
        version: the new current model version (None unless a run succeeded).
        error: why a run failed.
        abandoned_runs: ids of stale ``running`` runs found (a killed earlier apply) and marked ``abandoned``.
        removed_files: files an interrupted apply had recorded and written but not committed, deleted now.
    """

    status: str
    runs: tuple[RunRecord, ...] = ()
    version: VersionRecord | None = None
    error: str | None = None
    abandoned_runs: tuple[int, ...] = field(default=())
    removed_files: tuple[str, ...] = field(default=())


class DeletionService:
    """The deletion-request workflow over one experiment's original model.

    Args:
        workdir: folder for the ledger database (``ledger.db`` by default), the model versions and reports.
        experiment: an :class:`~oblivio.experiments.Experiment`, an :class:`ExperimentConfig` or a preset name.
            The ledger remembers the experiment it was created for and refuses another one.
        method: the registered unlearning method ``apply`` uses by default.
        hparams: its hyper-parameters (``create_method(method, **hparams)``).
        db_url: a SQLAlchemy URL for the ledger (default ``sqlite:///<workdir>/ledger.db``; PostgreSQL works too).
        store: checkpoint store for the experiment when it is built here.
        lease_seconds: how long the apply lease lasts without renewal (it is renewed while a run works; a killed
            apply on another host is taken over after this long; on this host at once).
        progress: show progress bars.
        busy_timeout: seconds a SQLite writer waits for another's lock before failing with "database is locked".

    Raises:
        LedgerError: the database is not a readable ledger (empty, damaged or foreign file), the URL is bad, or the
            ledger serves another experiment.
    """

    def __init__(self, workdir: str | os.PathLike, *, experiment: "Experiment | ExperimentConfig | str" = "cpu",
                 method: str = "tmu", hparams: dict[str, Any] | None = None, db_url: str | None = None,
                 store: Any = None, lease_seconds: float = 300.0, progress: bool = False,
                 busy_timeout: float = 60.0) -> None:
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")
        self.workdir = Path(workdir)
        if self.workdir.exists() and not self.workdir.is_dir():
            raise LedgerError(f"--workdir {self.workdir} is a file, not a folder")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.models_dir = self.workdir / "models"
        self.models_dir.mkdir(exist_ok=True)
        self.experiment = (experiment if isinstance(experiment, Experiment)
                           else Experiment(experiment, store=store, progress=progress))
        self.method = method
        self.hparams = dict(hparams or {})
        self.lease_seconds = float(lease_seconds)
        self.progress = progress
        self.db_url = db_url or os.environ.get("OBLIVIO_LEDGER_URL") or f"sqlite:///{(self.workdir / 'ledger.db').resolve()}"
        self.ledger = Ledger(self.db_url, busy_timeout=busy_timeout)
        self._bind_experiment()

    # ------------------------------------------------------------------ set-up
    def _bind_experiment(self) -> None:
        key_dict = to_jsonable(self.experiment.config.model_key())
        key = config_hash(key_dict)
        with self.ledger.transaction() as s:
            state = s.get(LedgerState, 1, with_for_update=True)
            if state.experiment_key is None:
                state.experiment_key, state.experiment = key, key_dict
            elif state.experiment_key != key:
                raise LedgerError(
                    f"the ledger at {_safe_url(self.db_url)} serves another experiment ({json.dumps(state.experiment)}); "
                    "pass the same --preset / --dataset / --model / --recipe / --seed options, or use another --workdir")

    def close(self) -> None:
        """Release the database connections."""
        self.ledger.dispose()

    def __enter__(self) -> "DeletionService":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def train_set(self):
        return self.experiment.data.train

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
                ids = np.load(path, allow_pickle=False)
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
            cached = np.load(path, allow_pickle=False) if path.is_file() else None
        except (OSError, ValueError, EOFError):
            cached = None
        if cached is None or not np.array_equal(cached, current):
            if cached is not None:
                log.warning("the training set's ids differ from the cached id index %s (its files changed?); "
                            "rewriting it", path)
            self._write_id_index()

    # ------------------------------------------------------------------ requests
    def add_request(self, ids: "Sequence[int] | np.ndarray | str | os.PathLike", *, requester: str,
                    reason: str | None = None) -> RequestRecord:
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
            state = s.get(LedgerState, 1, with_for_update=True)  # serialises writers on PostgreSQL
            forgotten: set[int] = set()
            if state.current_version_id is not None:
                forgotten = set(s.get(ModelVersion, state.current_version_id).forgotten_ids)
            again = sorted(forgotten.intersection(id_list))
            if again:
                by = [r.id for r in s.scalars(select(DeletionRequest).where(DeletionRequest.status == "applied"))
                      if set(r.sample_ids) & set(again)]
                raise ScenarioError(f"sample ids already forgotten by applied request(s) {_refs(by)}: "
                                    f"{again[:10]}{' ...' if len(again) > 10 else ''}; leave them out of the request")
            pending = list(s.scalars(select(DeletionRequest).where(DeletionRequest.status.in_(OPEN_STATUSES))))
            pending_ids = set().union(*(set(r.sample_ids) for r in pending)) if pending else set()
            total = len(forgotten | pending_ids | set(id_list))
            if total >= n_train:
                raise ScenarioError(f"with the ids already forgotten ({len(forgotten)}) and pending "
                                    f"({len(pending_ids)}), this request would remove all {n_train} training "
                                    "samples: nothing would be left to retain; train a new model instead")
            row = DeletionRequest(requester=requester, created_at=utcnow(), sample_ids=id_list, n_samples=len(id_list),
                                  ids_hash=indices_hash(id_list), reason=reason, status="pending",
                                  base_version_id=state.current_version_id)
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
            s.get(LedgerState, 1, with_for_update=True)
            row = s.get(DeletionRequest, int(request_id))
            if row is None:
                raise LedgerError(f"no request #{request_id}")
            if row.status not in OPEN_STATUSES:
                how = (f" by run {row.applied_run_id} (model version {row.applied_version_id}); a forgotten sample "
                       "cannot be un-forgotten" if row.status == "applied" else "")
                raise LedgerError(f"request #{row.id} is {row.status}{how}; only pending or failed requests can be "
                                  "cancelled. Nothing was changed.")
            running = [r.id for r in s.scalars(select(UnlearningRun).where(UnlearningRun.status == "running"))
                       if row.id in r.request_ids]
            if running and busy:
                raise LedgerError(f"request #{row.id} is being applied right now (run {running[0]}); cancel it after "
                                  "that apply has finished. Nothing was changed.")
            row.status = "cancelled"
            row.status_detail = f"cancelled by {by}" + (f": {reason}" if reason else "")
            row.updated_at = utcnow()
            s.flush()
            record = RequestRecord.from_row(row)
        log.info("request #%d cancelled by %s", record.id, by)
        return record

    def list_requests(self, status: str | None = None) -> list[RequestRecord]:
        """All requests (oldest first), optionally only those with ``status``."""
        return self.ledger.requests(status)

    def open_requests(self) -> list[RequestRecord]:
        """The requests the next apply serves: ``pending`` and ``failed`` ones, oldest first."""
        return [r for r in self.ledger.requests() if r.status in OPEN_STATUSES]

    def list_runs(self) -> list[RunRecord]:
        return self.ledger.runs()

    def list_versions(self) -> list[VersionRecord]:
        return self.ledger.versions()

    def current_version(self) -> VersionRecord | None:
        """The model version now served (None before the first ``apply``)."""
        vid = self.ledger.current_version_id()
        return self.ledger.version(vid) if vid is not None else None

    # ------------------------------------------------------------------ models
    def _resolve_path(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.workdir / p

    def load_model(self, version: VersionRecord) -> nn.Module:
        """The model of ``version``, checked against its recorded hash.

        Raises:
            CheckpointError: the file is missing, unreadable, of another architecture, or its weights changed.
        """
        path = self._resolve_path(version.path)
        model = self.experiment.build_model()
        state = safe_torch_load(path, map_location=next(model.parameters()).device)
        if not isinstance(state, dict):
            raise CheckpointError(f"{path} (model version {version.id}) holds a {type(state).__name__}, not a "
                                  "state dict; restore the file from a backup (nothing was changed)")
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{path} (model version {version.id}) does not fit this model: {exc}") from exc
        digest = state_dict_hash(model)
        if digest != version.hash:
            raise CheckpointError(f"{path} (model version {version.id}) was modified or corrupted: its weights hash to "
                                  f"{digest[:16]}, the ledger recorded {version.hash[:16]}; restore the file from a "
                                  "backup (nothing was changed)")
        model.eval()
        return model

    def init(self, *, model_file: "str | os.PathLike | None" = None) -> VersionRecord:
        """Register version 1: a trained model of the user's (``model_file``) or the experiment's original model.

        Args:
            model_file: a ``state_dict`` checkpoint (``torch.save(model.state_dict(), path)``) of the experiment's
                architecture, loaded with ``weights_only=True``; it is copied into the ledger's folder. Without it,
                the experiment's original model (trained, or taken from the checkpoint store).

        Raises:
            LedgerError: the ledger already has a model version (nothing is changed).
            CheckpointError: the file is unreadable, not a state dict, or of another architecture.
            ApplyInProgressError: an apply is running.
        """
        if self.ledger.current_version_id() is not None:
            raise LedgerError(f"the ledger already has model version {self.ledger.current_version_id()}; version 1 "
                              "can only be registered in a new ledger. Nothing was changed.")
        model = self._load_user_model(Path(model_file)) if model_file is not None else None
        with self._lease():
            if self.ledger.current_version_id() is not None:
                raise LedgerError("the ledger got a model version meanwhile; nothing was changed")
            return self._bootstrap(model=model, source=str(model_file) if model_file is not None else None)

    def _load_user_model(self, path: Path) -> nn.Module:
        model = self.experiment.build_model()
        state = safe_torch_load(path, map_location=next(model.parameters()).device)
        if not isinstance(state, dict):
            raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict; save the model with "
                                  "torch.save(model.state_dict(), path)")
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{path} does not fit the experiment's model ({self.experiment.config.model}): "
                                  f"{str(exc).splitlines()[0]}") from exc
        model.eval()
        return model

    def _bootstrap(self, *, model: nn.Module | None = None, source: str | None = None) -> VersionRecord:
        """Register version 1 (called under the lease): the original model, or ``model`` imported from ``source``."""
        from ..training import accuracy

        original = model if model is not None else self.experiment.original()
        digest = state_dict_hash(original)
        role = "imported" if model is not None else "original"
        rel = f"models/{role}-{digest[:16]}.pt"
        artefact = self._record_artefact(rel, run_id=None)
        _checkpoint_hook("original-recorded")
        atomic_torch_save(original.state_dict(), self.workdir / rel)
        _checkpoint_hook("original-written")
        metrics = {"role": role, "acc_train": accuracy(original, self.train_set),
                   "acc_test": accuracy(original, self.experiment.data.test),
                   "train_seconds": (getattr(original, "oblivio_meta", {}) or {}).get("train_seconds")}
        if source is not None:
            metrics.update(source_file=source, source_sha256=file_sha256(source))
        with self.ledger.transaction() as s:
            state = s.get(LedgerState, 1, with_for_update=True)
            if state.current_version_id is not None:  # pragma: no cover - we hold the lease
                raise LedgerError("the ledger got a current model version while registering the original")
            row = ModelVersion(hash=digest, path=rel, parent_id=None, run_id=None, created_at=utcnow(),
                               forgotten_ids=[], metrics=json_safe(metrics))
            s.add(row)
            s.flush()
            state.current_version_id = row.id
            s.get(Artefact, artefact).status = "committed"
            record = VersionRecord.from_row(row, row.id)
        _checkpoint_hook("original-committed")
        log.info("registered the %s model as version %d (%s)", role, record.id, digest[:16])
        return record

    def _record_artefact(self, rel: str, *, run_id: int | None) -> int:
        """Record (``pending``) a file about to be written; refuse to overwrite a file the ledger did not record."""
        target = self.workdir / rel
        with self.ledger.transaction() as s:
            known = s.scalars(select(Artefact).where(Artefact.path == rel)).first()
            if target.exists() and known is None:
                raise LedgerError(f"{target} exists but this ledger did not write it; refusing to overwrite it "
                                  "(move it away). Nothing was changed.")
            row = Artefact(path=rel, run_id=run_id, status="pending", created_at=utcnow())
            s.add(row)
            s.flush()
            return row.id

    # ------------------------------------------------------------------ apply
    @contextlib.contextmanager
    def _lease(self) -> Iterator[str]:
        holder = new_holder()
        if not self.ledger.try_acquire(holder, self.lease_seconds):
            info = self.ledger.lease_info()
            since = info.acquired_at.isoformat(timespec="seconds") + "Z" if info.acquired_at else "?"
            raise ApplyInProgressError(
                f"another apply is running (lease holder {info.holder}, since {since}); nothing was changed and "
                "pending requests stay pending: try again when it has finished")
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(holder, stop), daemon=True, name="oblivio-lease")
        beat.start()
        try:
            yield holder
        finally:
            stop.set()
            beat.join()
            try:
                self.ledger.release(holder)
            except Exception as exc:  # the lease then simply expires
                log.warning("could not release the apply lease: %s", exc)

    def _heartbeat(self, holder: str, stop: threading.Event) -> None:
        interval = max(self.lease_seconds / 4.0, 0.05)
        while not stop.wait(interval):
            try:
                if not self.ledger.renew(holder, self.lease_seconds):
                    log.error("lost the apply lease; this run will not be committed")
                    return
            except Exception as exc:  # a transient database error: try again at the next beat
                log.warning("could not renew the apply lease: %s", exc)

    def _recover(self) -> tuple[tuple[int, ...], tuple[str, ...]]:
        """Under the lease: mark stale ``running`` runs abandoned and their requests failed; delete the files that
        an interrupted apply recorded (``artefacts`` rows still ``pending``) and no version references.

        Only recorded files (and their temporary siblings from an interrupted atomic write) are ever deleted.
        """
        with self.ledger.transaction() as s:
            stale = list(s.scalars(select(UnlearningRun).where(UnlearningRun.status == "running")))
            now = utcnow()
            for run in stale:
                run.status = "abandoned"
                run.ended_at = now
                run.error = ("the process running it stopped before committing (killed or crashed); its requests "
                             "stayed open and are re-applied")
                s.execute(update(DeletionRequest)
                          .where(DeletionRequest.id.in_(list(run.request_ids)), DeletionRequest.status == "pending")
                          .values(status="failed", updated_at=now,
                                  status_detail=f"run {run.id} was interrupted before committing; retried by the "
                                                "next apply"))
            referenced = set(s.scalars(select(ModelVersion.path)))
            pending = list(s.scalars(select(Artefact).where(Artefact.status == "pending")))
            for row in pending:
                if row.path in referenced:
                    row.status = "committed"
            orphans = [(row.id, row.path) for row in pending if row.path not in referenced]
        removed: list[str] = []
        for row_id, rel in orphans:
            target = self.workdir / rel
            for path in [target, *target.parent.glob(f".{target.name}.*.tmp")]:
                if path.is_file():
                    log.warning("removing %s, written by an interrupted apply and never committed", path)
                    path.unlink(missing_ok=True)
                    removed.append(str(path.relative_to(self.workdir)))
            with self.ledger.transaction() as s:
                s.execute(delete(Artefact).where(Artefact.id == row_id))
        if stale:
            log.warning("marked %d stale running run(s) abandoned: %s", len(stale), [r.id for r in stale])
        return tuple(r.id for r in stale), tuple(removed)

    def apply(self, *, batch: bool = True, method: str | None = None, hparams: dict[str, Any] | None = None,
              seed: int = 0, gold: bool = False) -> ApplyResult:
        """Serve the pending requests.

        Args:
            batch: serve all pending requests in one run (default); False serves them one run each, oldest first,
                stopping at the first failure.
            method: registered method name (default: the service's).
            hparams: its hyper-parameters (default: the service's when the method is the service's, else none).
            seed: the run's seed.
            gold: also retrain the gold model on the retained data to measure alignment (costs a retraining;
                cached in the checkpoint store).

        Returns:
            An :class:`ApplyResult`. A run whose training diverges (non-finite weights) returns ``status="failed"``:
            the current model is kept and the requests stay pending.

        Raises:
            ApplyInProgressError: another process is applying (nothing was changed).
            CheckpointError: the current version's file is corrupt or was modified (nothing was changed).
        """
        from ..methods import create_method

        method_name = method or self.method
        hp = dict(hparams if hparams is not None else (self.hparams if method_name == self.method else {}))
        create_method(method_name, **hp)  # fail fast on an unknown method or hyper-parameter
        with self._lease() as holder:
            _checkpoint_hook("lease-taken")
            abandoned, removed = self._recover()
            _checkpoint_hook("recovered")
            pending = self.open_requests()
            if not pending:
                return ApplyResult("nothing-to-do", abandoned_runs=abandoned, removed_files=removed)
            groups = [pending] if batch else [[r] for r in pending]
            runs: list[RunRecord] = []
            version = None
            for group in groups:
                still_open = {r.id for r in self.open_requests()}
                group = [r for r in group if r.id in still_open]  # one cancelled meanwhile is left out
                if not group:
                    continue
                run, new_version, error = self._apply_group(group, holder, method_name, hp, seed, gold)
                runs.append(run)
                if error is not None:
                    return ApplyResult("failed", tuple(runs), version, error, abandoned, removed)
                version = new_version
            if not runs:
                return ApplyResult("nothing-to-do", abandoned_runs=abandoned, removed_files=removed)
            status = "no-op" if all(r.status == "no-op" for r in runs) else "succeeded"
            return ApplyResult(status, tuple(runs), version, None, abandoned, removed)

    def _apply_group(self, group: list[RequestRecord], holder: str, method_name: str, hp: dict, seed: int,
                     gold: bool) -> tuple[RunRecord, VersionRecord | None, str | None]:
        from ..methods import create_method

        current = self.current_version() or self._bootstrap()
        model = self.load_model(current)  # CheckpointError before anything is recorded
        self._refresh_id_index()
        forget_ids = sorted(set(current.forgotten_ids).union(*(r.sample_ids for r in group)))
        splits = self.experiment.unlearning_splits(Indices(ids=tuple(forget_ids)))
        unlearner = create_method(method_name, **hp)
        if hasattr(unlearner, "twin_cache") and hasattr(self.experiment, "twin_cache"):
            unlearner.twin_cache = self.experiment.twin_cache()  # TMU: reuse twin work of earlier requests
        request_ids = [r.id for r in group]
        with self.ledger.transaction() as s:
            run_row = UnlearningRun(request_ids=request_ids, method=method_name, hparams=json_safe(unlearner.hparams()),
                                    seed=seed, parent_version_id=current.id, n_forget=len(forget_ids),
                                    started_at=utcnow(), status="running", holder=holder)
            s.add(run_row)
            s.flush()
            run_id = run_row.id
        log.info("run %d: %s on %d request(s), %d samples to forget (from version %d)", run_id, method_name,
                 len(group), len(forget_ids), current.id)
        _checkpoint_hook("run-started")
        path: Path | None = None
        t0 = time.perf_counter()
        try:
            holdout = splits.holdout if getattr(unlearner, "needs_holdout", False) else None
            unlearned = unlearner(model, forget=splits.forget, retain=splits.retain, holdout=holdout, seed=seed,
                                  progress=self.progress)
        except DivergenceError as exc:
            error = f"training diverged ({exc}); the current model is kept and the requests are retried by the next apply"
            return self._fail_run(run_id, error, request_ids) or self.ledger.run(run_id), None, error
        except BaseException as exc:
            self._fail_run(run_id, f"{type(exc).__name__}: {exc}", request_ids)
            raise
        seconds = time.perf_counter() - t0
        _checkpoint_hook("unlearned")
        artefact: int | None = None
        try:
            parent_model = self.load_model(current)
            metrics = self._evaluate(unlearned, splits, unlearner, seconds, gold, seed, parent=parent_model)
            digest = state_dict_hash(unlearned)
            unchanged = digest == current.hash
            if unchanged:  # the same weights: point at the parent's file, write nothing
                rel = current.path
                metrics["unchanged"] = True
                log.warning("run %d is a no-op: %s returned the parent's weights unchanged (version %d, %s); the "
                            "requests are recorded as applied but the model did not change", run_id, method_name,
                            current.id, digest[:16])
            else:
                rel = f"models/run{run_id:05d}-{digest[:16]}.pt"
                artefact = self._record_artefact(rel, run_id=run_id)
                _checkpoint_hook("artefact-recorded")
                path = atomic_torch_save(unlearned.state_dict(), self.workdir / rel)
            _checkpoint_hook("model-written")
            version = self._commit(run_id, holder, current, group, digest, rel, forget_ids, metrics, seconds,
                                   artefact=artefact, unchanged=unchanged)
        except BaseException as exc:
            self._fail_run(run_id, f"{type(exc).__name__}: {exc}", request_ids, artefact=artefact,
                           path=path or (self.workdir / rel if artefact is not None else None))
            raise
        _checkpoint_hook("committed")
        log.info("run %d %s in %.1fs: version %d (%s) is current", run_id, "was a no-op" if unchanged else "succeeded",
                 seconds, version.id, digest[:16])
        return self.ledger.run(run_id), version, None

    def _commit(self, run_id: int, holder: str, parent: VersionRecord, group: list[RequestRecord], digest: str,
                rel: str, forget_ids: list[int], metrics: dict, seconds: float, *, artefact: int | None,
                unchanged: bool) -> VersionRecord:
        """One transaction: new version current, run succeeded (or no-op), requests applied, artefact committed
        (or nothing at all)."""
        now = utcnow()
        with self.ledger.transaction() as s:
            if not self.ledger.renew(holder, self.lease_seconds, session=s):
                raise LedgerError("the apply lease was lost (expired and taken over); this run is not committed")
            state = s.get(LedgerState, 1, with_for_update=True)
            if state.current_version_id != parent.id:
                raise LedgerError(f"the current version changed during the run ({parent.id} -> "
                                  f"{state.current_version_id}); not committed")
            row = ModelVersion(hash=digest, path=rel, parent_id=parent.id, run_id=run_id, created_at=now,
                               forgotten_ids=forget_ids, metrics=json_safe(metrics))
            s.add(row)
            s.flush()
            run = s.get(UnlearningRun, run_id)
            if run is None or run.status != "running":
                raise LedgerError(f"run {run_id} is no longer running (status {run.status if run else 'missing'})")
            run.status = "no-op" if unchanged else "succeeded"
            run.ended_at, run.seconds, run.result_version_id = now, seconds, row.id
            if unchanged:
                run.error = (f"no-op: the method returned the weights of version {parent.id} unchanged (same hash); "
                             "the requests are recorded as applied, the model did not change")
            ids = [r.id for r in group]
            detail = (f"no-op: applied by run {run_id}, whose method returned the model unchanged" if unchanged
                      else None)
            res = s.execute(update(DeletionRequest)
                            .where(DeletionRequest.id.in_(ids), DeletionRequest.status.in_(OPEN_STATUSES))
                            .values(status="applied", applied_version_id=row.id, applied_run_id=run_id,
                                    status_detail=detail, updated_at=now))
            if res.rowcount != len(ids):
                raise LedgerError(f"requests {ids} changed during the run (cancelled?); not committed")
            if artefact is not None:
                s.get(Artefact, artefact).status = "committed"
            state.current_version_id = row.id
            s.flush()
            return VersionRecord.from_row(row, row.id)

    def _fail_run(self, run_id: int, error: str, request_ids: list[int], *, artefact: int | None = None,
                  path: Path | None = None) -> RunRecord | None:
        """Mark the run failed and its requests ``failed`` (retried by the next apply); delete its uncommitted file.

        Best effort: when the database or the disk is what failed, whatever is left is cleaned up by the next
        apply's recovery (the run is still ``running``, the file still a ``pending`` artefact).
        """
        log.error("run %d failed: %s", run_id, error)
        try:
            with self.ledger.transaction() as s:
                run = s.get(UnlearningRun, run_id)
                if run.status != "running":  # committed meanwhile (the error came after the commit)
                    return RunRecord.from_row(run)
                run.status, run.ended_at, run.error = "failed", utcnow(), error[:4000]
                run.seconds = (run.ended_at - run.started_at).total_seconds()
                s.execute(update(DeletionRequest)
                          .where(DeletionRequest.id.in_(request_ids), DeletionRequest.status.in_(OPEN_STATUSES))
                          .values(status="failed", updated_at=run.ended_at,
                                  status_detail=f"run {run_id} failed: {error[:300]}; retried by the next apply"))
            if artefact is not None:
                if path is not None:
                    for p in [path, *path.parent.glob(f".{path.name}.*.tmp")]:
                        p.unlink(missing_ok=True)
                with self.ledger.transaction() as s:
                    s.execute(delete(Artefact).where(Artefact.id == artefact, Artefact.status == "pending"))
            return self.ledger.run(run_id)
        except Exception as exc:  # the database or the disk failed too: recovery finishes the job
            log.error("could not record the failure of run %d (%s); the next apply recovers it", run_id, exc)
            return None

    def _evaluate(self, model: nn.Module, splits, unlearner, seconds: float, gold: bool, seed: int, *,
                  parent: nn.Module | None = None) -> dict:
        from ..metrics.report import evaluate_unlearning

        gold_model = self.experiment.gold(splits.split) if gold else None
        metrics: dict[str, Any] = dict(evaluate_unlearning(model, forget=splits.forget, retain=splits.retain,
                                                           test=splits.test, gold=gold_model, seed=seed))
        metrics.update(n_forget=len(splits.forget), n_retain=len(splits.retain), n_test=len(splits.test),
                       seconds=seconds, method=unlearner.name)
        info = {k: v for k, v in (unlearner.info or {}).items() if isinstance(v, (int, float, str, bool))}
        metrics["method_info"] = info
        if gold_model is not None:
            gold_seconds = (getattr(gold_model, "oblivio_meta", {}) or {}).get("train_seconds")
            metrics["gold_seconds"] = gold_seconds
            metrics["cost_ratio"] = seconds / gold_seconds if gold_seconds else None
            metrics["alignment_reference"] = "gold"
        twin = twin_estimate(unlearner.info or {}, metrics["acc_forget"])
        metrics.update(twin)
        if gold_model is None:
            metrics["alignment_reference"] = "twin" if twin else "none"
        if len(splits.forget) < MIA_MIN_FORGET:
            metrics["mia_skipped"] = (f"the loss MIA needs at least {MIA_MIN_FORGET} forget samples (10-split "
                                      f"cross-validation); this forget set has {len(splits.forget)}: see the "
                                      "per-example check")
        if len(splits.forget) <= PER_EXAMPLE_MAX:
            metrics.update(per_example_membership(model, splits.forget, splits.test, parent=parent))
        return metrics

    # ------------------------------------------------------------------ reports
    def resolve_version(self, version: "int | str | None" = None) -> VersionRecord:
        """A version by id, ``"current"``/None, or a hash prefix (at least 6 hex digits)."""
        versions = self.ledger.versions()
        if not versions:
            raise LedgerError("the ledger has no model version yet: run `apply` first")
        if version is None or version == "current":
            return next(v for v in versions if v.is_current)
        text = str(version).strip()
        if text.isdigit():
            match = [v for v in versions if v.id == int(text)]
        elif len(text) >= 6:
            match = [v for v in versions if v.hash.startswith(text.lower())]
        else:
            match = []
        if len(match) != 1:
            known = ", ".join(f"{v.id} ({v.hash[:12]})" for v in versions)
            raise LedgerError(f"no single model version matches {version!r}; versions: {known}")
        return match[0]

    def report(self, version: "int | str | None" = None) -> dict:
        """The verification report of a model version as a JSON-able dict (see :mod:`oblivio.ledger.report`)."""
        from .report import build_report

        v = self.resolve_version(version)
        run = self.ledger.run(v.run_id) if v.run_id is not None else None
        requests = [r for r in self.ledger.requests() if run is not None and r.id in run.request_ids]
        with self.ledger.Session() as s:
            experiment = s.get(LedgerState, 1).experiment
        return build_report(v, run, requests, experiment=experiment, oblivio_version=__version__)

    def write_report(self, out_dir: str | os.PathLike, version: "int | str | None" = None) -> tuple[Path, Path]:
        """Write ``report-v<ID>.json`` and ``report-v<ID>.html`` (self-contained) into ``out_dir``."""
        from .report import write_report

        return write_report(self.report(version), out_dir)


# ---------------------------------------------------------------------------------------------- helpers
def twin_estimate(info: dict, acc_forget: float) -> dict:
    """An estimate of the gold model's forget accuracy from a method's predicted easy / hard counts.

    TMU's predictor labels each forget sample "easy" (the gold model would still classify it correctly) or "hard",
    so the share of easy samples is its estimate of the gold forget accuracy. Returns ``{}`` when ``info`` has no
    such counts (keys tried: ``predicted_easy``/``predicted_hard``, ``n_easy``/``n_hard``, ``easy``/``hard``,
    ``num_easy``/``num_hard``).
    """
    def count(kind: str) -> int | None:
        for key in (f"predicted_{kind}", f"n_{kind}", f"num_{kind}", kind, f"n_predicted_{kind}"):
            value = info.get(key)
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                return int(value)
            if isinstance(value, float) and value.is_integer():
                return int(value)
        return None

    easy, hard = count("easy"), count("hard")
    if easy is None or hard is None or easy < 0 or hard < 0 or easy + hard == 0:
        return {}
    est = easy / (easy + hard)
    return {"twin_predicted_easy": easy, "twin_predicted_hard": hard, "twin_est_gold_acc_forget": est,
            "twin_est_delta_forget": abs(acc_forget - est)}


MIA_MIN_FORGET = 10
PER_EXAMPLE_ALPHA = 0.05


def per_example_membership(model: nn.Module, forget, test, *, parent: nn.Module | None = None,
                           alpha: float = PER_EXAMPLE_ALPHA) -> dict:
    """A membership check of each forget sample that works for any request size (even one sample).

    For each forget sample, its loss under ``model`` is ranked among the losses of the unseen test samples:
    ``quantile`` is the share of test samples whose loss is at most the sample's. For a sample the model never
    saw this is roughly uniform on [0, 1]; a quantile below ``alpha`` (a loss lower than 95% of unseen samples')
    flags the sample as still looking like a training member. With ``parent``, the quantile under the parent
    model is given beside it (what unlearning changed).

    Returns:
        ``per_example`` (a list of ``{"id", "loss", "quantile", "quantile_parent", "flagged"}``),
        ``per_example_alpha``, ``per_example_n_flagged``, ``per_example_n``.

    Example:
        >>> import torch
        >>> from oblivio.data import ImageDataset
        >>> ds = ImageDataset(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]), ("a", "b"))
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> per_example_membership(net, ds, ds)["per_example_n"]
        4
    """
    from ..metrics.mia import per_example_cross_entropy
    from ..training.evaluate import predict_logits

    def losses(net: nn.Module, ds) -> np.ndarray:
        return per_example_cross_entropy(predict_logits(net, ds).cpu().numpy(), ds.labels.numpy())

    test_losses = np.sort(losses(model, test))
    own = losses(model, forget)
    quantile = np.searchsorted(test_losses, own, side="right") / max(len(test_losses), 1)
    if parent is not None:
        parent_test = np.sort(losses(parent, test))
        parent_q = np.searchsorted(parent_test, losses(parent, forget), side="right") / max(len(parent_test), 1)
    else:
        parent_q = [None] * len(own)
    ids = forget.ids.numpy() if forget.ids is not None else np.arange(len(own))
    rows = [{"id": int(i), "loss": float(l), "quantile": float(q),
             "quantile_parent": None if qp is None else float(qp), "flagged": bool(q < alpha)}
            for i, l, q, qp in zip(ids, own, quantile, parent_q)]
    return {"per_example": rows, "per_example_alpha": alpha, "per_example_n": len(rows),
            "per_example_n_flagged": sum(r["flagged"] for r in rows)}


def _refs(ids: list[int]) -> str:
    return ", ".join(f"#{i}" for i in ids) or "(none)"


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
        raise ScenarioError(f"sample ids must be integers, got {bad[0]!r} ({type(bad[0]).__name__}); "
                            f"{len(bad)} such item(s)")
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


__all__ = ["ApplyInProgressError", "ApplyResult", "DeletionService", "LedgerError", "twin_estimate"]
