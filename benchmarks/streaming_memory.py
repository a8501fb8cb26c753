"""Issue 24 item 2, measured: data larger than memory through oblivio's streaming path.

Two parts, each appending one JSON row per measurement (with commit, dirty flag, time, machine load):

``throughput``
    A synthetic dataset of ``--n`` images (default 20,000 of 3x64x64: 246 MB as uint8, so it fits both ways) read
    by the in-memory loader (materialised once with ``oblivio.as_image_dataset``) and by the streaming loader with
    0, 1 and 2 loader workers; for each, the same model and batch size (256): reading only, reading + forward
    (``predict_logits``), and one training epoch (``fit``, SGD). Images/s over wall time, and CPU seconds of the
    main process and of the loader workers.

``full``
    1,000,000 images of 3x64x64 (12.3 GB if materialised) served by :class:`SyntheticImages`, never held in memory,
    with a random per-read flip (live augmentation): the index (``stream_dataset``); one training epoch on the
    first 100,000 (Adam); one full pass of reading + forward over all 1,000,000; and ``oblivio.unlearn`` (TMU,
    defaults; its ``stream="auto"`` decides) forgetting 1,000 trained images with the other 999,000 as ``D_r``
    (holdout and test: 20,000 and 5,000 unseen images of the same distribution). Peak memory of the process and
    its loader workers, sampled every 0.25 s (RSS of the main process; RSS summed over the process tree, which
    counts pages the forked workers share with it twice, so an upper bound; PSS summed over the tree, each shared
    page divided among its sharers), and the kernel's high-water marks (``getrusage``: ``ru_maxrss`` of the
    process and of its largest finished child).

``subset``
    An unlearning run that trains, on part of the same million: the light model trained as in ``full``, then
    ``oblivio.unlearn(method="finetune.1ep", stream=True)`` forgetting 1,000 of its 100,000 training images and
    fine-tuning one epoch on the other 99,000 (``full``'s TMU run can find nothing to unlearn when the model
    generalises to every forget image).

Usage (one thread per process; results appended, the command printed first)::

    OMP_NUM_THREADS=1 python benchmarks/streaming_memory.py throughput --out docs/results/streaming-throughput.jsonl
    OMP_NUM_THREADS=1 python benchmarks/streaming_memory.py full --out docs/results/streaming-1m.jsonl
    OMP_NUM_THREADS=1 python benchmarks/streaming_memory.py subset --out docs/results/streaming-1m.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import os
import platform
import resource
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from torch import nn
from torch.utils.data import Subset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oblivio  # noqa: E402
from oblivio.data import TensorLoader, as_image_dataset, stream_dataset  # noqa: E402
from oblivio.models import Normalize, create_model  # noqa: E402
from oblivio.training import fit, predict_logits, train_model  # noqa: E402
from oblivio.training.recipes import Recipe  # noqa: E402
from oblivio.utils import git_commit, git_source_state, json_safe  # noqa: E402
from synthetic_images import SyntheticImages  # noqa: E402

MB = 2**20
BATCH = 256


# ---------------------------------------------------------------------------------------------- memory
class Memory(threading.Thread):
    """Samples the memory of this process and its children (the loader workers) every ``interval`` seconds."""

    def __init__(self, interval: float = 0.25, pss_every: int = 4) -> None:
        super().__init__(daemon=True)
        self.interval, self.pss_every = interval, pss_every
        self.me = psutil.Process()
        self.lock = threading.Lock()
        self.peaks: dict[str, float] = {}
        self.stop_event = threading.Event()

    def reset(self) -> None:
        with self.lock:
            self.peaks = {"peak_rss_main_mb": 0.0, "peak_rss_tree_mb": 0.0, "peak_pss_tree_mb": 0.0, "max_children": 0}

    def sample(self, with_pss: bool) -> None:
        procs = [self.me]
        with contextlib.suppress(psutil.Error):
            procs += self.me.children(recursive=True)
        rss, pss, main = 0, 0, 0
        for p in procs:
            try:
                info = p.memory_full_info() if with_pss else p.memory_info()
            except psutil.Error:
                continue
            rss += info.rss
            pss += getattr(info, "pss", 0)
            if p is self.me:
                main = info.rss
        with self.lock:
            pk = self.peaks
            pk["peak_rss_main_mb"] = max(pk.get("peak_rss_main_mb", 0.0), main / MB)
            pk["peak_rss_tree_mb"] = max(pk.get("peak_rss_tree_mb", 0.0), rss / MB)
            if with_pss:
                pk["peak_pss_tree_mb"] = max(pk.get("peak_pss_tree_mb", 0.0), pss / MB)
            pk["max_children"] = max(pk.get("max_children", 0), len(procs) - 1)

    def run(self) -> None:
        k = 0
        while not self.stop_event.is_set():
            self.sample(with_pss=k % self.pss_every == 0)
            k += 1
            self.stop_event.wait(self.interval)

    def snapshot(self) -> dict[str, float]:
        self.sample(with_pss=True)
        with self.lock:
            return {k: round(v, 1) if isinstance(v, float) else v for k, v in self.peaks.items()}


def provenance() -> dict[str, Any]:
    here = os.path.dirname(os.path.abspath(__file__))
    return {
        "git_commit": git_commit(here),
        **git_source_state(os.path.dirname(here)),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch_threads": torch.get_num_threads(),
        "memory_total_gb": round(psutil.virtual_memory().total / 2**30, 1),
    }


def append(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(json_safe(row), sort_keys=True) + "\n")
    print(json.dumps(json_safe(row), sort_keys=True), flush=True)


def measured(memory: Memory, fn: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """Run ``fn``: its result, wall and CPU seconds (main process, finished children) and memory peaks."""
    memory.reset()
    load0 = os.getloadavg()
    c0, ch0 = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats = {
        "wall_s": round(wall, 2),
        "cpu_main_s": round(time.process_time() - c0, 2),
        "cpu_workers_s": round((ch1.ru_utime + ch1.ru_stime) - (ch0.ru_utime + ch0.ru_stime), 2),
        "loadavg_1min_start": round(load0[0], 2),
        "loadavg_1min_end": round(os.getloadavg()[0], 2),
        **memory.snapshot(),
    }
    return result, stats


# ---------------------------------------------------------------------------------------------- models
def light_model(num_classes: int = 10) -> nn.Module:
    """A small strided CNN for 3x64x64 (its stride-4 stem makes it about a tenth of small-cnn's cost per image)."""
    torch.manual_seed(0)
    return nn.Sequential(
        Normalize([0.5] * 3, [0.25] * 3),
        nn.Conv2d(3, 16, 5, stride=4, padding=2),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )


def build(name: str) -> nn.Module:
    if name == "light":
        return light_model()
    torch.manual_seed(0)
    return create_model(
        "small-cnn",
        num_classes=10,
        in_channels=3,
        image_size=(64, 64),
        mean=[0.5] * 3,
        std=[0.25] * 3,
        width=8,
        hidden=64,
    )


# ---------------------------------------------------------------------------------------------- parts
def throughput(args: argparse.Namespace, out: Path, memory: Memory) -> None:
    ds = SyntheticImages(args.n)
    mem_data, stats = measured(memory, lambda: as_image_dataset(ds, name="synthetic"))
    base = {"part": "throughput", "images": args.n, "batch_size": BATCH, **provenance()}
    append(out, {**base, "op": "materialise", "data": "in-memory", "bytes": mem_data.images.numel(), **stats})
    configs = [("in-memory", 0, mem_data)] + [
        ("streamed", w, stream_dataset(ds, name="synthetic", num_workers=w)) for w in args.workers
    ]

    def read(data):
        n = 0
        for batch in TensorLoader(data, batch_size=BATCH):
            n += batch.x.shape[0]
        return n

    def train(model, data):
        loader = TensorLoader(data, batch_size=BATCH, shuffle=True, seed=0)
        fit(model, loader, epochs=1, optimizer=torch.optim.SGD(model.parameters(), lr=0.01), progress=False)

    for model_name in args.models:
        model = build(model_name).eval()
        ops = {
            "read": lambda data, m=model: read(data),
            "forward": lambda data, m=model: predict_logits(m, data, batch_size=BATCH),
            "train-epoch": lambda data, m=model: train(copy.deepcopy(m), data),
        }
        for op, fn in ops.items():
            for label, workers, data in configs:  # each op on every configuration in turn (load drifts slowly)
                if op == "read" and model_name != args.models[0]:
                    continue  # reading does not depend on the model
                _, stats = measured(memory, lambda fn=fn, data=data: fn(data))
                cpu = stats["cpu_main_s"] + stats["cpu_workers_s"]
                append(
                    out,
                    {
                        **base,
                        "op": op,
                        "model": model_name if op != "read" else None,
                        "data": label,
                        "num_workers": workers,
                        "images_per_s": round(args.n / stats["wall_s"], 1),
                        "images_per_cpu_s": round(args.n / cpu, 1) if cpu else None,
                        **stats,
                    },
                )


def full(args: argparse.Namespace, out: Path, memory: Memory) -> None:
    n, w = args.n_full, args.full_workers
    base = {"part": "full", "images": n, "num_workers": w, "batch_size": BATCH, **provenance()}
    ds = SyntheticImages(n, flip=True)
    holdout = SyntheticImages(args.holdout, offset=n)  # unseen images of the same distribution
    test = SyntheticImages(args.test, offset=n + args.holdout)

    lazy, stats = measured(memory, lambda: stream_dataset(ds, name="synthetic-1m", num_workers=w))
    append(out, {**base, "op": "index", "estimated_bytes": lazy.estimated_bytes, **stats})

    model = light_model()
    n_train = args.n_train
    recipe = Recipe(
        name="bench",
        epochs=1,
        lr=0.003,
        milestones=(),
        batch_size=BATCH,
        augment="none",
        optimizer="adam",
        weight_decay=0.0,
    )
    result, stats = measured(
        memory, lambda: train_model(model, lazy.subset(np.arange(n_train)), recipe=recipe, seed=0, progress=False)
    )
    append(
        out,
        {
            **base,
            "op": "train-epoch",
            "model": "light",
            "train_images": n_train,
            "images_per_s": round(n_train / stats["wall_s"], 1),
            "loss": result.history[-1].get("loss") if result.history else None,
            **stats,
        },
    )

    model.eval()
    logits, stats = measured(memory, lambda: predict_logits(model, lazy, batch_size=BATCH))
    acc = float((logits.argmax(1) == lazy.labels).float().mean())
    append(
        out,
        {
            **base,
            "op": "full-pass",
            "model": "light",
            "accuracy": round(acc, 4),
            "images_per_s": round(n / stats["wall_s"], 1),
            **stats,
        },
    )
    del logits

    if args.skip_unlearn:
        return
    targets = ds.targets
    forget_ids = np.flatnonzero(targets[:n_train] == 3)[: args.forget]  # trained images of class 3
    keep = np.ones(n, dtype=bool)
    keep[forget_ids] = False
    retain_ids = np.flatnonzero(keep)

    def run():
        return oblivio.unlearn(
            model,
            forget=Subset(ds, forget_ids),
            retain=Subset(ds, retain_ids),
            holdout=holdout,
            test=test,
            method="tmu",
            seed=0,
            progress=False,
            num_workers=w,
            stream=args.stream,
        )

    (new, report), stats = measured(memory, run)
    info = {k: v for k, v in report.info.items() if isinstance(v, (int, float, str, bool)) or k.startswith("twin_")}
    info.pop("unlearn_history", None)
    append(
        out,
        {
            **base,
            "op": "unlearn",
            "model": "light",
            "method": report.method,
            "sizes": report.sizes,
            "data": report.data,
            "method_seconds": round(report.seconds, 1),
            "before": report.before,
            "after": report.after,
            "info": info,
            **stats,
        },
    )
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    append(
        out, {**base, "op": "high-water", "ru_maxrss_self_mb": round(me, 1), "ru_maxrss_children_mb": round(kids, 1)}
    )


def subset(args: argparse.Namespace, out: Path, memory: Memory) -> None:
    """An unlearning run that trains: ``finetune.1ep`` forgetting 1,000 of the model's 100,000 training images (the
    first 100,000 of the million) and fine-tuning on the other 99,000, with ``stream=True`` (this part, 1.2 GB as
    tensors, would fit the budget; what is measured is the streamed path's memory while a method trains)."""
    n, w = args.n_full, args.full_workers
    base = {"part": "subset", "images": n, "num_workers": w, "batch_size": BATCH, **provenance()}
    ds = SyntheticImages(n, flip=True)
    test = SyntheticImages(args.test, offset=n + args.holdout)
    model = light_model()
    lazy = stream_dataset(ds, name="synthetic-1m", num_workers=w)
    adam = {"optimizer": "adam", "lr": 0.003, "weight_decay": 0.0}
    recipe = Recipe(name="bench", epochs=1, milestones=(), batch_size=BATCH, augment="none", **adam)
    train_model(model, lazy.subset(np.arange(args.n_train)), recipe=recipe, seed=0, progress=False)
    model.eval()
    forget_ids = np.flatnonzero(ds.targets[: args.n_train] == 3)[: args.forget]
    keep = np.ones(args.n_train, dtype=bool)
    keep[forget_ids] = False
    retain_ids = np.flatnonzero(keep)

    def run():
        return oblivio.unlearn(
            model,
            forget=Subset(ds, forget_ids),
            retain=Subset(ds, retain_ids),
            test=test,
            method="finetune.1ep",
            seed=0,
            progress=False,
            num_workers=w,
            stream=True,
        )

    (new, report), stats = measured(memory, run)
    append(
        out,
        {
            **base,
            "op": "unlearn-subset",
            "model": "light",
            "method": report.method,
            "sizes": report.sizes,
            "data": report.data,
            "method_seconds": round(report.seconds, 1),
            "method_cpu_seconds": round(float(report.info.get("cpu_seconds", 0.0)), 1),
            "backward_samples": report.info.get("backward_samples"),
            "before": report.before,
            "after": report.after,
            **stats,
        },
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=("throughput", "full", "subset"))
    p.add_argument("--out", required=True, help="JSONL file the rows are appended to")
    p.add_argument("--n", type=int, default=20_000, help="images of the throughput part (default 20,000)")
    p.add_argument("--workers", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    p.add_argument("--models", type=lambda s: s.split(","), default=["light", "small-cnn"])
    p.add_argument("--n-full", type=int, default=1_000_000, help="images of the full part (default 1,000,000)")
    p.add_argument("--n-train", type=int, default=100_000, help="images of the training epoch (default 100,000)")
    p.add_argument("--holdout", type=int, default=20_000, help="holdout images (TMU's twins; default 20,000)")
    p.add_argument("--test", type=int, default=5000, help="test images (MIA; SalUn's SVC is quadratic; default 5,000)")
    p.add_argument("--stream", default="auto", help="unlearn()'s stream= (default auto: the budget decides)")
    p.add_argument("--forget", type=int, default=1000, help="images forgotten in the unlearning run")
    p.add_argument("--full-workers", type=int, default=1, help="loader workers of the full part (default 1)")
    p.add_argument("--skip-unlearn", action="store_true")
    args = p.parse_args(argv)
    print(f"command: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} python {shlex.join(sys.argv)}", flush=True)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    oblivio.enable_logging()
    memory = Memory()
    memory.reset()
    memory.start()
    try:
        {"throughput": throughput, "full": full, "subset": subset}[args.part](args, Path(args.out), memory)
    finally:
        memory.stop_event.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
