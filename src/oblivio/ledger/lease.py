"""The apply lease and crash recovery: one apply at a time, takeover of a dead holder, pending-artefact recovery.

:class:`LeaseMixin` is one part of :class:`~oblivio.ledger.service.DeletionService`. An apply holds the lease (a
row in the ledger, renewed by a heartbeat thread while it works; a killed holder's lease is taken over, see
:meth:`~oblivio.ledger.db.Ledger.try_acquire`). Before writing a file the service records it as a ``pending``
artefact; after a crash :meth:`LeaseMixin._recover` marks stale ``running`` runs abandoned and deletes only those
recorded, uncommitted files (never anything else in the folder).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import delete, select, update

from .db import ApplyInProgressError, Ledger, LedgerError, new_holder
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
        """Record (``pending``) a file about to be written; refuse to overwrite a file the ledger did not record."""
        target = self.workdir / rel
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
