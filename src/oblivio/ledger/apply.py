"""Applying deletion requests: running the unlearning method, evaluating it, writing and committing the version.

:class:`ApplyMixin` is one part of :class:`~oblivio.ledger.service.DeletionService`. Between two writes it calls
the service's ``_checkpoint(stage)`` (see :data:`~oblivio.ledger.service.APPLY_STAGES`), which tests use to
simulate a crash at a precise point. :func:`twin_estimate` and :func:`per_example_membership` are the verification
figures recorded with each version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, update
from torch import nn

from ..scenarios import Indices
from ..training.loop import DivergenceError
from ..utils import atomic_torch_save, file_sha256, json_safe, state_dict_hash
from .db import Ledger, LedgerError, RequestRecord, RunRecord, VersionRecord
from .schema import OPEN_STATUSES, Artefact, DeletionRequest, LedgerState, ModelVersion, UnlearningRun, utcnow

log = logging.getLogger("oblivio.ledger")

PER_EXAMPLE_MAX = 50
"""Forget sets up to this size get the per-example membership check (the loss MIA needs at least 10 samples)."""


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

    def _checkpoint(self, stage: str) -> None:  # pragma: no cover - the service overrides it
        raise NotImplementedError

    def _bootstrap(self, *, model: nn.Module | None = None, source: str | None = None) -> VersionRecord:
        """Register version 1 (called under the lease): the original model, or ``model`` imported from ``source``."""
        from ..training import accuracy

        trained = self.experiment.original_with_meta() if model is None else None
        original = model if model is not None else trained.model
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
            state = s.get(LedgerState, 1, with_for_update=True)
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
            s.get(Artefact, artefact).status = "committed"
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
        """
        from ..methods import create_method
        from ..utils import check_seed

        seed = check_seed(seed, what="the run seed (--run-seed)")  # the ledger's INTEGER column, torch and numpy
        method_name = method or self.method
        hp = dict(hparams if hparams is not None else (self.hparams if method_name == self.method else {}))
        create_method(method_name, **hp)  # fail fast on an unknown method or hyper-parameter
        with self._lease() as holder:
            self._checkpoint("lease-taken")
            abandoned, removed = self._recover()
            self._checkpoint("recovered")
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
        path: Path | None = None
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
            return self._fail_run(run_id, error, request_ids) or self.ledger.run(run_id), None, error
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
                path = atomic_torch_save(unlearned.state_dict(), self.workdir / rel)
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
            self._fail_run(
                run_id,
                f"{type(exc).__name__}: {exc}",
                request_ids,
                artefact=artefact,
                path=path or (self.workdir / rel if artefact is not None else None),
            )
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
        return self.ledger.run(run_id), version, None

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
        now = utcnow()
        with self.ledger.transaction() as s:
            if not self.ledger.renew(holder, self.lease_seconds, session=s):
                raise LedgerError("the apply lease was lost (expired and taken over); this run is not committed")
            state = s.get(LedgerState, 1, with_for_update=True)
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
            if res.rowcount != len(ids):
                raise LedgerError(f"requests {ids} changed during the run (cancelled?); not committed")
            if artefact is not None:
                s.get(Artefact, artefact).status = "committed"
            state.current_version_id = row.id
            s.flush()
            return VersionRecord.from_row(row, row.id)

    def _fail_run(
        self, run_id: int, error: str, request_ids: list[int], *, artefact: int | None = None, path: Path | None = None
    ) -> RunRecord | None:
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
                if path is not None:
                    for p in [path, *path.parent.glob(f".{path.name}.*.tmp")]:
                        p.unlink(missing_ok=True)
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


def _twin_estimate_extra(ctx) -> dict:
    return twin_estimate(ctx.info, ctx.metrics["acc_forget"])


def _per_example_extra(ctx) -> dict:
    return per_example_membership(ctx.model, ctx.forget, ctx.splits["test"], parent=ctx.original)


def twin_estimate(info: Mapping[str, Any], acc_forget: float) -> dict:
    """An estimate of the gold model's forget accuracy from TMU's twin problem (or a method's easy / hard counts).

    The twin problem's easy rate (``info["twin_easy_rate"]``: the share of twin samples its gold model, ``M_o``, gets
    right) estimates gold's accuracy on ``D_f`` directly. Without it, the share of forget samples the method
    labelled easy is the estimate (the forget accuracy it aims for). Measured on the 30 units of the committed TMU
    Table 1 (docs/results/tmu-table1.jsonl), the twin easy rate is the closer one: mean error 4.3 points against
    5.8 for the decided share under the default rule (which leans toward fewer flips), 6.6 against 12.6 under the
    paper's (``tmu.paper``). Reads the declared :class:`~oblivio.methods.tmu.info.TMUInfo` keys ``twin_easy_rate``
    (a number in [0, 1]), ``predicted_easy`` and ``predicted_hard`` (integers); returns ``{}`` when ``info`` has no
    such counts. ``twin_est_source`` says which estimate was used.

    Example:
        >>> twin_estimate({"predicted_easy": 3, "predicted_hard": 1}, 0.5)["twin_est_gold_acc_forget"]
        0.75
        >>> twin_estimate({"predicted_easy": 3, "predicted_hard": 1, "twin_easy_rate": 0.8}, 0.5)["twin_est_source"]
        'twin_easy_rate'
        >>> twin_estimate({"n_easy": 3, "n_hard": 1}, 0.5)
        {}
    """
    from ..methods.tmu.info import PREDICTED_EASY, PREDICTED_HARD, TWIN_EASY_RATE

    def count(key: str) -> int | None:
        value = info.get(key)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)
        return None

    easy, hard = count(PREDICTED_EASY), count(PREDICTED_HARD)
    if easy is None or hard is None or easy < 0 or hard < 0 or easy + hard == 0:
        return {}
    est, source = easy / (easy + hard), "decided_easy_share"
    rate = info.get(TWIN_EASY_RATE)
    if isinstance(rate, (float, int, np.floating)) and not isinstance(rate, bool) and 0 <= float(rate) <= 1:
        est, source = float(rate), "twin_easy_rate"
    return {
        "twin_predicted_easy": easy,
        "twin_predicted_hard": hard,
        "twin_est_gold_acc_forget": est,
        "twin_est_delta_forget": abs(acc_forget - est),
        "twin_est_source": source,
    }


MIA_MIN_FORGET = 10
PER_EXAMPLE_ALPHA = 0.05


def per_example_membership(
    model: nn.Module, forget, test, *, parent: nn.Module | None = None, alpha: float = PER_EXAMPLE_ALPHA
) -> dict:
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
    rows = [
        {
            "id": int(i),
            "loss": float(l),
            "quantile": float(q),
            "quantile_parent": None if qp is None else float(qp),
            "flagged": bool(q < alpha),
        }
        for i, l, q, qp in zip(ids, own, quantile, parent_q)
    ]
    return {
        "per_example": rows,
        "per_example_alpha": alpha,
        "per_example_n": len(rows),
        "per_example_n_flagged": sum(r["flagged"] for r in rows),
    }
