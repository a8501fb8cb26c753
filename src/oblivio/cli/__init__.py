"""``oblivio`` command line. Thin: each sub-command builds the same config objects the Python API takes.

Sub-commands live in their own modules (``oblivio.cli.<name>``) exposing ``add_parser(subparsers)``, which
registers the parser and sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from .. import __version__

COMMAND_MODULES = ["train", "forget", "evaluate", "demo", "request", "bench", "report"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oblivio", description="Aligned machine unlearning for image classifiers.")
    parser.add_argument("--version", action="version", version=f"oblivio {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        module.add_parser(sub)
    return parser


EXIT_ERROR = 2
"""Exit code of a refused command: invalid input, a corrupt file, a database or file-system error."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """The project's own error types: raised on purpose, with a message meant for the user."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..data.base import DatasetError
    from ..ledger import LedgerError
    from ..methods.base import UnlearningError
    from ..scenarios import ScenarioError
    from ..training.loop import DivergenceError
    from ..utils import CheckpointError

    # ValueError: the conventional "bad value" of argument checks (ScenarioError, DatasetError and UnlearningError
    # are ValueErrors too). TypeError and KeyError are not here: from our own code they are bugs.
    return (
        DatasetError,
        ScenarioError,
        CheckpointError,
        LedgerError,
        UnlearningError,
        DivergenceError,
        ValueError,
        OSError,
        SQLAlchemyError,
    )


def _one_line(exc: BaseException) -> str:
    """A one-line message for a caught error (OS and database errors in their own words)."""
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        hint = {28: " (the disk is full)", 27: " (the file-size limit, ulimit -f, was reached)"}.get(exc.errno or 0, "")
        return f"{exc.strerror}{where}{hint}"
    if isinstance(exc, SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        text = str(orig) if orig is not None else str(exc)
        first = (text.strip().splitlines() or [type(exc).__name__])[0]
        low = first.lower()
        hint = (
            " (is the disk full, or a file-size limit such as ulimit -f reached?)"
            if "disk i/o error" in low or "disk is full" in low
            else " (the ledger file or its folder is read-only: make both writable, or give another --workdir)"
            if "readonly database" in low or "read-only" in low
            else " (the ledger's folder or file cannot be opened: check that --workdir exists and is writable)"
            if "unable to open database file" in low
            else ""
        )
        return f"database error: {first}{hint}"
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.splitlines())


_STORE_RESUMES = (
    "an original or gold model being trained into the checkpoint store resumes from its last finished epoch"
)
INTERRUPTED: dict[str, str] = {
    # What is true after Ctrl-C, per command (each sentence checked against what the command does: the store's
    # trainings checkpoint every epoch (training/loop.py fit(checkpoint=)); unlearning runs and evaluations do not;
    # the runner skips finished cells; an interrupted apply's run is marked failed by its own handler, or abandoned
    # by the next apply's recovery, and its requests stay open (ledger/apply.py, ledger/lease.py)).
    "request apply": (
        "a run that had not committed is recorded as failed (or marked abandoned by the next apply), leaves no "
        "model file and changes no model version; its requests stay open and the next `oblivio request apply` "
        "serves them again from the start (an unlearning run is not resumed). Runs that committed before are kept "
        f"(`oblivio request list` shows which); {_STORE_RESUMES}"
    ),
    "request": (
        "each ledger change is committed in one transaction, so it is either recorded or not (`oblivio request "
        "list` shows which); a model file left by an interrupted init is recorded and removed by the next apply; "
        f"{_STORE_RESUMES}"
    ),
    "bench": (
        "finished cells are kept in the results file and rerunning the same command skips them; a cell that was "
        f"running starts over; {_STORE_RESUMES}"
    ),
    "report": "nothing was half-written (files are written atomically); rerun the command",
}
DEFAULT_INTERRUPTED = (
    f"{_STORE_RESUMES} when you rerun the command; an unlearning run or an evaluation that was cut off is not "
    "resumed (it starts over)"
)


def interrupted_message(args: argparse.Namespace) -> str:
    """The one line printed after Ctrl-C: what the interrupted command leaves behind and what a rerun does."""
    command = getattr(args, "command", None) or ""
    action = getattr(args, "request_command", None)
    text = INTERRUPTED.get(f"{command} {action}") or INTERRUPTED.get(command) or DEFAULT_INTERRUPTED
    return f"oblivio: interrupted; {text}"


def main(argv: list[str] | None = None) -> int:
    """Run the ``oblivio`` command line; returns the exit code.

    The project's own errors (invalid input, corrupt files, ledger and dataset errors, a diverged training) and
    OS / database errors print one line, ``oblivio: error: ...``, and exit with code 2; ``-v`` also prints the
    traceback. Anything else (a ``TypeError`` or ``KeyError`` from oblivio's own code) is a bug and propagates
    with its traceback, except the ``KeyError``/``TypeError`` that the registries and ``create_method`` raise on
    purpose for an unknown name or hyper-parameter.

    Example:
        >>> main(["forget", "--forget", "random:inf", "--preset", "tiny"])  # doctest: +SKIP
        oblivio: error: random forget amount must be a finite fraction or count, got 'inf'
        2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        from .common import apply_config, import_modules

        args = apply_config(parser, argv, args)  # --config FILE.yaml: defaults that explicit options override
        import_modules(getattr(args, "imports", None) or [])  # --import MODULE: the user's registrations
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(interrupted_message(args), file=sys.stderr)
        return 130
    except Exception as exc:
        if not isinstance(exc, _user_errors()) and not _is_registry_miss(exc):
            raise  # a programming error: show it as one
        if args.verbose:
            traceback.print_exc()
        print(f"oblivio: error: {_one_line(exc) if not isinstance(exc, KeyError) else exc.args[0]}", file=sys.stderr)
        return EXIT_ERROR


def _is_registry_miss(exc: BaseException) -> bool:
    """A ``KeyError``/``TypeError`` raised on purpose by a lookup whose job is to check a user-given name:
    ``Registry.get`` (``unknown method 'x'; valid methods: ...``) or ``create_method`` (an unknown
    hyper-parameter). Any other ``KeyError``/``TypeError`` is a bug and keeps its traceback."""
    from ..methods.base import create_method
    from ..registry import Registry

    if not isinstance(exc, (KeyError, TypeError)) or not exc.args or not isinstance(exc.args[0], str):
        return False
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code in (Registry.get.__code__, create_method.__code__)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
