"""Small shared helpers: seeding, devices, atomic files, safe checkpoint loading, hashing."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger("oblivio")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt, or does not match the model."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def make_generator(seed: int, *, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` seeded with ``seed`` (independent of the global RNG)."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a parameter-less module."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def forked_rng(model: nn.Module):
    """``torch.random.fork_rng`` over the CPU generator and, for a CUDA model, its device's: the global RNG state
    is restored on exit, so whatever runs inside does not move the draws of what follows."""
    device = model_device(model)
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def default_device() -> torch.device:
    """CUDA when present, else CPU. Only used when *creating* models; code that gets a model reads its device."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_device(obj: Any, device: torch.device) -> Any:
    """Recursively move tensors inside dicts / lists / tuples to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # NamedTuple
        return type(obj)(*(to_device(v, device) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode and restore its previous train/eval state on exit."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _atomic_target(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temp file name beside ``path``; on success fsync it and rename it onto ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, fsync, then rename."""
    with _atomic_target(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through a temp file + rename, so a crash never leaves a half-written checkpoint."""
    with _atomic_target(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def safe_torch_load(path: str | os.PathLike, *, map_location: Any = "cpu") -> Any:
    """Load a checkpoint with ``weights_only=True``; any failure becomes a :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, pickle error, unsafe global...
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(exc).__name__}: {exc}); "
            "it is corrupt or was not written by oblivio. Delete it to retrain, or restore a backup."
        ) from exc


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        # Fields named in ``_JSON_OMIT_DEFAULTS`` are left out while they hold their default, so that adding a
        # field to a config dataclass does not change the hash (the cache key) of configs that do not use it.
        omit = getattr(obj, "_JSON_OMIT_DEFAULTS", ())
        return {
            f.name: _jsonable(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if not (f.name in omit and getattr(obj, f.name) == f.default)
        }
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, tensors, arrays and paths to plain JSON types (dict keys sorted)."""
    return _jsonable(obj)


def json_safe(obj: Any, *, fallback: Any = str) -> Any:
    """Plain JSON for any consumer: :func:`to_jsonable`, then NaN / inf become ``None`` (strict JSON and PostgreSQL
    reject them) and anything still not a JSON type becomes ``fallback(obj)``."""
    obj = to_jsonable(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v, fallback=fallback) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v, fallback=fallback) for v in obj]
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return fallback(obj)


def config_hash(obj: Any, *, length: int = 16) -> str:
    """A stable short hash of a JSON-able config (dataclasses welcome)."""
    blob = json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def indices_hash(indices: Any, *, length: int = 16) -> str:
    """Hash of a sorted index list (order-insensitive)."""
    arr = np.sort(np.asarray(indices, dtype=np.int64).ravel())
    return hashlib.sha256(arr.tobytes()).hexdigest()[:length]


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def state_dict_hash(model: nn.Module) -> str:
    """SHA-256 over the model's state dict (names, shapes, bytes): the model's version id."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """The current git commit of ``cwd`` (or None outside a checkout)."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd or os.getcwd(), capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def git_source_state(cwd: str | os.PathLike | None = None) -> dict:
    """Whether tracked files under ``cwd`` differ from the commit, and a hash of that difference.

    A row's ``git_commit`` names HEAD only; when a shared working tree holds uncommitted edits, the code that ran is
    HEAD plus this diff. Returns ``{"git_dirty": bool | None, "git_diff_hash": str | None}`` (None outside a checkout;
    the hash is the first 16 hex digits of the SHA-256 of ``git diff HEAD -- .`` run in ``cwd``).

    Example:
        >>> sorted(git_source_state("/").keys())
        ['git_diff_hash', 'git_dirty']
    """
    import hashlib
    import subprocess

    try:
        out = subprocess.run(
            ["git", "diff", "HEAD", "--", "."], cwd=cwd or os.getcwd(), capture_output=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return {"git_dirty": None, "git_diff_hash": None}
    if out.returncode != 0:
        return {"git_dirty": None, "git_diff_hash": None}
    dirty = bool(out.stdout.strip())
    return {"git_dirty": dirty, "git_diff_hash": hashlib.sha256(out.stdout).hexdigest()[:16] if dirty else None}
