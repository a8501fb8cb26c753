"""Studies: plug-ins that each own a protocol (requests, methods, seeds), its tables and figures, and register
themselves as a named benchmark (``oblivio bench NAME``).

Every module of this package is imported by :func:`load_studies` (which :mod:`oblivio.experiments.bench` calls
before it lists or looks up a benchmark), so a new study is one new file here: the machinery never names it.
A study outside the package registers itself the same way from a module given to ``--import``.
"""

from __future__ import annotations

import importlib
import pkgutil

_LOADED: list[str] = []


def load_studies() -> list[str]:
    """Import every study module of this package once; returns their names."""
    if not _LOADED:
        for info in pkgutil.iter_modules(__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
                _LOADED.append(info.name)
    return list(_LOADED)


__all__ = ["load_studies"]
