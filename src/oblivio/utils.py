"""Small shared helpers: seeding, devices, atomic files, safe checkpoint loading, hashing."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import math
import os
import random
import stat
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


MAX_SEED = 2**32 - 1
"""The largest seed oblivio takes: NumPy's legacy seeding stops here, and the data loader's per-epoch generator seed
(``seed * 1_000_003 + epoch``) stays far below torch's 64-bit limit."""


def check_seed(seed: Any, *, what: str = "seed") -> int:
    """``seed`` as an int in ``0..MAX_SEED``.

    Raises:
        ValueError: not an integer (``True`` and ``1.0`` included) or out of range, naming the range.

    Example:
        >>> check_seed(7)
        7
        >>> check_seed(2**70)
        Traceback (most recent call last):
        ...
        ValueError: seed must be an integer in 0..4294967295, got 1180591620717411303424
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"{what} must be an integer in 0..{MAX_SEED}, got {seed!r}")
    return int(seed)


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
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def forked_rng(model: nn.Module):
    """``torch.random.fork_rng`` over the CPU generator and, for a CUDA model, its device's: the global RNG state
    is restored on exit, so whatever runs inside does not move the draws of what follows."""
    device = model_device(model)
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def default_device() -> torch.device:
    """CUDA when present, else CPU. Only used when *creating* models; code that gets a model reads its device."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


_DEVICE_TYPES = {"cpu": None, "cuda": "NVIDIA or AMD GPU", "mps": "Apple GPU", "xpu": "Intel GPU"}


def resolve_device(device: torch.device | str | None) -> torch.device:
    """The device to create models on: ``device`` checked, or :func:`default_device` for None.

    Raises:
        ValueError: an unknown device (``quantum``), one that holds no data (``meta``), or one this machine does
            not have (``cuda`` without CUDA, ``cuda:3`` on a one-GPU machine), naming what to use instead.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("meta")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: device 'meta' holds no data (shapes only): ...
    """
    if device is None:
        return default_device()
    try:
        dev = device if isinstance(device, torch.device) else torch.device(str(device).strip())
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"unknown device {str(device)!r} (--device); use cpu, cuda, cuda:N, mps or xpu") from None
    if dev.type == "meta":
        raise ValueError(
            "device 'meta' holds no data (shapes only): nothing can be trained or scored on it; use --device cpu "
            "or cuda"
        )
    if dev.type not in _DEVICE_TYPES:
        raise ValueError(f"device {str(device)!r} (--device) is not supported by oblivio; use cpu, cuda, mps or xpu")
    if dev.type == "cpu":
        return dev
    backend = torch.backends.mps if dev.type == "mps" else getattr(torch, dev.type, None)
    available = bool(backend is not None and backend.is_available())
    if not available:
        raise ValueError(
            f"device {str(device)!r} (--device): no {_DEVICE_TYPES[dev.type]} is available here "
            f"(torch.{dev.type if dev.type != 'mps' else 'backends.mps'}.is_available() is False: no such device, "
            "or a PyTorch build without it); use --device cpu"
        )
    count = getattr(backend, "device_count", lambda: 1)()
    if dev.index is not None and dev.index >= count:
        raise ValueError(f"device {str(device)!r} (--device): this machine has {count} {dev.type} device(s)")
    return dev


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


def file_kind(path: str | os.PathLike) -> str | None:
    """What is at ``path`` (symbolic links followed): ``"regular file"``, ``"directory"``, ``"FIFO"``, ``"socket"``,
    ``"character device"``, ``"block device"``, ``"broken symbolic link"``, or None when nothing is there.

    Example:
        >>> file_kind("/dev/null"), file_kind("/"), file_kind("/no/such/path")
        ('character device', 'directory', None)
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "broken symbolic link" if os.path.islink(path) else None
    except NotADirectoryError:  # a path "inside" a regular file: nothing can be there
        return None
    for test, kind in (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return kind
    return "special file"  # pragma: no cover - no other kind on POSIX


def _refuse_non_regular(path: Path) -> None:
    """Raise ``FileExistsError`` when something other than a regular file is at ``path`` (a device, a FIFO, a
    socket, a directory): an atomic write would replace it with a regular file."""
    kind = file_kind(path)
    if kind not in (None, "regular file"):
        raise FileExistsError(
            errno.EEXIST,
            f"this is a {kind}, not a regular file: refusing to replace it, write to another path",
            str(path),
        )


@contextlib.contextmanager
def _atomic_target(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temp file name beside ``path``; on success fsync it and rename it onto ``path``, else delete it.

    Refuses (``FileExistsError``, before anything is written) when ``path`` exists and is not a regular file: a
    rename would replace a device, a FIFO or a socket with a regular file.
    """
    path = Path(path)
    _refuse_non_regular(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        _refuse_non_regular(path)  # something may have appeared there meanwhile
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
    """``torch.save`` through a temp file + rename, so a crash never leaves a half-written checkpoint.

    A full disk or a file-size limit is an ``OSError`` (``ENOSPC``, ``EFBIG``) as for any write, not the
    ``RuntimeError`` torch's zip writer turns it into.
    """
    with _atomic_target(path) as tmp, open(tmp, "wb") as fh:
        try:
            torch.save(obj, fh)
        except RuntimeError as exc:
            cause = _os_error_in(exc)
            if cause is None:
                raise
            raise cause from exc
    return Path(path)


def _os_error_in(exc: BaseException) -> OSError | None:
    """The ``OSError`` that ``exc`` was raised while handling (its ``__context__`` chain), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            return current
        current = current.__cause__ or current.__context__
    return None


def check_output_file(path: str | os.PathLike, *, option: str = "output") -> Path:
    """Check, before any work, that a file can be written at ``path``: nothing is there or a regular file (never a
    device, a FIFO, a socket or a directory), and its folder exists and is writable.

    Every command-line option that names an output file calls it before the run, so that a bad path fails at once
    instead of after the training (the atomic writers refuse a non-regular target again when they write).

    Args:
        path: the output file.
        option: how the user gave it, for the message (``"--out"``).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: one line naming the problem and the fix.

    Example:
        >>> check_output_file("/dev/full", option="--out")
        Traceback (most recent call last):
        ...
        ValueError: --out /dev/full is a character device, not a regular file: refusing to replace it; give a ...
    """
    path = Path(path).expanduser()
    kind = file_kind(path)
    if kind not in (None, "regular file"):
        raise ValueError(
            f"{option} {path} is a {kind}, not a regular file: refusing to replace it; give a file path "
            "(a new name, or a regular file to overwrite)"
        )
    _refuse_ledger_file(path, option=option)
    _check_writable_folder(path.parent, option=option, path=path, create=False)
    return path


SQLITE_MAGIC = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""


def _refuse_ledger_file(path: Path, *, option: str) -> None:
    """Refuse an output path that would overwrite a database or a ledger's model file: an existing SQLite database
    (a ledger's ``ledger.db``, by its header, whatever its name) or any file in a ledger's ``models/`` folder (a
    ``models`` folder beside a ``ledger.db`` or an ``id-index-*.npy``). A command's output never replaces them."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except OSError:  # missing or unreadable: nothing to protect (the folder check reports an unwritable one)
        head = b""
    if head == SQLITE_MAGIC:
        raise ValueError(
            f"{option} {path} is a SQLite database (a ledger's ledger.db?): refusing to overwrite it; give another "
            "file name"
        )
    workdir = ledger_of_models_path(path)
    if workdir is not None:
        raise ValueError(
            f"{option} {path} is inside the models folder of the ledger in {workdir}, which holds only the "
            "files the ledger writes: refusing to write there; give a path outside it"
        )


# Written by the deletion service into every ledger folder (oblivio.ledger.db.open_workdir), so that a ledger whose
# database lives elsewhere (PostgreSQL) is recognised too.
LEDGER_MARKER = ".oblivio-ledger"


def ledger_of_models_path(path: str | os.PathLike) -> Path | None:
    """The ledger folder whose ``models/`` (at any depth below it) holds ``path``, or None.

    Both the path as written (made absolute, ``..`` folded) and the path with every symbolic link resolved are
    checked, so a link to the folder, ``models/sub/..`` or a relative path from inside ``models/`` are all seen.
    A folder is a ledger's when it holds the service's marker file, a ``ledger.db`` or an ``id-index-*.npy``.
    """
    seen = {Path(os.path.abspath(path)).parent, Path(os.path.realpath(path)).parent}
    for folder in seen:
        for anc in (folder, *folder.parents):
            if anc.name != "models":
                continue
            wd = anc.parent
            if (wd / LEDGER_MARKER).exists() or (wd / "ledger.db").exists() or any(wd.glob("id-index-*.npy")):
                return wd
    return None


def check_output_dir(path: str | os.PathLike, *, option: str = "output folder", files: tuple[str, ...] = ()) -> Path:
    """Check, before any work, that ``path`` can be used as an output folder: a directory, or missing with a
    writable folder above it (it is created when written), never a regular file, device, FIFO or socket; and that
    each of ``files`` inside it (the names the command will write) is missing or a regular file.

    Raises:
        ValueError: one line naming the problem and the fix.

    Example:
        >>> check_output_dir("/dev/null", option="--out")
        Traceback (most recent call last):
        ...
        ValueError: --out /dev/null is a character device, not a folder; give a folder path (a new or an existing ...
    """
    path = Path(path).expanduser()
    kind = file_kind(path)
    if kind not in (None, "directory"):
        raise ValueError(f"{option} {path} is a {kind}, not a folder; give a folder path (a new or an existing folder)")
    if kind is None:
        _check_writable_folder(path, option=option, path=path, create=True)
        return path
    _check_writable_folder(path, option=option, path=path, create=False)
    for name in files:
        inner = file_kind(path / name)
        if inner not in (None, "regular file"):
            raise ValueError(
                f"{option} {path}: {name} there is a {inner}, not a regular file: refusing to replace it; "
                "move it away or give another folder"
            )
        _refuse_ledger_file(path / name, option=option)
    return path


def _check_writable_folder(folder: Path, *, option: str, path: Path, create: bool) -> None:
    """``folder`` exists (or, with ``create``, its nearest existing ancestor does), is a directory, and a file can
    be created in it: probed by creating and removing an empty temp file, which also catches read-only mounts and
    folders where ``os.access`` says yes to root but the file system says no."""
    target = folder
    if create:
        while file_kind(target) is None and target != target.parent:
            target = target.parent
    kind = file_kind(target)
    if kind is None:
        raise ValueError(f"{option} {path}: the folder {folder} does not exist; create it first or give another path")
    if kind != "directory":
        raise ValueError(f"{option} {path}: {target} is a {kind}, not a folder; give a path inside a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".oblivio-write-check.", suffix=".tmp", dir=target)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(
            f"{option} {path}: cannot write in {target} ({exc.strerror or exc}); give a writable folder"
        ) from None


def safe_torch_load(path: str | os.PathLike, *, map_location: Any = "cpu") -> Any:
    """Load a checkpoint with ``weights_only=True``; any failure becomes a :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        try:
            kind = file_kind(path)
        except OSError as exc:  # a symbolic-link loop, a folder on the way that cannot be searched...
            raise CheckpointError(f"checkpoint {path} cannot be opened: {exc.strerror or exc}") from None
        if kind is None:
            raise CheckpointError(f"checkpoint {path} does not exist")
        # a FIFO would block the read, /dev/zero never ends: refused without opening it
        raise CheckpointError(f"checkpoint {path} is not a regular file: it is a {kind}; give the path of a saved file")
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
