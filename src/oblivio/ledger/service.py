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

The service is split by job: :mod:`.intake` (validating and recording requests), :mod:`.lease` (the apply lease,
takeover and recovery) and :mod:`.apply` (running the method, writing the version); this module is the facade.

The stages of an apply, in order (a test replaces :func:`_checkpoint_hook` to crash at one):

    >>> APPLY_STAGES[:2], APPLY_STAGES[-1]
    (('lease-taken', 'recovered'), 'committed')
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from torch import nn

from .. import __version__
from ..experiments import Experiment, ExperimentConfig
from ..utils import CheckpointError, config_hash, safe_torch_load, state_dict_hash, to_jsonable
from .apply import ApplyMixin, ApplyResult
from .db import (
    ApplyInProgressError,
    Ledger,
    LedgerError,
    RunRecord,
    VersionRecord,
    _safe_url,
    check_lease_seconds,
    check_persistent_url,
    open_workdir,
)
from .intake import MAX_IDS_FILE_BYTES, MAX_REASON_CHARS, MAX_REQUESTER_CHARS, IntakeMixin
from .lease import LeaseMixin
from .paths import TamperedPathError, model_file, models_folder
from .verification import MIA_MIN_FORGET, PER_EXAMPLE_ALPHA, PER_EXAMPLE_MAX, per_example_membership, twin_estimate

log = logging.getLogger("oblivio.ledger")

DEFAULT_METHOD = "tmu.guarded"
"""The method ``apply`` runs unless told otherwise (issue 23: TMU with its guard, never the worst method on the tested
request shapes; docs/tmu.md "No catastrophic answers")."""

APPLY_STAGES = (
    "lease-taken",
    "recovered",
    "original-recorded",
    "original-written",
    "original-committed",
    "run-started",
    "unlearned",
    "artefact-recorded",
    "model-written",
    "committed",
)
"""The points between two writes of an apply, in order, at which :func:`_checkpoint_hook` is called."""


def _checkpoint_hook(stage: str) -> None:
    """Called between the writes of an apply, at each stage of :data:`APPLY_STAGES`.

    A no-op; tests replace it to simulate a crash (or a full disk, a locked database) at a precise point.
    """


class DeletionService(IntakeMixin, LeaseMixin, ApplyMixin):
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

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        experiment: Experiment | ExperimentConfig | str = "cpu",
        method: str = DEFAULT_METHOD,
        hparams: dict[str, Any] | None = None,
        db_url: str | None = None,
        store: Any = None,
        lease_seconds: float = 300.0,
        progress: bool = False,
        busy_timeout: float = 60.0,
    ) -> None:
        lease_seconds = check_lease_seconds(lease_seconds)
        if db_url or os.environ.get("OBLIVIO_LEDGER_URL"):  # before any folder is made
            check_persistent_url(db_url or os.environ["OBLIVIO_LEDGER_URL"])
        self.workdir = open_workdir(workdir)  # refuses '', a symbolic-link loop, a file, an uncreatable folder
        self.models_dir = self.workdir / "models"
        self.experiment = (
            experiment if isinstance(experiment, Experiment) else Experiment(experiment, store=store, progress=progress)
        )
        self.method = method
        self.hparams = dict(hparams or {})
        self.lease_seconds = float(lease_seconds)
        self.progress = progress
        default_db = self.workdir / "ledger.db"
        if not (db_url or os.environ.get("OBLIVIO_LEDGER_URL")) and default_db.is_symlink():
            # like models/: the service's own database is a file it created, never a link to one elsewhere
            raise LedgerError(
                f"the ledger database {default_db} is a symbolic link (to {os.readlink(default_db)}), not the file "
                "the service created: refusing to open or create a ledger through it; replace the link by the "
                "database file itself, or name the database with --db-url"
            )
        self.db_url = db_url or os.environ.get("OBLIVIO_LEDGER_URL") or f"sqlite:///{default_db.resolve()}"
        self.ledger = Ledger(self.db_url, busy_timeout=busy_timeout)
        self._bind_experiment()

    # ------------------------------------------------------------------ set-up
    def _bind_experiment(self) -> None:
        key_dict = to_jsonable(self.experiment.config.model_key())
        key = config_hash(key_dict)
        with self.ledger.transaction() as s:
            state = self.ledger.state(s, for_update=True)
            if state.experiment_key is None:
                state.experiment_key, state.experiment = key, key_dict
            elif state.experiment_key != key:
                raise LedgerError(
                    f"the ledger at {_safe_url(self.db_url)} serves another experiment "
                    f"({json.dumps(state.experiment)}); "
                    "pass the same --preset / --dataset / --model / --recipe / --seed options, or use another --workdir"
                )

    def close(self) -> None:
        """Release the database connections."""
        self.ledger.dispose()

    def __enter__(self) -> DeletionService:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def train_set(self):
        return self.experiment.data.train

    def _checkpoint(self, stage: str) -> None:
        """Call :func:`_checkpoint_hook` (looked up now, so a test's replacement is seen)."""
        _checkpoint_hook(stage)

    def list_runs(self) -> list[RunRecord]:
        return self.ledger.runs()

    def list_versions(self) -> list[VersionRecord]:
        return self.ledger.versions()

    def current_version(self) -> VersionRecord | None:
        """The model version now served (None before the first ``apply``)."""
        vid = self.ledger.current_version_id()
        return self.ledger.version(vid) if vid is not None else None

    # ------------------------------------------------------------------ models
    def _resolve_path(self, version: VersionRecord) -> Path:
        """The version's model file, after the confinement check (:func:`~oblivio.ledger.paths.model_file`)."""
        return model_file(self.workdir, version.path, row=f"model_versions row {version.id}")

    def load_model(self, version: VersionRecord) -> nn.Module:
        """The model of ``version``, checked against its recorded hash.

        Raises:
            CheckpointError: the file is missing, unreadable, of another architecture, or its weights changed.
            TamperedPathError: the version's row names a path the service never writes (outside ``models/``, not
                its naming pattern, a symbolic link); nothing is loaded.
        """
        path = self._resolve_path(version)
        model = self.experiment.build_model()
        state = safe_torch_load(path, map_location=next(model.parameters()).device)
        if not isinstance(state, dict):
            raise CheckpointError(
                f"{path} (model version {version.id}) holds a {type(state).__name__}, not a "
                "state dict; restore the file from a backup (nothing was changed)"
            )
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{path} (model version {version.id}) does not fit this model: {exc}") from exc
        digest = state_dict_hash(model)
        if digest != version.hash:
            raise CheckpointError(
                f"{path} (model version {version.id}) was modified or corrupted: its weights hash to "
                f"{digest[:16]}, the ledger recorded {version.hash[:16]}; restore the file from a "
                "backup (nothing was changed)"
            )
        model.eval()
        return model

    def init(self, *, model_file: str | os.PathLike | None = None) -> VersionRecord:
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
            raise LedgerError(
                f"the ledger already has model version {self.ledger.current_version_id()}; version 1 "
                "can only be registered in a new ledger. Nothing was changed."
            )
        models_folder(self.workdir)  # a linked models/ is refused before anything is trained or written
        model = self._load_user_model(Path(model_file)) if model_file is not None else None
        with self._lease():
            if self.ledger.current_version_id() is not None:
                raise LedgerError("the ledger got a model version meanwhile; nothing was changed")
            return self._bootstrap(model=model, source=str(model_file) if model_file is not None else None)

    def _load_user_model(self, path: Path) -> nn.Module:
        import torch

        from ..models.adapters import load_weights_file

        model = self.experiment.build_model()
        train = self.train_set  # the probe: a few real images
        return load_weights_file(
            model,
            path,
            probe=train.float_images(torch.arange(min(4, len(train)))).to(next(model.parameters()).device),
            label=str(path),
            model_desc=f"the experiment's model ({self.experiment.config.model})",
        )

    # ------------------------------------------------------------------ reports
    def resolve_version(self, version: int | str | None = None) -> VersionRecord:
        """A version by id, ``"current"``/None, or a hash prefix (at least 6 hex digits)."""
        versions = self.ledger.versions()
        if not versions:
            raise LedgerError("the ledger has no model version yet: run `apply` first")
        if version is None or version == "current":
            return next(v for v in versions if v.is_current)
        from ..scenarios import is_id_text

        text = str(version).strip()
        if is_id_text(text):  # ASCII digits only (str.isdigit would read '١' as version 1)
            match = [v for v in versions if v.id == int(text)]
        elif len(text) >= 6:
            match = [v for v in versions if v.hash.startswith(text.lower())]
        else:
            match = []
        if len(match) != 1:
            known = ", ".join(f"{v.id} ({v.hash[:12]})" for v in versions)
            raise LedgerError(f"no single model version matches {version!r}; versions: {known}")
        return match[0]

    def report(self, version: int | str | None = None) -> dict:
        """The verification report of a model version as a JSON-able dict (see :mod:`oblivio.ledger.report`)."""
        from .report import build_report

        v = self.resolve_version(version)
        run = self.ledger.run(v.run_id) if v.run_id is not None else None
        all_requests = self.ledger.requests()
        requests = [r for r in all_requests if run is not None and r.id in run.request_ids]
        lineage, by_id = set(), {x.id: x for x in self.ledger.versions()}  # this version and its ancestors
        cur: VersionRecord | None = v
        while cur is not None and cur.id not in lineage:
            lineage.add(cur.id)
            cur = by_id.get(cur.parent_id) if cur.parent_id is not None else None
        forgotten = [r for r in all_requests if r.status == "applied" and r.applied_version_id in lineage]
        with self.ledger.Session() as s:
            experiment = self.ledger.state(s).experiment
        return build_report(
            v, run, requests, experiment=experiment, oblivio_version=__version__, forgotten_requests=forgotten
        )

    def write_report(
        self, out_dir: str | os.PathLike, *, version: int | str | None = None, pdf: bool = False
    ) -> tuple[Path, Path]:
        """Write ``report-v<ID>.json`` and ``report-v<ID>.html`` (self-contained; with ``pdf`` also
        ``report-v<ID>.pdf``) into ``out_dir``, mode 0644."""
        from .report import write_report

        return write_report(self.report(version), out_dir, pdf=pdf)


__all__ = [
    "APPLY_STAGES",
    "ApplyInProgressError",
    "ApplyResult",
    "DeletionService",
    "LedgerError",
    "MAX_IDS_FILE_BYTES",
    "MAX_REASON_CHARS",
    "MAX_REQUESTER_CHARS",
    "MIA_MIN_FORGET",
    "PER_EXAMPLE_ALPHA",
    "PER_EXAMPLE_MAX",
    "TamperedPathError",
    "per_example_membership",
    "twin_estimate",
]
