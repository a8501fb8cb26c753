"""``oblivio`` command line. Thin: each sub-command builds the same config objects the Python API takes.

Sub-commands live in their own modules (``oblivio.cli.<name>``) exposing ``add_parser(subparsers)``, which
registers the parser and sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ..data.base import DatasetError
    from ..scenarios import ScenarioError
    from ..utils import CheckpointError

    try:
        return int(args.func(args) or 0)
    except (DatasetError, ScenarioError, CheckpointError, KeyError, ValueError, TypeError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"oblivio: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("oblivio: interrupted; finished epochs are saved and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
