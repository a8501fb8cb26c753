"""Applying deletion requests: running the unlearning method, evaluating it, writing and committing the version.

:class:`ApplyMixin` is one part of :class:`~oblivio.ledger.service.DeletionService`. Between two writes it calls
the service's ``_checkpoint(stage)`` (see :data:`~oblivio.ledger.service.APPLY_STAGES`), which tests use to
simulate a crash at a precise point. :func:`~oblivio.ledger.verification.twin_estimate` and
:func:`~oblivio.ledger.verification.per_example_membership` (in :mod:`.verification`) are the verification figures
recorded with each version.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, update
from torch import nn

from ..scenarios import Indices
from ..training.loop import DivergenceError
from ..utils import atomic_torch_save, file_sha256, json_safe, state_dict_hash
from .db import Ledger, LedgerError, RequestRecord, RunRecord, VersionRecord, rowcount
from .paths import TamperedPathError, model_file, models_folder, remove_model_files, temp_siblings
from .schema import OPEN_STATUSES, Artefact, DeletionRequest, ModelVersion, UnlearningRun, utcnow
from .verification import (  # noqa: F401 -- twin_estimate and the membership figures: their old import path
    MIA_MIN_FORGET,
    PER_EXAMPLE_ALPHA,
    PER_EXAMPLE_MAX,
    _per_example_extra,
    _twin_estimate_extra,
    per_example_membership,
    twin_estimate,
)

log = logging.getLogger("oblivio.ledger")


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
        tampered: one message per ``artefacts`` row whose path failed the confinement check
            (:mod:`oblivio.ledger.paths`): reported and left alone, nothing deleted.
    """

    status: str
    runs: tuple[RunRecord, ...] = ()
    version: VersionRecord | None = None
    error: str | None = None
    abandoned_runs: tuple[int, ...] = field(default=())
    removed_files: tuple[str, ...] = field(default=())
    tampered: tuple[str, ...] = field(default=())


class ApplyMixin:
    """Apply for :class:`~oblivio.ledger.service.DeletionService`.

    Uses the service's ``ledger``, ``workdir``, ``experiment``, ``method``, ``hparams``, ``lease_seconds``,
    ``progress``, its lease (:class:`~oblivio.ledger.lease.LeaseMixin`), id index
    (:class:`~oblivio.ledger.intake.IntakeMixin`), ``load_model`` / ``current_version`` and ``_checkpoint``.
    """

    ledger: Ledger
    workdir: Path
    experiment: Any
    method: str
    hparams: dict
    lease_seconds: float
    progress: bool

    if TYPE_CHECKING:  # the other parts of DeletionService (declared here for the type checker)

        @property
        def train_set(self) -> Any: ...
        def _record_artefact(self, rel: str, *, run_id: int | None) -> int: ...
        def _lease(self) -> contextlib.AbstractContextManager[str]: ...
        def _recover(self) -> tuple[tuple[int, ...], tuple[str, ...], tuple[str, ...]]: ...
        def open_requests(self) -> list[RequestRecord]: ...
        def current_version(self) -> VersionRecord | None: ...
        def load_model(self, version: VersionRecord) -> nn.Module: ...
        def _refresh_id_index(self) -> None: ...

    def _checkpoint(self, stage: str) -> None:  # pragma: no cover - the service overrides it
        raise NotImplementedError

    def _run_record(self, run_id: int) -> RunRecord:
        """The record of a run this apply created (missing only when the database was changed by hand)."""
        record = self.ledger.run(run_id)
        if record is None:
            raise LedgerError(f"run {run_id} vanished from the ledger during the apply: it was changed by hand")
        return record

    def _bootstrap(self, *, model: nn.Module | None = None, source: str | None = None) -> VersionRecord:
        """Register version 1 (called under the lease): the original model, or ``model`` imported from ``source``."""
        from ..training import accuracy

        if model is None:
            trained = self.experiment.original_with_meta()
            original = trained.model
        else:
            trained, original = None, model
        digest = state_dict_hash(original)
        role = "imported" if model is not None else "original"
        rel = f"models/{role}-{digest[:16]}.pt"
        artefact = self._record_artefact(rel, run_id=None)
        self._checkpoint("original-recorded")
        atomic_torch_save(original.state_dict(), self.workdir / rel)
        self._checkpoint("original-written")
        metrics = {
            "role": role,
            "acc_train": accuracy(original, self.train_set),
            "acc_test": accuracy(original, self.experiment.data.test),
            "train_seconds": trained.train_seconds if trained is not None else None,
        }
        if source is not None:
            metrics.update(source_file=source, source_sha256=file_sha256(source))
        with self.ledger.transaction() as s:
            state = self.ledger.state(s, for_update=True)
            if state.current_version_id is not None:  # pragma: no cover - we hold the lease
                raise LedgerError("the ledger got a current model version while registering the original")
            row = ModelVersion(
                hash=digest,
                path=rel,
                parent_id=None,
                run_id=None,
                created_at=utcnow(),
                forgotten_ids=[],
                metrics=json_safe(metrics),
            )
            s.add(row)
            s.flush()
            state.current_version_id = row.id
            self.ledger.row(s, Artefact, artefact, what=f"artefact record {artefact}").status = "committed"
            record = VersionRecord.from_row(row, row.id)
        self._checkpoint("original-committed")
        log.info("registered the %s model as version %d (%s)", role, record.id, digest[:16])
        return record

    def apply(
        self,
        *,
        batch: bool = True,
        method: str | None = None,
        hparams: dict[str, Any] | None = None,
        seed: int = 0,
        gold: bool = False,
    ) -> ApplyResult:
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
            TamperedPathError: ``models/`` is a symbolic link or the current version's row names a path the
                service never writes (nothing was changed, no file deleted).
        """
        from ..methods import create_method
        from ..utils import check_seed

        seed = check_seed(seed, what="the run seed (--run-seed)")  # the ledger's INTEGER column, torch and numpy
        method_name = method or self.method
        hp = dict(hparams if hparams is not None else (self.hparams if method_name == self.method else {}))
        create_method(method_name, **hp)  # fail fast on an unknown method or hyper-parameter
        models_folder(self.workdir)  # a linked models/ is refused before recovery deletes anything through it
        with self._lease() as holder:
            self._checkpoint("lease-taken")
            abandoned, removed, tampered = self._recover()
            self._checkpoint("recovered")
            found: dict[str, Any] = {"abandoned_runs": abandoned, "removed_files": removed, "tampered": tampered}
            pending = self.open_requests()
            if not pending:
                return ApplyResult("nothing-to-do", **found)
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
                    return ApplyResult("failed", tuple(runs), version, error, **found)
                version = new_version
            if not runs:
                return ApplyResult("nothing-to-do", **found)
            status = "no-op" if all(r.status == "no-op" for r in runs) else "succeeded"
            return ApplyResult(status, tuple(runs), version, None, **found)

    def _apply_group(
        self, group: list[RequestRecord], holder: str, method_name: str, hp: dict, seed: int, gold: bool
    ) -> tuple[RunRecord, VersionRecord | None, str | None]:
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
            run_row = UnlearningRun(
                request_ids=request_ids,
                method=method_name,
                hparams=json_safe(unlearner.hparams()),
                seed=seed,
                parent_version_id=current.id,
                n_forget=len(forget_ids),
                started_at=utcnow(),
                status="running",
                holder=holder,
            )
            s.add(run_row)
            s.flush()
            run_id = run_row.id
        log.info(
            "run %d: %s on %d request(s), %d samples to forget (from version %d)",
            run_id,
            method_name,
            len(group),
            len(forget_ids),
            current.id,
        )
        self._checkpoint("run-started")
        t0 = time.perf_counter()
        try:
            holdout = splits.holdout if getattr(unlearner, "needs_holdout", False) else None
            unlearned = unlearner(
                model, forget=splits.forget, retain=splits.retain, holdout=holdout, seed=seed, progress=self.progress
            )
        except DivergenceError as exc:
            error = (
                f"training diverged ({exc}); the current model is kept and the requests are retried by the next apply"
            )
            return self._fail_run(run_id, error, request_ids) or self._run_record(run_id), None, error
        except BaseException as exc:
            self._fail_run(run_id, f"{type(exc).__name__}: {exc}", request_ids)
            raise
        seconds = time.perf_counter() - t0
        self._checkpoint("unlearned")
        artefact: int | None = None
        try:
            parent_model = self.load_model(current)
            metrics = self._evaluate(unlearned, splits, unlearner, seconds, gold, seed, parent=parent_model)
            digest = state_dict_hash(unlearned)
            unchanged = digest == current.hash
            if unchanged:  # the same weights: point at the parent's file, write nothing
                rel = current.path
                metrics["unchanged"] = True
                log.warning(
                    "run %d is a no-op: %s returned the parent's weights unchanged (version %d, %s); the "
                    "requests are recorded as applied but the model did not change",
                    run_id,
                    method_name,
                    current.id,
                    digest[:16],
                )
            else:
                rel = f"models/run{run_id:05d}-{digest[:16]}.pt"
                artefact = self._record_artefact(rel, run_id=run_id)
                self._checkpoint("artefact-recorded")
                atomic_torch_save(unlearned.state_dict(), self.workdir / rel)
            self._checkpoint("model-written")
            version = self._commit(
                run_id,
                holder,
                current,
                group,
                digest,
                rel,
                forget_ids,
                metrics,
                seconds,
                artefact=artefact,
                unchanged=unchanged,
            )
        except BaseException as exc:
            self._fail_run(run_id, f"{type(exc).__name__}: {exc}", request_ids, artefact=artefact)
            raise
        self._checkpoint("committed")
        log.info(
            "run %d %s in %.1fs: version %d (%s) is current",
            run_id,
            "was a no-op" if unchanged else "succeeded",
            seconds,
            version.id,
            digest[:16],
        )
        return self._run_record(run_id), version, None

    def _commit(
        self,
        run_id: int,
        holder: str,
        parent: VersionRecord,
        group: list[RequestRecord],
        digest: str,
        rel: str,
        forget_ids: list[int],
        metrics: dict,
        seconds: float,
        *,
        artefact: int | None,
        unchanged: bool,
    ) -> VersionRecord:
        """One transaction: new version current, run succeeded (or no-op), requests applied, artefact committed
        (or nothing at all)."""
        model_file(self.workdir, rel, row="the new model version")  # the confinement rule, on write
        now = utcnow()
        with self.ledger.transaction() as s:
            if not self.ledger.renew(holder, self.lease_seconds, session=s):
                raise LedgerError("the apply lease was lost (expired and taken over); this run is not committed")
            state = self.ledger.state(s, for_update=True)
            if state.current_version_id != parent.id:
                raise LedgerError(
                    f"the current version changed during the run ({parent.id} -> "
                    f"{state.current_version_id}); not committed"
                )
            row = ModelVersion(
                hash=digest,
                path=rel,
                parent_id=parent.id,
                run_id=run_id,
                created_at=now,
                forgotten_ids=forget_ids,
                metrics=json_safe(metrics),
            )
            s.add(row)
            s.flush()
            run = s.get(UnlearningRun, run_id)
            if run is None or run.status != "running":
                raise LedgerError(f"run {run_id} is no longer running (status {run.status if run else 'missing'})")
            run.status = "no-op" if unchanged else "succeeded"
            run.ended_at, run.seconds, run.result_version_id = now, seconds, row.id
            if unchanged:
                run.error = (
                    f"no-op: the method returned the weights of version {parent.id} unchanged (same hash); "
                    "the requests are recorded as applied, the model did not change"
                )
            ids = [r.id for r in group]
            detail = f"no-op: applied by run {run_id}, whose method returned the model unchanged" if unchanged else None
            res = s.execute(
                update(DeletionRequest)
                .where(DeletionRequest.id.in_(ids), DeletionRequest.status.in_(OPEN_STATUSES))
                .values(
                    status="applied",
                    applied_version_id=row.id,
                    applied_run_id=run_id,
                    status_detail=detail,
                    updated_at=now,
                )
            )
            if rowcount(res) != len(ids):
                raise LedgerError(f"requests {ids} changed during the run (cancelled?); not committed")
            if artefact is not None:
                self.ledger.row(s, Artefact, artefact, what=f"artefact record {artefact}").status = "committed"
            state.current_version_id = row.id
            s.flush()
            return VersionRecord.from_row(row, row.id)

    def _fail_run(
        self, run_id: int, error: str, request_ids: list[int], *, artefact: int | None = None
    ) -> RunRecord | None:
        """Mark the run failed and its requests ``failed`` (retried by the next apply); delete its uncommitted file.

        The file deleted is the one the ``artefacts`` row records, and only when that path passes the confinement
        check (:func:`~oblivio.ledger.paths.model_file`); a row that fails it is reported and left alone.
        Best effort: when the database or the disk is what failed, whatever is left is cleaned up by the next
        apply's recovery (the run is still ``running``, the file still a ``pending`` artefact).
        """
        log.error("run %d failed: %s", run_id, error)
        try:
            with self.ledger.transaction() as s:
                run = self.ledger.row(s, UnlearningRun, run_id, what=f"run {run_id}")
                if run.status != "running":  # committed meanwhile (the error came after the commit)
                    return RunRecord.from_row(run)
                run.status, run.ended_at, run.error = "failed", utcnow(), error[:4000]
                run.seconds = (run.ended_at - run.started_at).total_seconds()
                s.execute(
                    update(DeletionRequest)
                    .where(DeletionRequest.id.in_(request_ids), DeletionRequest.status.in_(OPEN_STATUSES))
                    .values(
                        status="failed",
                        updated_at=run.ended_at,
                        status_detail=f"run {run_id} failed: {error[:300]}; retried by the next apply",
                    )
                )
            if artefact is not None:
                with self.ledger.Session() as s:
                    row = s.get(Artefact, artefact)
                    rel = row.path if row is not None and row.status == "pending" else None
                if rel is not None:
                    try:
                        target = model_file(self.workdir, rel, row=f"artefacts row {artefact}")
                    except TamperedPathError as exc:
                        log.error("%s", exc)
                        return self.ledger.run(run_id)
                    try:
                        remove_model_files(self.workdir, [target, *temp_siblings(target)])
                    except TamperedPathError as exc:
                        log.error("%s", exc)
                        return self.ledger.run(run_id)
                    with self.ledger.transaction() as s:
                        s.execute(delete(Artefact).where(Artefact.id == artefact, Artefact.status == "pending"))
            return self.ledger.run(run_id)
        except Exception as exc:  # the database or the disk failed too: recovery finishes the job
            log.error("could not record the failure of run %d (%s); the next apply recovers it", run_id, exc)
            return None

    def _evaluate(
        self,
        model: nn.Module,
        splits,
        unlearner,
        seconds: float,
        gold: bool,
        seed: int,
        *,
        parent: nn.Module | None = None,
    ) -> dict:
        from ..metrics.cost_ratio import RunCost
        from ..metrics.extras import Extra
        from ..metrics.report import evaluate_unlearning

        trained_gold = self.experiment.gold_with_meta(splits.split) if gold else None
        # one assembly point: the cost against the gold training (only with a gold model), TMU's estimate of the
        # gold forget accuracy, and the per-example membership check against the parent version
        extras: list = [
            *(["cost"] if trained_gold is not None else []),
            Extra("twin-estimate", _twin_estimate_extra),
            *([Extra("per-example", _per_example_extra)] if len(splits.forget) <= PER_EXAMPLE_MAX else []),
        ]
        evaluation = evaluate_unlearning(
            model,
            forget=splits.forget,
            retain=splits.retain,
            test=splits.test,
            gold=trained_gold.model if trained_gold else None,
            seed=seed,
            extras=extras,
            original=parent,
            info=unlearner.info or {},
            cost=RunCost(seconds=seconds),
            reference_cost=trained_gold.cost if trained_gold else None,
        )
        twin = evaluation.pop_group("twin-estimate")
        per_example = evaluation.pop_group("per-example")
        cost = evaluation.pop_group("cost")
        metrics: dict[str, Any] = dict(evaluation)
        metrics.update(
            n_forget=len(splits.forget),
            n_retain=len(splits.retain),
            n_test=len(splits.test),
            seconds=seconds,
            method=unlearner.name,
        )
        info = {k: v for k, v in (unlearner.info or {}).items() if isinstance(v, (int, float, str, bool))}
        metrics["method_info"] = info
        if trained_gold is not None:  # the ledger's names for the "cost" group's wall seconds and RTE
            metrics["gold_seconds"] = cost["gold_train_seconds"]
            metrics["cost_ratio"] = cost["rte"]
            metrics["alignment_reference"] = "gold"
            metrics.update(self._recipe_check())
        metrics.update(twin)
        if trained_gold is None:
            metrics["alignment_reference"] = "twin" if twin else "none"
        if len(splits.forget) < MIA_MIN_FORGET:
            metrics["mia_skipped"] = (
                f"the loss MIA needs at least {MIA_MIN_FORGET} forget samples (10-split "
                f"cross-validation); this forget set has {len(splits.forget)}: see the "
                "per-example check"
            )
        metrics.update(per_example)
        return metrics

    def _recipe_check(self) -> dict[str, Any]:
        """Which recipe trained version 1 (the experiment's original, or weights imported with ``init --model-file``)
        and the gold model, and the warning when they differ (:func:`oblivio.training.recipe_mismatch`)."""
        from ..training.functions import RecipeSource, TrainFunction, recipe_mismatch

        recipe = self.experiment.config.recipe
        first = next((v for v in self.ledger.versions() if v.parent_id is None), None)
        if first is None or first.metrics.get("role") != "imported":
            original = RecipeSource.of(recipe)
        elif isinstance(recipe, TrainFunction):
            original = RecipeSource.of(recipe, assumed=True)
        else:
            original = RecipeSource.stated(None)
        gold = RecipeSource.of(recipe)
        return {
            "original_recipe": original.to_dict(),
            "gold_recipe": gold.to_dict(),
            "recipe_warning": recipe_mismatch(original, gold),
        }
