"""oblivio.unlearn / evaluate_unlearning on streamed data: the same report and weights as in memory (same seed),
the auto decision by the memory budget, and what the report records about it.

Oracle: the in-memory run of the same call on the same data (the streamed loader yields the same batches).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

import oblivio


class Digits(Dataset):
    """sklearn digits as the user's own Dataset: HWC uint8 numpy items, with ``targets``."""

    def __init__(self, ds):
        self.x = (ds.images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        self.targets = ds.labels.tolist()

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.x[i], self.targets[i]


@pytest.fixture(scope="module")
def world(digits):
    train, test = Digits(digits.train), Digits(digits.test)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x = torch.from_numpy(train.x).permute(0, 3, 1, 2).float() / 255
    y = torch.tensor(train.targets)
    for _ in range(25):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    forget = [i for i, t in enumerate(train.targets) if t == 3][:15]
    retain = sorted(set(range(len(train))) - set(forget))
    return {
        "net": net.eval(),
        "forget": Subset(train, forget),
        "retain": Subset(train, retain),
        "holdout": Subset(test, range(0, 200)),
        "test": DataLoader(Subset(test, range(200, 450)), batch_size=64),
    }


def _call(world, **kw):
    data = {k: world[k] for k in ("forget", "retain", "holdout")}  # test (MIA): see the evaluation test
    return oblivio.unlearn(world["net"], **data, seed=1, progress=False, classes=[str(i) for i in range(10)], **kw)


@pytest.mark.parametrize(("method", "workers"), [("finetune.1ep", 2), ("tmu", 0), ("scrub", 0)])
def test_streamed_unlearning_gives_the_in_memory_result(world, method, workers):
    mem_model, mem = _call(world, method=method, stream=False)
    lazy_model, lazy = _call(world, method=method, stream=True, num_workers=workers)
    assert mem.data["streamed"] is False and lazy.data["streamed"] is True
    assert lazy.sizes == mem.sizes
    for key, value in mem.before.items():
        assert lazy.before[key] == pytest.approx(value, abs=1e-9), key
    for key, value in mem.after.items():
        assert lazy.after[key] == pytest.approx(value, abs=1e-9), key
    for a, b in zip(mem_model.state_dict().values(), lazy_model.state_dict().values(), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-5)


def test_auto_streams_when_the_data_exceed_the_memory_budget(world):
    size = sum(64 * len(world[k]) for k in ("forget", "retain", "holdout"))  # uint8 8x8 images
    _, small = _call(world, method="finetune.1ep", memory_budget=size - 1)
    _, large = _call(world, method="finetune.1ep", memory_budget=size)
    assert small.data == {"streamed": True, "estimated_bytes": size, "memory_budget": size - 1, "requested": "auto"}
    assert large.data["streamed"] is False and large.data["estimated_bytes"] == size
    assert small.after == pytest.approx(large.after, abs=1e-9)
    assert small.to_dict()["data"]["streamed"] is True


def test_evaluation_metrics_stream_too(world):
    gold = world["net"]
    kw = {"forget": world["forget"], "retain": world["retain"], "test": world["test"], "gold": gold}
    kw.update(extras=["original", "tta"], original=world["net"])
    mem = oblivio.evaluate_unlearning(world["net"], stream=False, **kw)
    lazy = oblivio.evaluate_unlearning(world["net"], stream=True, **kw)
    assert set(mem) == set(lazy) and "mia_loss_lr_acc" in mem and lazy.groups["tta"]
    for key, value in mem.items():
        if isinstance(value, float) and not np.isnan(value):
            assert lazy[key] == pytest.approx(value, abs=1e-9), key


def test_bad_streaming_options_fail_before_any_work(world):
    with pytest.raises(ValueError, match="stream must be"):
        _call(world, method="finetune.1ep", stream="maybe")
    with pytest.raises(ValueError, match="memory budget"):
        _call(world, method="finetune.1ep", memory_budget="a lot")
