"""One path from a method's output to its metrics (issue 14): ``oblivio forget``, ``oblivio demo``, the runner's cell
and the ledger's apply all score through :func:`oblivio.metrics.report.evaluate_unlearning`, with the cost ratios
from :mod:`oblivio.metrics.cost_ratio`, on the tiny digits experiment."""

from __future__ import annotations

import inspect
import json

import pytest

import oblivio.metrics.report as report
from oblivio.metrics.cost_ratio import COST_KEYS

SPEC = "class-subset:3:20"
HPARAMS = {"epochs": 1}
CORE_GROUPS = ("accuracy", "mia", "gold-comparison")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("one-path-store")


@pytest.fixture()
def calls(monkeypatch):
    """Every evaluate_unlearning call (the callers import it from oblivio.metrics.report when they run)."""
    seen: list[report.Evaluation] = []
    real = report.evaluate_unlearning

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(report.Evaluation(out, groups=out.groups))  # a copy: callers pop groups off theirs
        return out

    monkeypatch.setattr(report, "evaluate_unlearning", spy)
    return seen


def _core(ev: report.Evaluation) -> dict:
    return {k: ev[k] for g in CORE_GROUPS for k in ev.groups[g]}


def _forget_cli(store, tmp_path) -> dict:
    from oblivio.cli import main

    out = tmp_path / "forget.json"
    assert (
        main(
            [
                "forget",
                "--preset",
                "tiny",
                "--store",
                str(store),
                "--device",
                "cpu",
                "--no-progress",
                "--method",
                "finetune",
                "--hparams",
                json.dumps(HPARAMS),
                "--forget",
                SPEC,
                "--gold",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    return json.loads(out.read_text())


def test_forget_runner_ledger_and_demo_share_one_evaluation(store, tmp_path, calls):
    from oblivio.cli.demo import demo_rows
    from oblivio.experiments import Experiment, get_preset
    from oblivio.experiments.runner import Cell, EvalOptions, MethodSpec, Seeds, run_cell
    from oblivio.ledger import DeletionService

    exp = Experiment("tiny", store=store, device="cpu", progress=False)
    # oblivio forget
    forget_json = _forget_cli(store, tmp_path)
    assert len(calls) == 1
    forget_ev = calls[-1]
    assert set(forget_json["metrics"]) == (set(forget_ev) - set(COST_KEYS)) | {"seconds"}
    assert set(forget_json["cost"]) == set(COST_KEYS)
    # the runner's cell
    row = run_cell(
        get_preset("tiny"),
        Cell(SPEC, MethodSpec("finetune", HPARAMS), Seeds.for_replicate(0), EvalOptions(mia=True, zrf=False)),
        store=store,
        device="cpu",
    )
    assert len(calls) == 2
    cell_ev = calls[-1]
    assert set(row["metrics"]) == set(cell_ev) - set(COST_KEYS)  # the cost group moved to row["cost"]
    assert set(COST_KEYS) <= set(row["cost"])
    # the ledger
    ids = [int(i) for i in exp.forget_split(SPEC, seed=0).forget_ids]
    svc = DeletionService(tmp_path / "ledger", experiment=exp, method="finetune", hparams=HPARAMS, progress=False)
    try:
        svc.add_request(ids, requester="test")
        version = svc.apply(gold=True).version
    finally:
        svc.close()
    assert len(calls) == 3
    ledger_ev = calls[-1]
    # oblivio demo: the original against gold, then each method
    rows = demo_rows(exp, spec=SPEC, methods=["finetune"], progress=False)
    assert len(calls) == 5
    demo_ev = calls[-1]

    evaluations = {"forget": forget_ev, "cell": cell_ev, "ledger": ledger_ev, "demo": demo_ev}
    for name, ev in evaluations.items():
        assert list(ev.groups)[:3] == list(CORE_GROUPS), name
        assert set(ev.groups["cost"]) == set(COST_KEYS), name  # every caller takes its cost ratios from one place
    core_keys = {name: set(_core(ev)) for name, ev in evaluations.items()}
    assert all(keys == core_keys["cell"] for keys in core_keys.values()), core_keys
    for key in core_keys["cell"]:
        assert key in forget_json["metrics"] and key in row["metrics"] and key in version.metrics

    # the same model and data through the same path give the same numbers (forget CLI and ledger: unlearning seed
    # 0, evaluation seed 0, the same forget set, the original model as the parent)
    assert _core(ledger_ev) == _core(forget_ev)
    # and each caller's cost names are the same ratio
    assert row["cost"]["rte"] == pytest.approx(row["cost"]["method_seconds"] / row["cost"]["gold_train_seconds"])
    assert version.metrics["cost_ratio"] == pytest.approx(version.metrics["seconds"] / version.metrics["gold_seconds"])
    assert rows[-1]["cost_vs_retrain"] == demo_ev["rte"]


@pytest.mark.parametrize(
    "module",
    [
        "oblivio.cli.forget",
        "oblivio.cli.demo",
        "oblivio.experiments.cell",
        "oblivio.ledger.apply",
        "oblivio.experiments.pipeline",
    ],
)
def test_no_caller_reads_metadata_off_the_module_or_divides_seconds_itself(module):
    import importlib

    source = inspect.getsource(importlib.import_module(module))
    assert "oblivio_meta" not in source and "getattr(gold" not in source
    assert "seconds /" not in source and "rte(" not in source, "use oblivio.metrics.cost_ratio"
