"""The benchmark runner: a (scenario × method × seed) grid of unlearning runs, resumable, local or on Ray.

One *cell* is one run: resolve a forget request, load (or train once, through the checkpoint store) the original
model ``M_o`` and the gold model ``M_g``, run one unlearning method, score the result with
:func:`oblivio.metrics.evaluate_unlearning`, and write one JSON line. Every cell carries its own seeds, kept apart:

* ``train``: the original model's training seed (weight init and data order);
* ``gold``: the gold model's training seed (another seed = another sample of the gold distribution);
* ``unlearn``: the seed handed to the unlearning method;
* ``eval``: the seed of the evaluation (membership-inference splits, the random-init model of ZRF);
* ``request``: the seed that picks the forget samples (``class-subset:3:100`` draws 100 of class 3 with it).

Results are appended to a JSONL file as cells finish, one line per cell, each with a ``key`` (a hash of the
config, scenario, method, hyper-parameters, seeds and evaluation options). A rerun skips every cell whose key is
already in the file with ``status == "ok"``, so an interrupted benchmark resumes where it stopped.

Cells run in-process (``workers=1``, the default), in a local process pool (``workers=N``: spawned processes,
``threads_per_worker`` torch threads each), or on Ray (``ray_address="local"`` starts a local instance, any other
value is passed to ``ray.init(address=...)``; install with ``pip install oblivio[ray]``). On a multi-machine Ray
cluster the checkpoint store must be a shared folder. The driver is the only writer of the results file.

The pseudo-method ``"gold"`` stands for "retrain from scratch": its model is a second gold model (trained with
the cell's ``unlearn`` seed), so its row measures how far two gold models are from each other, the floor any
aligned method can reach.

Example:
    >>> from oblivio.experiments.runner import Grid, Runner
    >>> grid = Grid(scenarios=["class-subset:3:20"], methods=["gold"], seeds=[0])  # doctest: +SKIP
    >>> rows = Runner("tiny", results="results.jsonl", store="/tmp/store").run(grid)  # doctest: +SKIP
    >>> rows[0]["metrics"]["delta_forget"]  # doctest: +SKIP
"""

# The runner is split by job: grid types (grid.py), the results file (rows.py), one cell and the worker entry points
# (cell.py), and the backends with the Runner (backends.py). This module re-exports them under their old names: the
# public ones are in __all__, the private ones stay importable from here for code written before the split (the
# per-statement noqa below covers only those; every public name of these statements is in __all__).
from .backends import (  # noqa: F401 -- re-exports the private helpers' old names
    OnError,
    Runner,
    _map_in_process,
    _map_pool,
    _map_ray,
    _num,
    _require_ray,
    run_grid,
)
from .cell import (  # noqa: F401 -- re-exports the private helpers' old names
    _EXPERIMENTS,
    _ORIGINALS,
    _WORKER_STATE,
    BULKY_INFO_KEYS,
    LABEL_ABLATION_SETS,
    _cell_task,
    _experiment,
    _forget_class,
    _forget_scores,
    _init_worker,
    _label_ablation,
    _label_accuracy,
    _original,
    _prepare,
    _provenance,
    _ray_entry,
    _set_threads,
    _threads_in_process,
    run_cell,
    thread_counts,
)
from .grid import (
    EVAL_SEED_OFFSET,
    GOLD_METHOD,
    RESULT_SCHEMA,
    UNLEARN_SEED_OFFSET,
    Cell,
    EvalOptions,
    Grid,
    MethodSpec,
    Seeds,
)
from .rows import _clean, _now, read_results  # noqa: F401 -- re-exports the private helpers' old names

__all__ = [
    "BULKY_INFO_KEYS",
    "Cell",
    "EVAL_SEED_OFFSET",
    "EvalOptions",
    "GOLD_METHOD",
    "Grid",
    "LABEL_ABLATION_SETS",
    "MethodSpec",
    "OnError",
    "RESULT_SCHEMA",
    "Runner",
    "Seeds",
    "UNLEARN_SEED_OFFSET",
    "read_results",
    "run_cell",
    "run_grid",
    "thread_counts",
]
