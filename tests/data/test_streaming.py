"""Streamed datasets: the same rows, ids and batches as in memory, lazily; live, seeded augmentation; workers.

The in-memory path (``as_image_dataset`` + ``TensorLoader``) is the oracle for everything that does not involve
a random per-item transform; for those, the properties are stated directly (re-drawn per epoch, reproducible for a
seed, independent of the worker count, the caller's random state untouched).
"""

from __future__ import annotations

import gc
import random

import numpy as np
import psutil
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, Subset, SubsetRandomSampler, TensorDataset

from oblivio.data import (
    DatasetError,
    ImageDataset,
    StreamingDataset,
    TensorLoader,
    as_image_dataset,
    decide_streaming,
    default_memory_budget,
    estimate_bytes,
    parse_bytes,
    stream_dataset,
)


class Counting(Dataset):
    """HWC uint8 numpy items; counts every read; ``targets`` optional; ``transform`` optional."""

    def __init__(self, n=40, *, targets=True, transform=None, hw=6):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, 256, (n, hw, hw, 3), generator=g, dtype=torch.uint8).numpy()
        self.y = (np.arange(n) * 7) % 3
        if targets:
            self.targets = list(self.y)
        self.transform = transform
        self.reads = 0
        self.classes = ["a", "b", "c"]

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        self.reads += 1
        x = self.x[i]
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.y[i])


def _noise(x):
    """A random per-item augmentation drawing from all three global generators."""
    t = torch.from_numpy(x.astype(np.float32) / 255).permute(2, 0, 1)
    t = t + 0.1 * torch.rand(1) + 0.01 * float(np.random.rand()) + 0.01 * random.random()
    return t.clamp(0, 1)


def test_rows_ids_labels_and_classes_match_the_in_memory_reading():
    data = Counting()
    cases = [
        data,
        Subset(data, [5, 1, 30]),
        Subset(Subset(data, list(range(10, 40))), [3, 0, 7]),
        DataLoader(data, batch_size=4, sampler=SubsetRandomSampler([9, 2, 17])),
        DataLoader(Subset(data, [4, 8, 12, 16]), batch_size=3, shuffle=True),
    ]
    for case in cases:
        mem, lazy = as_image_dataset(case), stream_dataset(case)
        assert isinstance(lazy, StreamingDataset)
        assert lazy.ids.tolist() == mem.ids.tolist()
        assert lazy.labels.tolist() == mem.labels.tolist()
        assert lazy.classes == mem.classes == ("a", "b", "c")
        assert lazy.image_shape == mem.image_shape == (3, 6, 6)
        assert torch.equal(lazy.float_images(), mem.float_images())
    fn = stream_dataset(data, ids=lambda i: 1000 + i)
    assert fn.ids[:3].tolist() == [1000, 1001, 1002]
    with pytest.raises(DatasetError, match="unique"):
        stream_dataset(data, ids=[0] * len(data))


def test_building_and_viewing_read_no_image():
    data = Counting()
    lazy = stream_dataset(data)
    assert data.reads == 1  # the first item, for the image shape
    part = lazy.subset([3, 1]).concat(lazy.subset([7]).with_labels(torch.tensor([2])), name="u")
    assert part.ids.tolist() == [3, 1, 7] and part.labels.tolist() == [0, 1, 2]
    assert part.positions_of_ids([7, 3]).tolist() == [2, 0]
    assert part.class_counts().tolist() == [1, 1, 1]
    assert len(part.sources) == 1  # one Dataset behind both views
    mem = as_image_dataset(Subset(data, [0, 2]))
    both = mem.concat(lazy)  # an in-memory dataset followed by a streamed one: a lazy view too
    assert isinstance(both, StreamingDataset) and len(both) == 42 and both.ids[:3].tolist() == [0, 2, 0]
    reads = data.reads
    assert torch.equal(both.float_images([0, 1]), mem.float_images())
    assert data.reads == reads  # rows of the in-memory source are not read from the Dataset
    assert part.float_images([2]).shape == (1, 3, 6, 6) and data.reads == reads + 1
    with pytest.raises(DatasetError, match="holds no image tensor"):
        _ = lazy.images


def test_labels_without_targets_take_one_pass_and_every_read_is_checked(caplog):
    data = Counting(targets=False)
    with caplog.at_level("INFO", logger="oblivio.data"):
        lazy = stream_dataset(data)
    assert "reading the labels of 40 samples" in caplog.text
    assert data.reads == 41 and lazy.labels.tolist() == list(data.y)
    wrong = Counting()
    wrong.targets = [0] * len(wrong)
    bad = stream_dataset(wrong)
    with pytest.raises(DatasetError, match="read with label 1 but the dataset declared 0"):
        list(TensorLoader(bad, batch_size=8))
    assert stream_dataset(wrong, labels=wrong.y).labels.tolist() == list(wrong.y)


def test_bad_items_fail_with_a_message_that_names_the_fix():
    normalised = stream_dataset(TensorDataset(torch.randn(6, 1, 4, 4), torch.zeros(6).long()))
    with pytest.raises(DatasetError, match=r"oblivio.models.Normalize\(mean, std\) first in the model"):
        list(TensorLoader(normalised, batch_size=6))

    class Ragged(Counting):
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return (x if i < 5 else x[:4]), y

    with pytest.raises(DatasetError, match="resize the images to one size"):
        list(TensorLoader(stream_dataset(Ragged()), batch_size=10))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"shuffle": True, "seed": 3},
        {"shuffle": True, "drop_last": True, "batch_size": 7},
        {"fraction": 0.5, "seed": 1},
        {"augment": "crop2+flip", "shuffle": True, "seed": 5},
        {"labels": torch.arange(40) % 3 == 0},
    ],
)
def test_batches_equal_the_in_memory_loaders(options):
    data = Counting()
    opts = {"batch_size": 8, **options}
    if "labels" in opts:
        opts["labels"] = opts["labels"].long()
    for workers in (0, 2):
        lazy = stream_dataset(data, num_workers=workers)
        mem, streamed = TensorLoader(as_image_dataset(data), **opts), TensorLoader(lazy, **opts)
        for epoch in (0, 2):
            mem.set_epoch(epoch)
            streamed.set_epoch(epoch)
            a, b = list(mem), list(streamed)
            assert len(a) == len(b) == len(streamed)
            for x, y in zip(a, b, strict=True):
                assert torch.equal(x.index, y.index) and torch.equal(x.y, y.y) and torch.equal(x.x, y.x)


def _epoch(loader, epoch):
    loader.set_epoch(epoch)
    return torch.cat([b.x for b in loader])


def test_live_augmentation_is_redrawn_each_epoch_seeded_and_independent_of_workers():
    data = Counting(transform=_noise)
    state = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    runs = {}
    for workers in (0, 2):
        loader = TensorLoader(stream_dataset(data, num_workers=workers), batch_size=8, shuffle=True, seed=4)
        runs[workers] = (_epoch(loader, 0), _epoch(loader, 1), _epoch(loader, 0))
    e0, e1, again = runs[0]
    assert not torch.equal(e0, e1)  # a new draw every epoch
    assert torch.equal(e0, again)  # the same draw for the same (seed, epoch)
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[2], strict=True))  # whatever the worker count
    other = TensorLoader(stream_dataset(data), batch_size=8, shuffle=True, seed=5)
    assert not torch.equal(_epoch(other, 0), e0)
    # reading in this process left the caller's random state as it was
    assert torch.equal(torch.get_rng_state(), state[0])
    assert np.array_equal(np.random.get_state()[1], state[1]) and random.getstate() == state[2]


def test_an_epoch_left_early_stops_its_workers():
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    loader = TensorLoader(stream_dataset(Counting(), num_workers=2), batch_size=4)
    it = iter(loader)
    next(it)
    assert {p.pid for p in me.children(recursive=True)} - before  # workers are running
    del it
    gc.collect()
    left = [p for p in me.children(recursive=True) if p.pid not in before and p.is_running()]
    psutil.wait_procs(left, timeout=10)
    assert [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []


def test_stats_match_the_in_memory_ones():
    data = Counting(n=30)
    mem, lazy = as_image_dataset(data).stats(), stream_dataset(data).stats(batch_size=7)
    for a, b in zip(mem, lazy, strict=True):
        assert np.allclose(a, b, atol=1e-6)


def test_the_decision_compares_the_tensor_size_with_the_budget(monkeypatch):
    data = TensorDataset(torch.zeros(100, 3, 8, 8, dtype=torch.uint8), torch.zeros(100).long())
    floats = TensorDataset(torch.zeros(100, 3, 8, 8), torch.zeros(100).long())
    assert estimate_bytes(data) == 100 * 3 * 8 * 8 and estimate_bytes(floats) == 4 * 100 * 3 * 8 * 8
    assert estimate_bytes((np.zeros((4, 8, 8)), [0, 1, 0, 1])) is None  # arrays are in memory already
    sets = {"forget": Subset(data, range(10)), "retain": Subset(data, range(10, 100)), "holdout": None}
    assert decide_streaming(sets, stream="auto", memory_budget=19200).stream is False  # exactly the size
    assert decide_streaming(sets, stream="auto", memory_budget=19199).stream is True
    assert decide_streaming(sets, stream=True).stream and not decide_streaming(sets, stream="off").stream
    assert parse_bytes("1.5KB") == 1536 and parse_bytes("2 GiB") == 2 * 2**30 and parse_bytes("7") == 7
    for bad in ("lots", "-1GB", "0"):
        with pytest.raises(ValueError, match="memory budget"):
            parse_bytes(bad)
    with pytest.raises(ValueError, match="stream must be 'auto'"):
        decide_streaming(sets, stream="sometimes")
    monkeypatch.setenv("OBLIVIO_MEMORY_BUDGET", "3MB")
    assert default_memory_budget() == 3 * 2**20
    monkeypatch.delenv("OBLIVIO_MEMORY_BUDGET")
    assert default_memory_budget() == psutil.virtual_memory().total // 4


def test_from_memory_reads_the_same_batches_and_keeps_ids_and_groups():
    ds = ImageDataset(
        torch.randint(0, 256, (12, 1, 4, 4), dtype=torch.uint8),
        torch.arange(12) % 2,
        ("a", "b"),
        ids=torch.arange(100, 112),
        groups=torch.arange(12) // 3,
    )
    lazy = StreamingDataset.from_memory(ds)
    assert lazy.groups.tolist() == ds.groups.tolist() and lazy.subset([4]).ids.tolist() == [104]
    a = list(TensorLoader(ds, batch_size=5, shuffle=True, augment="flip", seed=2))
    b = list(TensorLoader(lazy, batch_size=5, shuffle=True, augment="flip", seed=2))
    assert all(torch.equal(x.x, y.x) and torch.equal(x.y, y.y) for x, y in zip(a, b, strict=True))
