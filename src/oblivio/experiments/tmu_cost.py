"""The ``tmu-cost`` benchmark (issue 10): what one TMU request costs relative to retraining, per stage, cold and warm.

For each forget class ``k`` (default 0, 1, 2), on one original model:

* **cold**: ``class-subset:k:N`` (request seed 0) with an empty twin cache: the whole method;
* **warm**: another request of the same class profile and size (request seed 1) with the cache the cold request
  filled: only the forget samples' features and the aligned step;
* **fresh**: the warm request again without a cache, so the warm result can be compared with a fresh twin;
* alignment of the cold result with the stored gold model (``δ`` and sample agreement on ``D_f``) beside the
  gold-vs-gold spread (a second gold model, another training seed), and, when given, with the "before" rows of
  :mod:`benchmarks/tmu_cost_before.py` (the same requests and seeds on an older commit);
* **child versions** (``versions > 0``, first class only): starting from the cold result, each version forgets
  another disjoint request of the same class and size, once reusing the root model's twins
  (``twin_cache_model`` = the root's hash) and once with a fresh twin of that version, from the same model with the
  same seeds; the reuse chain continues.

Gold's retraining cost is measured in the same run: one gold model (the first class's request) retrained from
scratch with the experiment's recipe under a :class:`~oblivio.metrics.cost.CostMeter` (not stored).

RTE on CPU seconds (:func:`time.process_time`, all threads) is the headline; wall seconds are reported beside it
but depend on what else runs on the machine. Sample-passes give the hardware-independent ratio.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..metrics.cost import CostMeter, rte, sample_passes_total
from ..scenarios import Indices
from ..training import train_model
from ..training.evaluate import predict_logits
from ..utils import atomic_write_text, git_commit, json_safe, state_dict_hash
from .config import ExperimentConfig, get_preset
from .publish import write_report_file
from .report import Table, to_html, to_markdown

log = logging.getLogger("oblivio.bench")

__all__ = ["run_tmu_cost", "sample_agreement_local"]

UNLEARN_SEED = 10_000
GOLD2_SEED = 10_000


def sample_agreement_local(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fraction of samples where two models are both right or both wrong (``a``, ``b``: per-sample correctness)."""
    a, b = torch.as_tensor(a).bool(), torch.as_tensor(b).bool()
    return float((a == b).float().mean())


def _correct(model, dataset) -> torch.Tensor:
    return (predict_logits(model, dataset).argmax(1) == dataset.labels).long()


def _tmu(exp, model, splits, *, seed: int, cache=None, cache_model: str | None = None, hparams: dict | None = None):
    from ..methods import create_method
    from ..methods.tmu import TMU

    method = create_method("tmu", **(hparams or {}))
    if not isinstance(method, TMU):  # "tmu" is registered by oblivio itself; this narrows the type
        raise TypeError(f"the method registered as 'tmu' is {type(method).__name__}, not oblivio's TMU")
    method.twin_cache = cache
    method.twin_cache_model = cache_model
    out = method(model, forget=splits.forget, retain=splits.retain, holdout=splits.holdout, seed=seed, progress=False)
    return out, method.info


def _cost(info: dict) -> dict:
    return {k: info.get(k) for k in ("cpu_seconds", "seconds", "forward_samples", "backward_samples")}


def run_tmu_cost(
    config: ExperimentConfig | str = "cpu",
    *,
    out: str | os.PathLike,
    classes: Sequence[int] = (0, 1, 2),
    count: int = 100,
    versions: int = 2,
    store: str | os.PathLike | None = None,
    device: str | None = None,
    before: str | os.PathLike | None = None,
    json_path: str | os.PathLike | None = None,
    command: str | None = None,
    hparams: dict | None = None,
) -> dict:
    """Run the benchmark; write ``out/tmu-cost.json``, ``out/report.md`` / ``.html`` (and ``json_path``).

    Args:
        config: experiment config or preset name (the issue's target: ``cpu``).
        out: output folder (its ``twin-cache`` subfolder is emptied first, so the cold requests are cold).
        classes: forget classes.
        count: images per request.
        versions: child versions measured for twin reuse across model versions (first class only; 0 = none).
        store: checkpoint store (original and gold models).
        device: device.
        before: JSON rows of ``benchmarks/tmu_cost_before.py`` for the before/after comparison.
        json_path: another path to write the result JSON to (e.g. ``docs/results/tmu-cost.json``).
        command: the command line (recorded).
        hparams: TMU hyper-parameters (default: its defaults).

    Returns:
        The result dict (also written as JSON).
    """
    from .pipeline import Experiment

    config = get_preset(config)
    before_rows: dict[int, dict] = {}
    if before:  # read first: a bad file fails before the long run, not after
        try:
            before_rows = {int(r["cls"]): r for r in json.loads(Path(before).read_text())}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"--before {before}: not the JSON rows of benchmarks/tmu_cost_before.py ({exc})") from exc
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = out / "twin-cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    from ..methods.tmu.cache import FileTwinCache

    cache = FileTwinCache(cache_dir)
    exp = Experiment(config, store=store, device=device, progress=False)
    original = exp.original()
    t_start = time.perf_counter()

    # Gold's retraining, measured here (a stored gold model's time may come from a loaded machine or a resume):
    # the second gold model of the first class (seed GOLD2_SEED, the gold-vs-gold reference) when it is not stored
    # yet, else the same training again without storing it.
    split0 = exp.forget_split(f"class-subset:{classes[0]}:{count}", seed=0)
    if not _gold_stored(exp, split0, GOLD2_SEED):
        with CostMeter() as retrain_cost:
            exp.gold(split0, seed=GOLD2_SEED)
    else:
        retain0 = exp.data.train.subset(split0.retain_pos, name=f"{exp.data.name}:retain")
        fresh = exp.build_model(seed=GOLD2_SEED)
        with CostMeter() as retrain_cost, torch.random.fork_rng(devices=[]):
            torch.manual_seed(GOLD2_SEED)
            train_model(fresh, retain0, recipe=config.recipe, seed=GOLD2_SEED, progress=False, desc="gold (timed)")
        del fresh
    retrain = retrain_cost.as_dict()
    layout = _layout_speedup(original, exp.data.train, config.recipe.batch_size)
    log.info("tmu-cost: retrain %.1f CPU s (%.1f wall s)", retrain["cpu_seconds"], retrain["wall_seconds"])

    per_class = []
    first_cold: Any = None
    for k in classes:
        spec = f"class-subset:{k}:{count}"
        cold_splits = exp.unlearning_splits(spec, seed=0)
        warm_splits = exp.unlearning_splits(spec, seed=1)
        cold_model, cold_info = _tmu(exp, original, cold_splits, seed=UNLEARN_SEED, cache=cache, hparams=hparams)
        warm_model, warm_info = _tmu(exp, original, warm_splits, seed=UNLEARN_SEED, cache=cache, hparams=hparams)
        fresh_model, fresh_info = _tmu(exp, original, warm_splits, seed=UNLEARN_SEED, hparams=hparams)
        gold = exp.gold(cold_splits.split, seed=config.seed)
        # the second gold model only where stored (the first class's was trained above): retraining one per class
        # would double the benchmark's time
        stored = _gold_stored(exp, cold_splits.split, GOLD2_SEED)
        gold2 = exp.gold(cold_splits.split, seed=GOLD2_SEED) if stored else None
        f = cold_splits.forget
        c_cold, c_gold = _correct(cold_model, f), _correct(gold, f)
        c_gold2 = _correct(gold2, f) if gold2 is not None else None
        c_warm, c_fresh = _correct(warm_model, warm_splits.forget), _correct(fresh_model, warm_splits.forget)
        row: dict[str, Any] = {
            "class": k,
            "forget": len(f),
            "cold": {
                **_cost(cold_info),
                "stages": cold_info["stages"],
                "hit": cold_info["twin_cache"]["hit"],
                "twin_epochs": cold_info.get("twin_epochs"),
                "unlearn_steps": cold_info.get("unlearn_steps"),
            },
            "warm": {
                **_cost(warm_info),
                "stages": warm_info["stages"],
                "hit": warm_info["twin_cache"]["hit"],
                "unlearn_steps": warm_info.get("unlearn_steps"),
            },
            "fresh": _cost(fresh_info),
            "acc_forget": {
                "tmu": float(c_cold.float().mean()),
                "gold": float(c_gold.float().mean()),
                "gold2": float(c_gold2.float().mean()) if c_gold2 is not None else None,
            },
            "delta": abs(float(c_cold.float().mean()) - float(c_gold.float().mean())),
            "sample_agreement": sample_agreement_local(c_cold, c_gold),
            "gold_vs_gold": {
                "delta": abs(float(c_gold.float().mean()) - float(c_gold2.float().mean())),
                "sample_agreement": sample_agreement_local(c_gold, c_gold2),
            }
            if c_gold2 is not None
            else {"delta": None, "sample_agreement": None},
            "acc_test": float(_correct(cold_model, cold_splits.test).float().mean()),
            "warm_vs_fresh": {
                "acc_forget_warm": float(c_warm.float().mean()),
                "acc_forget_fresh": float(c_fresh.float().mean()),
                "abs_diff": abs(float(c_warm.float().mean()) - float(c_fresh.float().mean())),
                "sample_agreement": sample_agreement_local(c_warm, c_fresh),
                "predicted_agreement": float(
                    np.mean(np.asarray(warm_info["predicted_labels"]) == np.asarray(fresh_info["predicted_labels"]))
                ),
            },
        }
        b = before_rows.get(k)
        if b is not None:
            c_before = torch.as_tensor(b["correct"])
            row["before"] = {
                "cpu_seconds": b.get("cpu"),
                "wall_seconds": b.get("wall"),
                "acc_forget": float(c_before.float().mean()),
                "delta": abs(float(c_before.float().mean()) - float(c_gold.float().mean())),
                "sample_agreement": sample_agreement_local(c_before, c_gold),
                "agreement_with_after": sample_agreement_local(c_before, c_cold),
                "acc_test": b.get("acc_test"),
            }
        per_class.append(row)
        if k == classes[0]:
            first_cold = (cold_model, cold_splits)
        log.info(
            "tmu-cost class %d: cold %.1f CPU s, warm %.1f CPU s, δ %.3f (gold-vs-gold %s)",
            k,
            row["cold"]["cpu_seconds"],
            row["warm"]["cpu_seconds"],
            row["delta"],
            row["gold_vs_gold"]["delta"],
        )

    chain = (
        _child_versions(exp, original, first_cold, classes[0], count, versions, cache, hparams) if versions > 0 else []
    )

    cold_cpu = float(np.mean([r["cold"]["cpu_seconds"] for r in per_class]))
    warm_cpu = float(np.mean([r["warm"]["cpu_seconds"] for r in per_class]))
    stage_names = sorted({s for r in per_class for s in r["cold"]["stages"]})
    stages = {
        s: float(np.mean([r["cold"]["stages"].get(s, {}).get("cpu_seconds", 0.0) for r in per_class]))
        for s in stage_names
    }
    warm_stages = {
        s: float(np.mean([r["warm"]["stages"].get(s, {}).get("cpu_seconds", 0.0) for r in per_class]))
        for s in sorted({s for r in per_class for s in r["warm"]["stages"]})
    }
    stage_passes = {
        s: {
            "forward": float(np.mean([r["cold"]["stages"].get(s, {}).get("forward_samples", 0) for r in per_class])),
            "backward": float(np.mean([r["cold"]["stages"].get(s, {}).get("backward_samples", 0) for r in per_class])),
        }
        for s in stage_names
    }
    retrain_passes = sample_passes_total(retrain)
    result = {
        "benchmark": "tmu-cost",
        "config": {
            "dataset": config.dataset,
            "train_size": config.train_size,
            "model": config.model,
            "model_options": config.model_options,
            "recipe": config.recipe.name,
            "epochs": config.recipe.epochs,
        },
        "classes": list(classes),
        "count": count,
        "threads": torch.get_num_threads(),
        "device": str(exp.device),
        "retrain_cpu_seconds": retrain["cpu_seconds"],
        "retrain_wall_seconds": retrain["wall_seconds"],
        "retrain_forward_samples": retrain["forward_samples"],
        "retrain_backward_samples": retrain["backward_samples"],
        "cold_cpu_seconds": cold_cpu,
        "warm_cpu_seconds": warm_cpu,
        "cold_wall_seconds": float(np.mean([r["cold"]["seconds"] for r in per_class])),
        "warm_wall_seconds": float(np.mean([r["warm"]["seconds"] for r in per_class])),
        "cold_rte_cpu": rte(cold_cpu, retrain["cpu_seconds"]),
        "warm_rte_cpu": rte(warm_cpu, retrain["cpu_seconds"]),
        "cold_rte_wall": rte(float(np.mean([r["cold"]["seconds"] for r in per_class])), retrain["wall_seconds"]),
        "warm_rte_wall": rte(float(np.mean([r["warm"]["seconds"] for r in per_class])), retrain["wall_seconds"]),
        "cold_sample_pass_ratio": float(np.mean([sample_passes_total(r["cold"]) for r in per_class])) / retrain_passes,
        "warm_sample_pass_ratio": float(np.mean([sample_passes_total(r["warm"]) for r in per_class])) / retrain_passes,
        "layout": layout,
        # if the retraining also ran with channels-last weights (it does not): its CPU seconds / train speed-up
        "cold_rte_cpu_vs_channels_last_retrain": rte(cold_cpu, retrain["cpu_seconds"] / layout["train_speedup"]),
        "warm_rte_cpu_vs_channels_last_retrain": rte(warm_cpu, retrain["cpu_seconds"] / layout["train_speedup"]),
        "stages": stages,
        "warm_stages": warm_stages,
        "stage_sample_passes": stage_passes,
        "per_class": per_class,
        "child_versions": chain,
        "command": command,
        "commit": git_commit(os.path.dirname(__file__)),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "bench_wall_seconds": time.perf_counter() - t_start,
        "note": "timings on a shared machine: rely on CPU seconds and sample-passes; backward counted ×2 in ratios",
    }
    text = json.dumps(json_safe(result), indent=2, sort_keys=True)
    atomic_write_text(out / "tmu-cost.json", text)
    if json_path is not None:
        atomic_write_text(json_path, text)
    tables = _tables(result)
    intro = [f"Reproduce: {command}"] if command else []
    write_report_file(out / "report.md", to_markdown(tables, title="oblivio benchmark: tmu-cost", intro=intro))
    write_report_file(out / "report.html", to_html(tables, title="oblivio benchmark: tmu-cost", intro=intro))
    result["tables"] = tables
    return result


def _layout_speedup(model, data, batch_size: int, *, steps: int = 20) -> dict:
    """CPU seconds of ``steps`` training steps and of inference, contiguous vs channels-last weights (best of 3):
    TMU uses channels-last on the CPU, the gold retraining does not, so the ratio says how much of TMU's RTE is
    layout rather than algorithm."""
    import copy

    x = data.float_images(torch.arange(min(len(data), 512)))
    y = data.labels[: x.shape[0]]

    def clock(fn) -> float:
        best = float("inf")
        for _ in range(3):
            c = time.process_time()
            fn()
            best = min(best, time.process_time() - c)
        return best

    out: dict[str, Any] = {}
    for layout in ("contiguous", "channels_last"):
        m = copy.deepcopy(model).cpu()
        m.to(memory_format=torch.channels_last if layout == "channels_last" else torch.contiguous_format)
        opt = torch.optim.SGD(m.parameters(), lr=1e-4)

        def train(m=m, opt=opt):  # bound now (ruff B023), though each is called within its own iteration
            m.train()
            for i in range(steps):
                j = (i * batch_size) % max(1, x.shape[0] - batch_size)
                loss = torch.nn.functional.cross_entropy(m(x[j : j + batch_size]), y[j : j + batch_size])
                opt.zero_grad()
                loss.backward()
                opt.step()

        def infer(m=m):
            m.eval()
            with torch.no_grad():
                m(x)

        out[layout] = {"train_cpu_seconds": clock(train), "inference_cpu_seconds": clock(infer)}
    out["train_speedup"] = out["contiguous"]["train_cpu_seconds"] / out["channels_last"]["train_cpu_seconds"]
    out["inference_speedup"] = (
        out["contiguous"]["inference_cpu_seconds"] / out["channels_last"]["inference_cpu_seconds"]
    )
    return out


def _gold_stored(exp, split, seed: int) -> bool:
    key = exp.store_key(seed=seed, forget=split.key)  # the key Experiment.gold stores under
    return exp.store.exists("gold", key)


def _child_versions(exp, original, cold, k: int, count: int, versions: int, cache, hparams) -> list[dict]:
    """Twin reuse across model versions: each version forgets another disjoint ``count`` images of class ``k``."""
    model, splits = cold
    root_hash = state_dict_hash(original)
    forgotten = set(splits.forget.ids.tolist())
    rng = np.random.default_rng(12345)
    train = exp.data.train
    rows = []
    for v in range(1, versions + 1):
        cand = [
            int(i)
            for i, y in zip(train.ids.tolist(), train.labels.tolist(), strict=True)
            if y == k and int(i) not in forgotten
        ]
        new = sorted(rng.choice(cand, size=count, replace=False).tolist())
        # the child's request: only the new images (its training set already lacks the earlier ones)
        all_ids = sorted(forgotten | set(new))
        full = exp.unlearning_splits(Indices(ids=tuple(all_ids)))
        keep_f = torch.isin(full.forget.ids, torch.tensor(new))
        forget = full.forget.subset(torch.nonzero(keep_f).squeeze(1), name="forget")
        req = _Req(forget=forget, retain=full.retain, holdout=full.holdout)
        reuse_model, reuse_info = _tmu(
            exp, model, req, seed=UNLEARN_SEED, cache=cache, cache_model=root_hash, hparams=hparams
        )
        fresh_model, fresh_info = _tmu(exp, model, req, seed=UNLEARN_SEED, hparams=hparams)
        c_r, c_f = _correct(reuse_model, forget), _correct(fresh_model, forget)
        rows.append(
            {
                "version": v,
                "reuse_hit": reuse_info["twin_cache"]["hit"],
                "acc_forget_reuse": float(c_r.float().mean()),
                "acc_forget_fresh": float(c_f.float().mean()),
                "abs_diff": abs(float(c_r.float().mean()) - float(c_f.float().mean())),
                "sample_agreement": sample_agreement_local(c_r, c_f),
                "predicted_agreement": float(
                    np.mean(np.asarray(reuse_info["predicted_labels"]) == np.asarray(fresh_info["predicted_labels"]))
                ),
                "predicted_easy_reuse": reuse_info["predicted_easy"],
                "predicted_easy_fresh": fresh_info["predicted_easy"],
                "twin_easy_rate_reuse": reuse_info["twin_easy_rate"],
                "twin_easy_rate_fresh": fresh_info["twin_easy_rate"],
                "reuse_cpu_seconds": reuse_info["cpu_seconds"],
                "fresh_cpu_seconds": fresh_info["cpu_seconds"],
            }
        )
        log.info(
            "tmu-cost version %d: reuse vs fresh ACC_Df %.2f / %.2f, agreement %.2f",
            v,
            rows[-1]["acc_forget_reuse"],
            rows[-1]["acc_forget_fresh"],
            rows[-1]["sample_agreement"],
        )
        forgotten |= set(new)
        model = reuse_model
    return rows


class _Req:
    """forget / retain / holdout of one child request."""

    def __init__(self, *, forget, retain, holdout) -> None:
        self.forget, self.retain, self.holdout = forget, retain, holdout


def _f(v: Any, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _pct(v: Any) -> str:
    """A fraction in percent (or points, for a difference of fractions), one decimal."""
    return "n/a" if v is None else f"{100 * v:.1f}"


def _tables(r: dict) -> list[Table]:
    cost = Table(
        "tmu-cost",
        "TMU cost per request vs retraining (CPU seconds, all threads)",
        ["", "CPU time (s)", "wall time (s)", "RTE, CPU (×)", "RTE, wall (×)", "sample-pass ratio (×)"],
        [
            ["retrain (gold)", _f(r["retrain_cpu_seconds"], 1), _f(r["retrain_wall_seconds"], 1), "1", "1", "1"],
            [
                "TMU cold",
                _f(r["cold_cpu_seconds"], 1),
                _f(r["cold_wall_seconds"], 1),
                _f(r["cold_rte_cpu"], 3),
                _f(r["cold_rte_wall"], 3),
                _f(r["cold_sample_pass_ratio"], 3),
            ],
            [
                "TMU warm",
                _f(r["warm_cpu_seconds"], 1),
                _f(r["warm_wall_seconds"], 1),
                _f(r["warm_rte_cpu"], 3),
                _f(r["warm_rte_wall"], 3),
                _f(r["warm_sample_pass_ratio"], 3),
            ],
        ],
        notes=[
            "Timings under load on a shared machine: rely on CPU seconds and sample-passes (forward + 2 × backward).",
            f"TMU runs with channels-last weights on the CPU, the retraining does not; against a "
            f"channels-last retraining (training steps {r['layout']['train_speedup']:.2f}× faster) the "
            f"RTE (CPU) would be {r['cold_rte_cpu_vs_channels_last_retrain']:.3f} cold and "
            f"{r['warm_rte_cpu_vs_channels_last_retrain']:.3f} warm.",
        ],
    )
    stages = Table(
        "tmu-cost-stages",
        "Cold request: CPU seconds and sample-passes per stage (mean over classes)",
        ["stage", "CPU time (s)", "forward sample-passes", "backward sample-passes"],
        [
            [
                s,
                _f(v, 2),
                f"{r['stage_sample_passes'][s]['forward']:.0f}",
                f"{r['stage_sample_passes'][s]['backward']:.0f}",
            ]
            for s, v in r["stages"].items()
        ],
    )
    align = Table(
        "tmu-cost-alignment",
        "Alignment on D_f (cold request) beside gold-vs-gold and before",
        [
            "class",
            "δ (points)",
            "sample agreement (%)",
            "gold-vs-gold δ (points)",
            "gold-vs-gold agreement (%)",
            "before δ (points)",
            "before agreement (%)",
            "before vs after agreement (%)",
            "warm vs fresh |ΔACC_Df| (points)",
            "warm vs fresh agreement (%)",
        ],
        [
            [
                str(p["class"]),
                _pct(p["delta"]),
                _pct(p["sample_agreement"]),
                _pct(p["gold_vs_gold"]["delta"]),
                _pct(p["gold_vs_gold"]["sample_agreement"]),
                _pct(p.get("before", {}).get("delta")),
                _pct(p.get("before", {}).get("sample_agreement")),
                _pct(p.get("before", {}).get("agreement_with_after")),
                _pct(p["warm_vs_fresh"]["abs_diff"]),
                _pct(p["warm_vs_fresh"]["sample_agreement"]),
            ]
            for p in r["per_class"]
        ],
    )
    tables = [cost, stages, align]
    if r["child_versions"]:
        tables.append(
            Table(
                "tmu-cost-versions",
                "Child versions: root model's twins (reuse) vs a fresh twin",
                [
                    "version",
                    "ACC_Df reuse (%)",
                    "ACC_Df fresh (%)",
                    "|Δ| (points)",
                    "sample agreement (%)",
                    "predicted-label agreement (%)",
                ],
                [
                    [
                        str(c["version"]),
                        _pct(c["acc_forget_reuse"]),
                        _pct(c["acc_forget_fresh"]),
                        _pct(c["abs_diff"]),
                        _pct(c["sample_agreement"]),
                        _pct(c["predicted_agreement"]),
                    ]
                    for c in r["child_versions"]
                ],
            )
        )
    return tables
