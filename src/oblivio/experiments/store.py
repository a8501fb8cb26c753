"""The checkpoint store: trained models keyed by a hash of everything that determines them.

Original and gold models are trained once and reused: ``store.get_or_train(kind, key, build, train)`` returns the
stored model when ``key`` (a JSON-able config) was trained before, else trains it. Files are written atomically,
loaded with ``weights_only=True``, and an interrupted training resumes from its last finished epoch. A file lock
(the maintained, cross-platform ``filelock`` package) keeps two processes from training the same model at once; the
holder writes its pid, host and start time beside the lock (``.lock.holder``) so that a process waiting for it can
say, in the log, who holds it and since when.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from torch import nn

from ..utils import CheckpointError, atomic_torch_save, atomic_write_text, config_hash, safe_torch_load, to_jsonable

log = logging.getLogger("oblivio.store")

LOCK_LOG_SECONDS = 30.0
"""While waiting for another process's lock, log a line this often."""


def default_store_root() -> Path:
    """``$OBLIVIO_STORE``, else ``$OBLIVIO_HOME/store``, else ``~/.cache/oblivio/store``."""
    if os.environ.get("OBLIVIO_STORE"):
        return Path(os.environ["OBLIVIO_STORE"])
    home = Path(os.environ.get("OBLIVIO_HOME", Path.home() / ".cache" / "oblivio"))
    return home / "store"


@dataclass
class StoredModel:
    model: nn.Module
    meta: dict
    path: Path
    cached: bool


class CheckpointStore:
    """Models on disk under ``root/<kind>/<hash>/`` (``model.pt``, ``meta.json``, ``resume.pt`` while training)."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else default_store_root()

    def folder(self, kind: str, key: Any) -> Path:
        return self.root / kind / config_hash(key)

    def exists(self, kind: str, key: Any) -> bool:
        return (self.folder(kind, key) / "model.pt").is_file()

    @contextlib.contextmanager
    def _lock(self, folder: Path) -> Iterator[None]:
        """Hold ``folder/.lock`` (logging who holds it while waiting); the holder is written to ``.lock.holder``."""
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(folder / ".lock"))
        side = folder / ".lock.holder"
        try:
            lock.acquire(timeout=0)
        except Timeout:
            t0 = time.monotonic()
            log.info("waiting for the store lock %s, held by %s", folder / ".lock", _describe_holder(side))
            while True:
                try:
                    lock.acquire(timeout=LOCK_LOG_SECONDS)
                    break
                except Timeout:
                    log.info(
                        "still waiting for the store lock %s (%.0f s), held by %s",
                        folder / ".lock",
                        time.monotonic() - t0,
                        _describe_holder(side),
                    )
            log.info("got the store lock %s after %.1f s", folder / ".lock", time.monotonic() - t0)
        try:
            with contextlib.suppress(OSError):  # informative only: never fail a training over it
                atomic_write_text(
                    side,
                    json.dumps(
                        {
                            "pid": os.getpid(),
                            "host": socket.gethostname(),
                            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        }
                    ),
                )
            yield
        finally:
            with contextlib.suppress(OSError):
                side.unlink(missing_ok=True)
            lock.release()

    def load(self, kind: str, key: Any, build: Callable[[], nn.Module]) -> StoredModel:
        """Load a stored model into ``build()``'s architecture (CheckpointError if absent, corrupt or mismatched)."""
        folder = self.folder(kind, key)
        model = build()
        state = safe_torch_load(folder / "model.pt", map_location=_device_of(model))
        if not isinstance(state, dict):
            raise CheckpointError(
                f"{folder / 'model.pt'} holds a {type(state).__name__}, not a state dict; it is "
                "corrupt or was not written by oblivio"
            )
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{folder / 'model.pt'} does not fit this model architecture: {exc}") from exc
        meta_path = folder / "meta.json"
        meta: Any = {}
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                raise CheckpointError(f"{meta_path} is not readable JSON ({type(exc).__name__}: {exc})") from exc
            if not isinstance(meta, dict):
                raise CheckpointError(f"{meta_path} holds a JSON {type(meta).__name__}, not an object")
        return StoredModel(model, meta, folder / "model.pt", cached=True)

    def get_or_train(
        self,
        kind: str,
        key: Any,
        build: Callable[[], nn.Module],
        train: Callable[[nn.Module, Path], dict],
    ) -> StoredModel:
        """Return the stored model for ``key`` or train, store and return it.

        Args:
            kind: a folder name (``"original"``, ``"gold"``...).
            key: JSON-able config that fully determines the model.
            build: returns a freshly initialised model (seeded by the caller).
            train: ``train(model, resume_path) -> meta`` trains in place, checkpointing to ``resume_path``.
        """
        folder = self.folder(kind, key)
        with self._lock(folder):
            if (folder / "model.pt").is_file():
                try:
                    return self.load(kind, key, build)
                except CheckpointError as exc:
                    log.warning("%s; retraining", exc)
                    (folder / "model.pt").unlink(missing_ok=True)
                    (folder / "meta.json").unlink(missing_ok=True)
            model = build()
            t0 = time.perf_counter()
            meta = dict(train(model, folder / "resume.pt") or {})
            meta.setdefault("train_seconds", time.perf_counter() - t0)
            meta["key"] = to_jsonable(key)
            meta["kind"] = kind
            atomic_torch_save(model.state_dict(), folder / "model.pt")
            atomic_write_text(folder / "meta.json", json.dumps(to_jsonable(meta), indent=2, sort_keys=True))
            (folder / "resume.pt").unlink(missing_ok=True)
            return StoredModel(model, meta, folder / "model.pt", cached=False)


def _describe_holder(side: Path) -> str:
    """``pid P on HOST since T`` from a lock's side file (or why it is unknown)."""
    try:
        info = json.loads(side.read_text())
        return f"pid {int(info['pid'])} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (holder unknown: it has not written .lock.holder yet)"


def _device_of(model: nn.Module):
    from ..utils import model_device

    return model_device(model)
