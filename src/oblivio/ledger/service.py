"""Deletion requests as a workflow: record, batch, unlearn, verify, with a crash-safe ledger.

A :class:`DeletionService` keeps, in one working folder, a ledger database (``ledger.db``, or any SQLAlchemy URL)
and the model versions it has served (``models/``). The life of a request:

1. :meth:`DeletionService.add_request` validates the sample ids against the training set and commits the request
   (``pending``) before anything else happens.
2. :meth:`DeletionService.apply` takes the apply lease, serves every pending request together (the forget set is
   the union of their ids and everything forgotten before), starting from the current model version, with a
   registered unlearning method; it evaluates the result, writes the new model atomically and only then, in one
   transaction, marks the run succeeded, the requests applied and the new version current.
3. :meth:`DeletionService.report` / :meth:`DeletionService.write_report`: the verification report (JSON + HTML).

Example:
    >>> from oblivio.ledger import DeletionService                                  # doctest: +SKIP
    >>> svc = DeletionService("ledger-dir", experiment="tiny", method="finetune")  # doctest: +SKIP
    >>> req = svc.add_request([3, 14, 15], requester="alice", reason="GDPR art. 17")  # doctest: +SKIP
    >>> result = svc.apply()                                                       # doctest: +SKIP
    >>> svc.write_report("report-dir")                                             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from sqlalchemy import select, update
from torch import nn

from .. import __version__
from ..experiments import Experiment, ExperimentConfig
from ..scenarios import Indices, ScenarioError, read_indices_file, validate_ids
from ..training.loop import DivergenceError
from ..utils import (CheckpointError, atomic_torch_save, config_hash, indices_hash, json_safe, safe_torch_load,
                     state_dict_hash, to_jsonable)
from .db import (ApplyInProgressError, Ledger, LedgerError, RequestRecord, RunRecord, VersionRecord, _safe_url,
                 new_holder)
from .schema import DeletionRequest, LedgerState, ModelVersion, UnlearningRun, utcnow

log = logging.getLogger("oblivio.ledger")

MAX_REQUESTER_CHARS = 200
MAX_REASON_CHARS = 4000
MAX_IDS_FILE_BYTES = 64 * 1024 * 1024


def _checkpoint_hook(stage: str) -> None:
    """Called at the stages of an apply (``"run-started"``, ``"model-written"``, ``"committed"``).

    A no-op; tests replace it to simulate a crash at a precise point.
    """


@dataclass(frozen=True)
class ApplyResult:
    """What :meth:`DeletionService.apply` did.

    Attributes:
        status: ``"succeeded"``, ``"failed"`` (a run failed; requests stay pending) or ``"nothing-to-do"``.
        runs: the runs made, in order.
        version: the new current model version (None unless a run succeeded).
        error: why a run failed.
        abandoned_runs: ids of stale ``running`` runs found (a killed earlier apply) and marked ``abandoned``.
    """

    status: str
    runs: tuple[RunRecord, ...] = ()
    version: VersionRecord | None = None
    error: str | None = None
    abandoned_runs: tuple[int, ...] = field(default=())


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
    """

    def __init__(self, workdir: str | os.PathLike, *, experiment: "Experiment | ExperimentConfig | str" = "cpu",
                 method: str = "tmu", hparams: dict[str, Any] | None = None, db_url: str | None = None,
                 store: Any = None, lease_seconds: float = 300.0, progress: bool = False) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.models_dir = self.workdir / "models"
        self.models_dir.mkdir(exist_ok=True)
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")
        self.experiment = (experiment if isinstance(experiment, Experiment)
                           else Experiment(experiment, store=store, progress=progress))
        self.method = method
        self.hparams = dict(hparams or {})
        self.lease_seconds = float(lease_seconds)
        self.progress = progress
        self.db_url = db_url or os.environ.get("OBLIVIO_LEDGER_URL") or f"sqlite:///{(self.workdir / 'ledger.db').resolve()}"
        self.ledger = Ledger(self.db_url)
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
            The stored request: ``pending``, or ``rejected`` when every id is already in pending requests
            (``status_detail`` names them).

        Raises:
            ScenarioError: empty, malformed or non-integer ids; duplicates within the request; ids unknown to the
                training set; ids already forgotten by an applied request; a request that (with everything
                forgotten or pending) would cover the whole training set. Nothing is written.
        """
        requester = _clean_text(requester, "requester", MAX_REQUESTER_CHARS, required=True)
        reason = _clean_text(reason, "reason", MAX_REASON_CHARS, required=False)
        arr = _read_ids(ids) if isinstance(ids, (str, os.PathLike)) else _coerce_ids(ids)
        train = self.train_set
        uniq = validate_ids(train, arr)
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
            pending = list(s.scalars(select(DeletionRequest).where(DeletionRequest.status == "pending")))
            pending_ids = set().union(*(set(r.sample_ids) for r in pending)) if pending else set()
            total = len(forgotten | pending_ids | set(id_list))
            if total >= len(train):
                raise ScenarioError(f"with the ids already forgotten ({len(forgotten)}) and pending "
                                    f"({len(pending_ids)}), this request would remove all {len(train)} training "
                                    "samples: nothing would be left to retain; train a new model instead")
            row = DeletionRequest(requester=requester, created_at=utcnow(), sample_ids=id_list, n_samples=len(id_list),
                                  ids_hash=indices_hash(id_list), reason=reason, status="pending",
                                  base_version_id=state.current_version_id)
            if set(id_list) <= pending_ids:
                dup_of = [r.id for r in pending if set(r.sample_ids) & set(id_list)]
                row.status = "rejected"
                row.status_detail = f"duplicate: every id is already in pending request(s) {_refs(dup_of)}"
                row.updated_at = row.created_at
            s.add(row)
            s.flush()
            record = RequestRecord.from_row(row)
        if record.status == "rejected":
            log.warning("request #%d rejected: %s", record.id, record.status_detail)
        return record

    def list_requests(self, status: str | None = None) -> list[RequestRecord]:
        """All requests (oldest first), optionally only those with ``status``."""
        return self.ledger.requests(status)

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
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{path} (model version {version.id}) does not fit this model: {exc}") from exc
        digest = state_dict_hash(model)
        if digest != version.hash:
            raise CheckpointError(f"{path} (model version {version.id}) was modified or corrupted: its weights hash to "
                                  f"{digest[:16]}, the ledger recorded {version.hash[:16]}; restore the file from a "
                                  "backup (nothing was changed)")
        model.eval()
        return model

    def _bootstrap(self) -> VersionRecord:
        """Register the experiment's original model as version 1 (called under the lease)."""
        from ..training import accuracy

        original = self.experiment.original()
        digest = state_dict_hash(original)
        rel = f"models/original-{digest[:16]}.pt"
        atomic_torch_save(original.state_dict(), self.workdir / rel)
        metrics = {"role": "original", "acc_train": accuracy(original, self.train_set),
                   "acc_test": accuracy(original, self.experiment.data.test),
                   "train_seconds": (getattr(original, "oblivio_meta", {}) or {}).get("train_seconds")}
        with self.ledger.transaction() as s:
            state = s.get(LedgerState, 1, with_for_update=True)
            if state.current_version_id is not None:  # pragma: no cover - we hold the lease
                raise LedgerError("the ledger got a current model version while registering the original")
            row = ModelVersion(hash=digest, path=rel, parent_id=None, run_id=None, created_at=utcnow(),
                               forgotten_ids=[], metrics=json_safe(metrics))
            s.add(row)
            s.flush()
            state.current_version_id = row.id
            record = VersionRecord.from_row(row, row.id)
        log.info("registered the original model as version %d (%s)", record.id, digest[:16])
        return record

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

    def _recover(self) -> tuple[int, ...]:
        """Under the lease: mark stale ``running`` runs abandoned and delete files no version references."""
        with self.ledger.transaction() as s:
            stale = list(s.scalars(select(UnlearningRun).where(UnlearningRun.status == "running")))
            for run in stale:
                run.status = "abandoned"
                run.ended_at = utcnow()
                run.error = ("the process running it stopped before committing (killed or crashed); its requests "
                             "stayed pending and are re-applied")
            referenced = {self._resolve_path(p).resolve() for p in s.scalars(select(ModelVersion.path))}
        for path in self.models_dir.iterdir():
            if path.is_file() and (path.name.endswith(".tmp") or
                                   (path.suffix == ".pt" and path.resolve() not in referenced)):
                log.warning("removing %s, left by an interrupted apply", path.name)
                path.unlink(missing_ok=True)
        if stale:
            log.warning("marked %d stale running run(s) abandoned: %s", len(stale), [r.id for r in stale])
        return tuple(r.id for r in stale)

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
            abandoned = self._recover()
            pending = self.ledger.requests("pending")
            if not pending:
                return ApplyResult("nothing-to-do", abandoned_runs=abandoned)
            groups = [pending] if batch else [[r] for r in pending]
            runs: list[RunRecord] = []
            version = None
            for group in groups:
                run, new_version, error = self._apply_group(group, holder, method_name, hp, seed, gold)
                runs.append(run)
                if error is not None:
                    return ApplyResult("failed", tuple(runs), version, error, abandoned)
                version = new_version
            return ApplyResult("succeeded", tuple(runs), version, None, abandoned)

    def _apply_group(self, group: list[RequestRecord], holder: str, method_name: str, hp: dict, seed: int,
                     gold: bool) -> tuple[RunRecord, VersionRecord | None, str | None]:
        from ..methods import create_method

        current = self.current_version() or self._bootstrap()
        model = self.load_model(current)  # CheckpointError before anything is recorded
        forget_ids = sorted(set(current.forgotten_ids).union(*(r.sample_ids for r in group)))
        splits = self.experiment.unlearning_splits(Indices(ids=tuple(forget_ids)))
        unlearner = create_method(method_name, **hp)
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
            error = f"training diverged ({exc}); the current model is kept and the requests stay pending"
            return self._fail_run(run_id, error), None, error
        except BaseException as exc:
            self._fail_run(run_id, f"{type(exc).__name__}: {exc}")
            raise
        seconds = time.perf_counter() - t0
        try:
            metrics = self._evaluate(unlearned, splits, unlearner, seconds, gold, seed)
            digest = state_dict_hash(unlearned)
            rel = f"models/run{run_id:05d}-{digest[:16]}.pt"
            path = atomic_torch_save(unlearned.state_dict(), self.workdir / rel)
            _checkpoint_hook("model-written")
            version = self._commit(run_id, holder, current, group, digest, rel, forget_ids, metrics, seconds)
        except BaseException as exc:
            if path is not None:
                path.unlink(missing_ok=True)
            self._fail_run(run_id, f"{type(exc).__name__}: {exc}")
            raise
        _checkpoint_hook("committed")
        log.info("run %d succeeded in %.1fs: version %d (%s) is current", run_id, seconds, version.id, digest[:16])
        return self.ledger.run(run_id), version, None

    def _commit(self, run_id: int, holder: str, parent: VersionRecord, group: list[RequestRecord], digest: str,
                rel: str, forget_ids: list[int], metrics: dict, seconds: float) -> VersionRecord:
        """One transaction: new version current, run succeeded, requests applied (or nothing at all)."""
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
            run.status, run.ended_at, run.seconds, run.result_version_id = "succeeded", now, seconds, row.id
            ids = [r.id for r in group]
            res = s.execute(update(DeletionRequest)
                            .where(DeletionRequest.id.in_(ids), DeletionRequest.status == "pending")
                            .values(status="applied", applied_version_id=row.id, applied_run_id=run_id, updated_at=now))
            if res.rowcount != len(ids):
                raise LedgerError(f"requests {ids} changed during the run; not committed")
            state.current_version_id = row.id
            s.flush()
            return VersionRecord.from_row(row, row.id)

    def _fail_run(self, run_id: int, error: str) -> RunRecord:
        with self.ledger.transaction() as s:
            run = s.get(UnlearningRun, run_id)
            run.status, run.ended_at, run.error = "failed", utcnow(), error[:4000]
            run.seconds = (run.ended_at - run.started_at).total_seconds()
        log.error("run %d failed: %s", run_id, error)
        return self.ledger.run(run_id)

    def _evaluate(self, model: nn.Module, splits, unlearner, seconds: float, gold: bool, seed: int) -> dict:
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
    """A flat int64 array from a sequence of integers (ScenarioError on anything else)."""
    if isinstance(ids, (str, bytes)):
        raise ScenarioError("sample ids must be a sequence of integers (or a file path)")
    try:
        arr = np.asarray(ids)
    except (ValueError, TypeError) as exc:
        raise ScenarioError(f"sample ids must be a flat list of integers: {exc}") from None
    if arr.dtype.kind == "b" or (arr.dtype.kind not in "iu" and arr.size):
        if arr.dtype.kind == "O" and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool)
                                         for x in arr.reshape(-1)):
            raise ScenarioError("sample ids out of range (they must fit in 64 bits)")
        raise ScenarioError(f"sample ids must be integers, got {arr.dtype} values")
    return arr.astype(np.int64).reshape(-1)


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
