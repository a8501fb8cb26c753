"""The module map of docs/architecture.md, enforced: imports run one way, no import cycle, no oversized module,
and public functions take their knobs keyword-only.

Imports are read with :mod:`ast` (top-level and function-level ones alike: a lazy import is still a dependency),
so these tests import nothing from oblivio. Known exceptions are listed by name, so that new ones cannot appear
unnoticed; when one is fixed, remove it from its list.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "oblivio"

LAYERS: dict[str, int] = {
    "cli": 0,
    "ledger": 1,
    "experiments": 2,
    "api": 2,
    "methods": 3,
    "metrics": 4,
    "training": 5,
    "scenarios": 5,
    "data": 6,
    "models": 6,
    "utils": 7,
    "registry": 7,
}
"""Rank of each top-level unit of ``oblivio`` (a package or a module): a unit may import units of its own rank or
a higher number, never a lower one. ``oblivio/__init__.py`` and ``__main__.py`` sit above all and may import
anything; nothing imports the package root except its ``__version__``."""

ROOT_NAMES_ALLOWED = {"__version__"}

KNOWN_UPWARD_IMPORTS: set[tuple[str, str]] = set()
"""``(importing module, imported module)`` pairs that break the layering today. None."""

KNOWN_CYCLES: set[frozenset[str]] = set()

MAX_LINES = 600
"""Counted on ruff-formatted code (120 columns), which spreads a long call over several lines: the 450 lines of
the hand-formatted house became about 1.3 times as many without any module gaining a job (issue 25)."""
KNOWN_LONG_MODULES: set[str] = set()  # issue 14 split them all; do not add to this: split the module instead


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (path, is a package)}`` of every module under src/oblivio."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, tuple[str, ...], int]]:
    """``(imported module, names taken from it, line)`` for every import of oblivio code in module ``name``."""
    path, is_pkg = MODULES[name]
    package = name.split(".") if is_pkg else name.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, (), node.lineno) for a in node.names if a.name.split(".")[0] == "oblivio"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "oblivio":
                continue
            for alias in node.names:  # `from . import service` imports the submodule
                sub = f"{target}.{alias.name}"
                out.append((sub, (), node.lineno) if sub in MODULES else (target, (alias.name,), node.lineno))
    return out


def _unit(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def test_the_module_scan_sees_the_package():
    assert {"oblivio.ledger.service", "oblivio.training.loop", "oblivio.cli", "oblivio.utils"} <= set(MODULES)
    seen = {(t, n) for t, n, _ in _imports("oblivio.ledger.service")}
    assert ("oblivio.ledger.apply", ("ApplyMixin",)) in seen  # a relative import, resolved
    assert ("oblivio", ("__version__",)) in seen  # `from .. import __version__`: the package root
    assert ("oblivio.ledger.db", ("Ledger",)) in seen


def test_every_unit_has_a_layer():
    """A new top-level package or module must be placed in the map (here and in docs/architecture.md)."""
    units = {_unit(m) for m in MODULES} - {None, "__main__"}
    assert units - set(LAYERS) == set(), "add the new unit to LAYERS and to docs/architecture.md"


def upward_imports(imports=_imports) -> list[str]:
    """Every import of a module from a layer above its own, as ``"module:line imports ..."``."""
    found = []
    for name in MODULES:
        mine = _unit(name)
        for target, names, line in imports(name):
            theirs = _unit(target)
            if mine in (None, "__main__"):
                continue  # the package root and `python -m oblivio` sit above every layer
            if theirs is None:
                if not set(names) <= ROOT_NAMES_ALLOWED:
                    found.append(f"{name}:{line} imports {names} from the package root")
                continue
            if mine != theirs and LAYERS[theirs] < LAYERS[mine] and (name, target) not in KNOWN_UPWARD_IMPORTS:
                found.append(f"{name}:{line} imports {target} ({theirs} is above {mine})")
    return found


def test_imports_run_one_way():
    """cli -> ledger -> experiments -> methods -> metrics -> training/scenarios -> data/models -> utils."""
    assert upward_imports() == []


def test_a_planted_upward_import_is_caught():
    def with_plant(name):
        extra = [("oblivio.experiments.runner", (), 1)] if name == "oblivio.metrics.alignment" else []
        return _imports(name) + extra

    assert upward_imports(with_plant) == [
        "oblivio.metrics.alignment:1 imports oblivio.experiments.runner (experiments is above metrics)"
    ]


def import_cycles(imports=_imports) -> list[list[str]]:
    """Strongly connected groups of modules (lazy imports included), Tarjan's algorithm."""
    graph = defaultdict(set)
    for name in MODULES:
        graph[name] = {t for t, _, _ in imports(name) if t in MODULES and t != name}
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_a_planted_cycle_is_caught():
    plant = {"oblivio.utils": "oblivio.registry", "oblivio.registry": "oblivio.utils"}

    def with_plant(name):
        return _imports(name) + ([(plant[name], (), 1)] if name in plant else [])

    assert ["oblivio.registry", "oblivio.utils"] in import_cycles(with_plant)
    assert ["oblivio.registry", "oblivio.utils"] not in import_cycles()


def test_no_new_import_cycle():
    new = [g for g in import_cycles() if frozenset(g) not in KNOWN_CYCLES]
    assert new == [], "break the cycle (move the shared part down a layer) rather than importing lazily"


def test_no_module_over_the_line_limit():
    """No module over MAX_LINES lines, but for the known long ones (split them, then remove them from the list)."""
    lines = {
        path.relative_to(SRC).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path, _ in MODULES.values()
    }
    over = {rel: n for rel, n in lines.items() if n > MAX_LINES and rel not in KNOWN_LONG_MODULES}
    assert over == {}, f"split these modules by job (at most {MAX_LINES} lines each; see docs/architecture.md)"


# Knobs still taken positionally, to be made keyword-only; remove an entry when it is fixed. Empty since issue 14
# made the last ones (Experiment's seed, train_model's recipe, random_crop / random_hflip, make_mlp, enable_logging)
# keyword-only.
KNOWN_POSITIONAL_KNOBS: set[str] = set()
"""Public functions that still take a knob positionally. Do not add to this set: put ``*`` before the knob."""

POSITIONAL_DATA_ARGUMENTS = {
    # Not knobs: an optional *data* argument (what the function works on, not how), positional as data is.
    "cli/__init__.py:main",  # argv, as every console entry point takes it
    "data/base.py:ImageDataset.float_images",  # indices: which rows (default: all)
    "data/stream.py:StreamingDataset.float_images",  # indices: as ImageDataset.float_images, whose interface it has
    "data/idx.py:load_fashion_mnist",  # root: the dataset folder
    "experiments/bench.py:run_benchmark",  # config: the experiment to run the benchmark on (a preset name)
    "experiments/tmu_cost.py:run_tmu_cost",  # config: as run_benchmark
    "ledger/service.py:DeletionService.resolve_version",  # version: the version to read (default: current)
    "ledger/service.py:DeletionService.report",  # version: as resolve_version
    "models/base.py:Classifier.check_input",  # num_classes of the data checked; the model contract user models
    "models/adapters.py:ClassifierAdapter.check_input",  # implement, called as check_input(shape, num_classes)
    "utils.py:git_commit",  # cwd: the checkout to read
    "utils.py:git_source_state",  # cwd: as git_commit
}
"""Public functions whose defaulted positional parameter is data, not a knob; each with its reason."""


def positional_knobs(sources: dict[str, str] | None = None) -> list[str]:
    """``module:qualified name`` of every public function or method that takes a defaulted parameter positionally
    (STYLE habit 1: knobs are keyword-only, ``def f(x, *, knob=...)``).

    Public: neither the function, its class nor its module starts with ``_`` (dunders included, so a dataclass's
    generated ``__init__`` and ``__call__`` are out). Exempt by rule, since others fix their signature: torch's
    ``forward`` (``nn.Module.__call__`` passes its arguments on positionally) and the stubs of a ``Protocol`` class
    (they describe what implementers write). ``sources`` maps module paths to source text (default: src/oblivio).
    """
    if sources is None:
        sources = {path.relative_to(SRC).as_posix(): path.read_text(encoding="utf-8") for path, _ in MODULES.values()}
    found = []

    def visit(node, rel, prefix="", protocol=False):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef) and not child.name.startswith("_"):
                is_protocol = any(ast.unparse(b).split(".")[-1].split("[")[0] == "Protocol" for b in child.bases)
                visit(child, rel, f"{prefix}{child.name}.", protocol=is_protocol)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and not child.name.startswith("_"):
                if protocol or (prefix and child.name == "forward"):
                    continue
                if child.args.defaults:  # defaults of positional(-or-keyword) parameters only; kw-only ones are apart
                    found.append(f"{rel}:{prefix}{child.name}")

    for rel, text in sources.items():
        if any(part.startswith("_") and part not in ("__init__.py", "__main__.py") for part in rel.split("/")):
            continue  # a private module: nothing in it is public
        visit(ast.parse(text), rel)
    return found


def test_the_knob_scan_catches_a_positional_knob():
    src = (
        "def f(x, knob=1): ...\n"
        "def g(x, *, knob=1): ...\n"
        "def _h(x, knob=1): ...\n"
        "class C:\n"
        "    def m(self, x, knob=1): ...\n"
        "    def forward(self, x, mask=None): ...\n"
        "    def __init__(self, x=1): ...\n"
        "class P(typing.Protocol):\n"
        "    def stub(self, x, knob=1): ...\n"
    )
    assert positional_knobs({"m.py": src, "_private.py": src, "pkg/_inner.py": src}) == ["m.py:f", "m.py:C.m"]


def test_knobs_are_keyword_only():
    """No public function takes a defaulted parameter positionally, but for the listed data arguments and the known
    knobs still to fix (make a new one keyword-only, ``def f(x, *, knob=...)``, rather than listing it)."""
    found = set(positional_knobs())
    assert sorted(found - KNOWN_POSITIONAL_KNOBS - POSITIONAL_DATA_ARGUMENTS) == []


def test_the_knob_lists_name_real_offenders():
    """A fixed or renamed function leaves the lists, so that they only shrink."""
    found = set(positional_knobs())
    assert sorted((KNOWN_POSITIONAL_KNOBS | POSITIONAL_DATA_ARGUMENTS) - found) == []
