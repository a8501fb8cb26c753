"""How far results move across machines for the same seeds (issue 23, item 6).

A second machine changes no seed, only the float arithmetic: how a reduction is split over threads and which vector
kernels the CPU has. Both can be changed on one machine, so this benchmark re-runs the *whole* unit (original, G gold
models, the held-out gold, every method with several unlearning seeds) from scratch in each float environment, each
with a checkpoint store of its own (the store keys a model by its seeds, not by the arithmetic, so a shared store
would hand every environment the first one's models). ``--reference-store`` lets the reference reuse a store whose
models were trained in the reference environment (the benchmarks' default store: one thread, this machine), which
saves retraining them; the report then compares only the models both stores hold:

* ``1 thread`` (the reference: the project's benchmark setting);
* ``2 threads`` (the same kernels, reductions split in two);
* ``no SIMD``: ``ATEN_CPU_CAPABILITY=default`` (PyTorch's scalar kernels instead of AVX2) and
  ``ONEDNN_MAX_CPU_ISA=SSE41`` (oneDNN's convolutions without AVX): what an older or different x86 CPU computes.

``report`` compares, per request, method and unlearning seed, each environment's E (expected agreement with the G
golds), δ to the mean gold and test accuracy against the reference, beside the method's own spread over its
unlearning seeds in the reference environment (the movement a user already cannot control).

Usage::

    python benchmarks/cross_machine.py run --preset tiny --seed 50 --out results/cross-machine
    python benchmarks/cross_machine.py report results/cross-machine
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ENVS = {
    "1 thread": {"threads": 1, "env": {}},
    "2 threads": {"threads": 2, "env": {}},
    "no SIMD": {"threads": 1, "env": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}},
}
REFERENCE = "1 thread"
METHODS = "tmu,tmu.guarded,tmu.random-control,finetune,finetune.1ep"
REQUESTS = "class-subset:0:100;random:0.1;class-subset:3:30"


def _slug(name: str) -> str:
    return name.replace(" ", "-")


def _store(out: Path, name: str, reference_store: Path | None = None) -> Path:
    """An environment's store: its own folder, or for the reference a link to ``reference_store`` when given."""
    path = out / _slug(name) / "store"
    if name == REFERENCE and reference_store is not None and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(Path(reference_store).resolve(), target_is_directory=True)
    return path


def cmd_run(a) -> None:
    for name in a.envs.split(","):
        spec = ENVS[name]
        env = {**os.environ, **spec["env"], "OMP_NUM_THREADS": str(spec["threads"])}
        cmd = [sys.executable, __file__, "_worker", "--env-name", name, "--preset", a.preset, "--seed", str(a.seed),
               "--requests", a.requests, "--methods", a.methods, "--unlearn-seeds", a.unlearn_seeds,
               "--threads", str(spec["threads"]), "--gold-models", str(a.gold_models),
               "--store", str(_store(a.out, name, a.reference_store)),
               "--rows", str(a.out / f"{_slug(name)}.jsonl")]  # fmt: skip
        print(f"== {name}: {' '.join(f'{k}={v}' for k, v in spec['env'].items()) or '(no variables)'}", flush=True)
        subprocess.run(cmd, env=env, check=True)


def cmd_worker(a) -> None:
    import torch

    from oblivio.experiments.grid import EvalOptions, Grid, Seeds
    from oblivio.experiments.runner import Runner

    capability = torch.backends.cpu.get_cpu_capability()
    print(f"   torch CPU capability {capability}, {a.threads} thread(s)", flush=True)
    base = Seeds.for_replicate(0, base=a.seed)
    seeds = [
        Seeds(train=base.train, gold=base.gold, unlearn=int(u), eval=base.eval, request=base.request)
        for u in a.unlearn_seeds.split(",")
    ]
    tags = {"benchmark": "cross-machine", "float_env": a.env_name, "cpu_capability": capability}
    runner = Runner(a.preset, results=a.rows, store=a.store, tags=tags, threads_per_worker=a.threads)
    for request in a.requests.split(";"):
        grid = Grid(scenarios=[request], methods=a.methods.split(","), seeds=seeds,
                    options=EvalOptions(mia=False, zrf=False, gold_models=a.gold_models))  # fmt: skip
        runner.run(grid)


def _load(folder: Path) -> dict:
    """``{env: {(request, method, unlearn seed): metrics}}`` with the original's metrics as method ``original``."""
    out: dict = {}
    for name in ENVS:
        path = folder / f"{_slug(name)}.jsonl"
        if not path.exists():
            continue
        cells: dict = {}
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if r.get("status", "ok") != "ok":
                continue
            m, u = r["metrics"], r["seeds"]["unlearn"]
            cells[(r["scenario"], r["method"], u)] = m
            cells[(r["scenario"], "original", u)] = {
                "expected_agreement": m["original_expected_agreement"],
                "delta_mean_gold": m["original_delta_mean_gold"],
                "acc_test": m["original_acc_test"],
                "gold_mean_acc_forget": m["gold_mean_acc_forget"],
            }
        out[name] = cells
    return out


def report(folder: Path) -> str:
    data = _load(folder)
    if REFERENCE not in data:
        raise SystemExit(f"no rows of the reference environment {REFERENCE!r} under {folder}")
    ref = data[REFERENCE]
    others = [e for e in data if e != REFERENCE]
    methods = list(dict.fromkeys(k[1] for k in ref))
    lines = [
        f"Reference: {REFERENCE}. Per method, over every (request, unlearning seed) cell: the largest and the mean "
        "absolute change of E and of δ to the mean gold (points) in each other environment, the cells whose E is "
        "exactly the reference's, and the method's own spread over its unlearning seeds in the reference "
        "(largest max − min of E over the seeds, per request).",
        "",
        "| method | environment | cells | E identical | max abs ΔE | mean abs ΔE | max abs Δδ | own seed spread of E |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method in methods:
        keys = [k for k in ref if k[1] == method]
        by_req: dict = defaultdict(list)
        for k in keys:
            by_req[k[0]].append(100 * ref[k]["expected_agreement"])
        spread = max(max(v) - min(v) for v in by_req.values())
        for env in others:
            pairs = [(ref[k], data[env][k]) for k in keys if k in data[env]]
            if not pairs:
                continue
            de = [100 * abs(x["expected_agreement"] - y["expected_agreement"]) for x, y in pairs]
            dd = [100 * abs(x["delta_mean_gold"] - y["delta_mean_gold"]) for x, y in pairs]
            same = sum(x["expected_agreement"] == y["expected_agreement"] for x, y in pairs)
            lines.append(
                f"| {method} | {env} | {len(pairs)} | {same} | {max(de):.2f} | {sum(de) / len(de):.2f} | "
                f"{max(dd):.2f} | {spread:.2f} |"
            )
    lines += ["", "The models every method starts from, per request (reference → other environment):", ""]
    lines += ["| request | environment | original's test acc | mean gold acc on D_f |", "|---|---|---|---|"]
    for request in dict.fromkeys(k[0] for k in ref):
        k = next(k for k in ref if k[0] == request and k[1] == "original")
        for env in others:
            if k not in data[env]:
                continue
            x, y = ref[k], data[env][k]
            lines.append(
                f"| {request} | {env} | {100 * x['acc_test']:.2f} → {100 * y['acc_test']:.2f} | "
                f"{100 * x['gold_mean_acc_forget']:.2f} → {100 * y['gold_mean_acc_forget']:.2f} |"
            )
    lines += ["", *_weights(folder, others)]
    return "\n".join(lines) + "\n"


def _weights(folder: Path, others: list[str]) -> list[str]:
    """Per kind of stored model (original, gold): how many trained models are bitwise the reference's, and the
    largest absolute weight difference (the store folders are named by the models' seeds, so the same name is the
    same model trained under other arithmetic)."""
    import torch

    ref = folder / _slug(REFERENCE) / "store"
    out = ["The trained models (each environment's own store against the reference's):", ""]
    out += [
        "| kind | environment | models | bitwise identical | largest abs weight difference |",
        "|---|---|---|---|---|",
    ]
    for kind in sorted(p.name for p in ref.iterdir() if p.is_dir()) if ref.is_dir() else []:
        for env in others:
            same = n = 0
            worst = 0.0
            for path in sorted((ref / kind).glob("*/model.pt")):
                twin = folder / _slug(env) / "store" / kind / path.parent.name / "model.pt"
                if not twin.exists():
                    continue
                a, b = torch.load(path, weights_only=True), torch.load(twin, weights_only=True)
                diff = max(((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].numel()), default=0)
                n, same, worst = n + 1, same + (diff == 0), max(worst, diff)
            if n:
                out.append(f"| {kind} | {env} | {n} | {same} | {worst:.3g} |")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--preset", default="tiny")
    r.add_argument("--seed", type=int, default=50)
    r.add_argument("--requests", default=REQUESTS, help="';'-separated forget requests")
    r.add_argument("--methods", default=METHODS)
    r.add_argument("--unlearn-seeds", default="10050,10051,10052,10053,10054")
    r.add_argument("--gold-models", type=int, default=4)
    r.add_argument("--envs", default=",".join(ENVS))
    r.add_argument("--reference-store", type=Path, default=None, help="a store trained in the reference environment")
    r.add_argument("--out", type=Path, required=True)
    w = sub.add_parser("_worker")
    for flag in ("--env-name", "--preset", "--requests", "--methods", "--unlearn-seeds", "--store", "--rows"):
        w.add_argument(flag, required=True)
    for flag in ("--seed", "--threads", "--gold-models"):
        w.add_argument(flag, type=int, required=True)
    s = sub.add_parser("report")
    s.add_argument("folder", type=Path)
    a = p.parse_args(argv)
    if a.command == "run":
        cmd_run(a)
    elif a.command == "_worker":
        cmd_worker(a)
    else:
        print(report(a.folder), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
