"""The apply lease and crash recovery: one apply at a time, takeover of a dead holder, pending-artefact recovery.

:class:`LeaseMixin` is one part of :class:`~oblivio.ledger.service.DeletionService`. An apply holds the lease (a
row in the ledger, renewed by a heartbeat thread while it works; a killed holder's lease is taken over, see
:meth:`~oblivio.ledger.db.Ledger.try_acquire`). Before writing a file the service records it as a ``pending``
artefact; after a crash :meth:`LeaseMixin._recover` marks stale ``running`` runs abandoned and deletes only those
recorded, uncommitted files (never anything else in the folder), and only when their recorded path passes the
confinement check of :mod:`.paths` (a row that fails is reported as tampering and left alone).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import delete, select, update

from .db import ApplyInProgressError, Ledger, LedgerError, new_holder
from .paths import TamperedPathError, audit_rows, model_file, remove_model_files, temp_siblings
from .schema import Artefact, DeletionRequest, ModelVersion, UnlearningRun, utcnow

log = logging.getLogger("oblivio.ledger")


class LeaseMixin:
    """Lease, artefact bookkeeping and recovery for :class:`~oblivio.ledger.service.DeletionService`.

    Uses the service's ``ledger``, ``workdir`` and ``lease_seconds``.
    """

    ledger: Ledger
    workdir: Path
    lease_seconds: float

    def _record_artefact(self, rel: str, *, run_id: int | None) -> int:
        """Record (``pending``) a file about to be written; refuse to overwrite a file the ledger did not record.

        ``rel`` must be one of the service's own names inside ``models/`` (:func:`~oblivio.ledger.paths.model_file`,
        the same check recovery and loading apply when they read it back).
        """
        target = model_file(self.workdir, rel, row=f"the new artefact {rel!r}")
        with self.ledger.transaction() as s:
            known = s.scalars(select(Artefact).where(Artefact.path == rel)).first()
            if target.exists() and known is None:
                raise LedgerError(
                    f"{target} exists but this ledger did not write it; refusing to overwrite it "
                    "(move it away). Nothing was changed."
                )
            row = Artefact(path=rel, run_id=run_id, status="pending", created_at=utcnow())
            s.add(row)
            s.flush()
            return row.id

    def tampered_rows(self) -> list[str]:
        """One warning line per ``model_versions`` or ``artefacts`` row whose path fails the confinement check
        (:func:`~oblivio.ledger.paths.audit_rows`), for the commands that show the ledger (``request list``,
        ``request report``): such a row is never acted on, and must not be shown as fine either."""
        with self.ledger.Session() as s:
            versions = s.execute(select(ModelVersion.id, ModelVersion.path).order_by(ModelVersion.id))
            rows = [(f"model_versions row {i}", p) for i, p in versions]
            artefacts = s.execute(select(Artefact.id, Artefact.path).order_by(Artefact.id))
            rows += [(f"artefacts row {i}", p) for i, p in artefacts]
        return audit_rows(self.workdir, rows)

    @contextlib.contextmanager
    def _lease(self) -> Iterator[str]:
        holder = new_holder()
        if not self.ledger.try_acquire(holder, self.lease_seconds):
            info = self.ledger.lease_info()
            since = info.acquired_at.isoformat(timespec="seconds") + "Z" if info.acquired_at else "?"
            raise ApplyInProgressError(
                f"another apply is running (lease holder {info.holder}, since {since}); nothing was changed and "
                "pending requests stay pending: try again when it has finished"
            )
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

    def _recover(self) -> tuple[tuple[int, ...], tuple[str, ...], tuple[str, ...]]:
        """Under the lease: mark stale ``running`` runs abandoned and their requests failed; delete the files that
        an interrupted apply recorded (``artefacts`` rows still ``pending``) and no version references.

        Only recorded files (and their temporary siblings from an interrupted atomic write) are ever deleted, and
        only when the recorded path passes :func:`~oblivio.ledger.paths.model_file` (one of the service's names,
        inside ``models/``, not a symbolic link). A row that fails is reported (logged, and returned) as tampering
        and left alone: its status is not changed and no file is touched.

        Returns:
            ``(abandoned run ids, removed files, tampering messages)``.
        """
        tampered: list[str] = []
        with self.ledger.transaction() as s:
            stale = list(s.scalars(select(UnlearningRun).where(UnlearningRun.status == "running")))
            now = utcnow()
            for run in stale:
                run.status = "abandoned"
                run.ended_at = now
                run.error = (
                    "the process running it stopped before committing (killed or crashed); its requests "
                    "stayed open and are re-applied"
                )
                s.execute(
                    update(DeletionRequest)
                    .where(DeletionRequest.id.in_(list(run.request_ids)), DeletionRequest.status == "pending")
                    .values(
                        status="failed",
                        updated_at=now,
                        status_detail=f"run {run.id} was interrupted before committing; retried by the next apply",
                    )
                )
            referenced = set(s.scalars(select(ModelVersion.path)))
            orphans: list[tuple[int, Path]] = []
            for row in s.scalars(select(Artefact).where(Artefact.status == "pending")):
                try:
                    target = model_file(self.workdir, row.path, row=f"artefacts row {row.id}")
                except TamperedPathError as exc:
                    tampered.append(str(exc))
                    continue
                if row.path in referenced:
                    row.status = "committed"
                else:
                    orphans.append((row.id, target))
        for message in tampered:
            log.error("%s", message)
        removed: list[str] = []
        for row_id, target in orphans:
            try:
                gone = remove_model_files(self.workdir, [target, *temp_siblings(target)])
            except TamperedPathError as exc:  # models/ became a link after the check: act on nothing
                log.error("%s", exc)
                tampered.append(str(exc))
                break
            for path in gone:
                log.warning("removed %s, written by an interrupted apply and never committed", path)
                removed.append(str(path.relative_to(self.workdir)))
            with self.ledger.transaction() as s:
                s.execute(delete(Artefact).where(Artefact.id == row_id))
        if stale:
            log.warning("marked %d stale running run(s) abandoned: %s", len(stale), [r.id for r in stale])
        return tuple(r.id for r in stale), tuple(removed), tuple(tampered)
