"""The command line on a dataset registered as torch ``Dataset`` s (``TorchSplits``): ``--stream on`` gives the
same numbers as ``--stream off`` within float tolerance (separate stores, so each side trains its own models),
``auto`` follows ``--memory-budget``, and bench refuses options it cannot honour.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from oblivio.cli import main

PLUGIN = textwrap.dedent('''
    """A user's dataset served by a torch Dataset (no in-memory arrays), registered for the oblivio CLI."""
    import numpy as np
    from torch.utils.data import Dataset

    from oblivio.data import TorchSplits, register_dataset


    class Blobs(Dataset):
        def __init__(self, n, seed):
            rng = np.random.default_rng(seed)
            self.targets = (np.arange(n) % 3).tolist()
            shift = (np.array(self.targets)[:, None, None, None] - 1) * 0.15
            self.x = np.clip(rng.normal(0.5, 0.12, (n, 1, 6, 6)) + shift, 0, 1).astype(np.float32)
            self.classes = ["a", "b", "c"]

        def __len__(self):
            return len(self.targets)

        def __getitem__(self, i):
            return self.x[i], self.targets[i]


    @register_dataset("NAME-blobs")
    def blobs():
        return TorchSplits(Blobs(150, 0), Blobs(60, 1), name="NAME-blobs")
''')


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    name = f"stream_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(PLUGIN.replace("NAME", name))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield name
    from oblivio.data import DATASETS

    DATASETS._entries.pop(f"{name}-blobs", None)
    sys.modules.pop(name, None)


def _common(plugin, store):
    return ["--import", plugin, "--preset", "tiny", "--dataset", f"{plugin}-blobs", "--store", str(store)]


def test_streamed_and_in_memory_runs_print_the_same_numbers(plugin, tmp_path, capsys):
    tables, metrics, forward = {}, {}, {}
    for mode in ("off", "on"):
        args = [*_common(plugin, tmp_path / mode), "--no-progress", "--stream", mode]
        assert main(["train", *args, "--forget", "class-subset:1:5"]) == 0
        tables[mode] = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("store:")]
        out = tmp_path / f"{mode}.json"
        forget = ["--method", "tmu", "--forget", "class-subset:1:5", "--gold", "--json", str(out)]
        assert main(["forget", *args, "--num-workers", "2" if mode == "on" else "0", *forget]) == 0
        capsys.readouterr()
        report = json.loads(out.read_text())
        metrics[mode] = {k: v for k, v in report["metrics"].items() if k != "seconds" and v == v}  # NaN: not computed
        forward[mode] = report["info"]["forward_samples"]
    # original and gold: the same batches; the models' normalisation statistics come from a float64 pass when
    # streamed and a float32 reduction in memory (equal to ~1e-8), so the numbers agree within float tolerance
    assert tables["on"] == tables["off"]
    assert metrics["on"] == pytest.approx(metrics["off"], rel=1e-5, abs=1e-6) and forward["on"] == forward["off"]


def test_the_ledger_serves_requests_on_streamed_data(plugin, tmp_path, capsys):
    ledger = [*_common(plugin, tmp_path / "store"), "--no-progress", "--stream", "on", "--workdir", str(tmp_path / "l")]
    assert main(["request", "add", "--ids", "3,4,5", "--requester", "ann", *ledger]) == 0
    assert main(["request", "apply", "--method", "finetune.1ep", *ledger]) == 0
    assert "is current" in capsys.readouterr().out


def test_auto_follows_the_memory_budget(plugin, tmp_path):
    from dataclasses import replace

    from oblivio.cli.common import import_modules
    from oblivio.data import StreamingDataset
    from oblivio.experiments import Experiment, get_preset

    import_modules([plugin])  # registers the dataset, as --import does
    cfg = replace(get_preset("tiny"), dataset=f"{plugin}-blobs", train_size=None)
    small = Experiment(cfg, store=tmp_path / "s", memory_budget="1KB", num_workers=2)
    large = Experiment(cfg, store=tmp_path / "s", memory_budget="1GB")
    assert isinstance(small.data.train, StreamingDataset) and small.data.train.num_workers == 2
    assert not isinstance(large.data.train, StreamingDataset)
    assert small.data.info["data"]["streamed"] and small.data.info["data"]["estimated_bytes"] == 4 * 36 * 210
    # store keys: unchanged for data read into memory; streamed models (a random transform is drawn per read) apart
    assert large.store_key(seed=0) == {**cfg.model_key(), "seed": 0}
    assert small.store_key(seed=0) == {**cfg.model_key(), "seed": 0, "data": "streamed"}


def test_bench_and_bad_values_are_refused(plugin, tmp_path, capsys):
    common = _common(plugin, tmp_path / "store")
    assert main(["bench", "tmu-table1", *common, "--stream", "on"]) == 2
    assert "--stream, --memory-budget and --num-workers apply to train" in capsys.readouterr().err
    assert main(["train", *common, "--memory-budget", "plenty"]) == 2
    assert "memory budget 'plenty' is not a size" in capsys.readouterr().err
    assert main(["train", *common, "--num-workers", "-1"]) == 2
    assert "--num-workers must be >= 0" in capsys.readouterr().err
